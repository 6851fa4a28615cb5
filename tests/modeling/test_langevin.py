"""The short-run Langevin sampler: its schedules, its samples against a posterior known in closed
form, its seeding, and the error a diverging chain stops with."""

import math

import pytest
import torch

from textvae.config import ChainScheduleConfig, LangevinConfig
from textvae.errors import RunError
from textvae.modeling.langevin import chain_schedules, fit_gaussian, langevin_chain, schedule_values
from textvae.modeling.prior import GaussianPrior

# A linear-Gaussian decoder p(x|z) = N(Wz + b, σ²I) with z ~ N(0, I): the posterior is Gaussian with
# precision A = I + WᵀW/σ² and mean A⁻¹Wᵀ(x − b)/σ².
W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -0.6]])
B = torch.tensor([0.1, -0.2, 0.3])
SIGMA = 0.8
X = torch.tensor([0.7, -0.4, 1.1])


def linear_gaussian_log_joint(x: torch.Tensor):
    prior = GaussianPrior(W.shape[1])

    def log_joint(z: torch.Tensor) -> torch.Tensor:  # z (N, 2) → (N,)
        resid = x - (z @ W.T + B)
        return -0.5 * (resid.pow(2).sum(-1) / SIGMA ** 2) + prior.log_density(z)

    return log_joint


def true_posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    precision = torch.eye(2) + W.T @ W / SIGMA ** 2
    cov = torch.linalg.inv(precision)
    return cov @ W.T @ (x - B) / SIGMA ** 2, cov


def test_schedules_follow_the_recipe():
    assert schedule_values(ChainScheduleConfig(start=0.8, end=0.05), 4) == pytest.approx([0.8, 0.55, 0.3, 0.05])
    assert schedule_values(ChainScheduleConfig(start=1.0, end=0.01, kind="geometric"), 3) == pytest.approx([1, 0.1, 0.01])
    assert schedule_values(ChainScheduleConfig(start=0.3), 3) == [0.3, 0.3, 0.3]
    assert schedule_values(ChainScheduleConfig(values=[0.5, 0.2]), 2) == [0.5, 0.2]
    steps, noise = chain_schedules(LangevinConfig(steps=1, step_size=ChainScheduleConfig(start=0.2, end=0.1)))
    assert steps == [0.2] and noise == [1.0]


def test_chain_samples_match_the_linear_gaussian_posterior():
    # τ = 1 and a small constant step: the unadjusted Langevin chain's stationary covariance is
    # (A(I − sA/4))⁻¹, within 2 % of A⁻¹ here; 600 steps forget the N(0, I) start.
    n, steps, s = 4000, 600, 0.02
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(n, 2, generator=g)
    z = langevin_chain(linear_gaussian_log_joint(X), z0, [s] * steps, [1.0] * steps, g)
    mean, cov = true_posterior(X)
    assert z.dtype == torch.float32 and not z.requires_grad
    sd = cov.diagonal().sqrt()
    assert torch.allclose(z.mean(0), mean, atol=float(0.08 * sd.min()))
    sample_cov = torch.cov(z.T)
    assert torch.allclose(sample_cov, cov, rtol=0.08, atol=0.03 * float(cov.diagonal().max())), (sample_cov, cov)


def test_fitted_gaussian_of_chain_samples_is_the_posterior_one():
    g = torch.Generator().manual_seed(1)
    z = langevin_chain(linear_gaussian_log_joint(X), torch.randn(3000, 2, generator=g), [0.02] * 500, [1.0] * 500, g)
    mu, logvar = fit_gaussian(z.view(1, 3000, 2).transpose(0, 1))  # 3000 samples of one row
    mean, cov = true_posterior(X)
    assert mu.shape == logvar.shape == (1, 2)
    assert torch.allclose(mu[0], mean, atol=0.03)
    assert torch.allclose(logvar[0].exp(), cov.diagonal(), rtol=0.08)
    with pytest.raises(ValueError, match="at least 2"):
        fit_gaussian(z[:1].unsqueeze(0))


def test_chain_is_seeded_by_its_generator():
    log_joint = linear_gaussian_log_joint(X)
    z0 = torch.zeros(5, 2)

    def run(seed):
        return langevin_chain(log_joint, z0, [0.1] * 5, [0.5] * 5, torch.Generator().manual_seed(seed))

    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))
    before = torch.get_rng_state()
    run(3)
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is not touched


def test_noise_free_chain_is_gradient_ascent():
    # τ = 0: z ← z + (s/2)∇ log p exactly; on log p = −‖z − c‖²/2 one step of s = 2 lands on c.
    c = torch.tensor([[1.5, -2.0]])
    z = langevin_chain(lambda z: -0.5 * (z - c).pow(2).sum(-1), torch.zeros(1, 2), [2.0], [0.0])
    assert torch.allclose(z, c)


def test_diverging_chain_names_step_size_and_last_finite_step():
    # log p = ‖z‖⁴ pushes z outward ever faster: at s = 1 it overflows fp32 within a few steps.
    with pytest.raises(RunError) as err:
        langevin_chain(lambda z: z.pow(4).sum(-1), torch.ones(2, 3), [1.0] * 10, [0.0] * 10, name="model.langevin")
    message = str(err.value)
    assert "model.langevin produced non-finite z at step" in message
    assert "step size 1" in message and "the last finite step was" in message
    assert "lower model.langevin.step_size" in message
    last = int(message.split("the last finite step was ")[1].split(".")[0])
    assert 1 <= last < 10
    assert math.isfinite(last)
