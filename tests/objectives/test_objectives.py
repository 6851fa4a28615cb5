import math

import pytest
import torch

from textvae.config import KLScheduleConfig, ObjectiveConfig
from textvae.objectives import (free_bits_kl, gaussian_kl, imq_kernel, infovae_loss, kl_beta, mmd, rbf_kernel,
                                warmup_end)
from textvae.errors import ConfigError


def test_closed_form_kl_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    logvar = torch.tensor([[-0.5, 0.3, -1.2]])
    z = mu + (0.5 * logvar).exp() * torch.randn(400_000, 3, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(gaussian_kl(mu, logvar)[0], mc, atol=0.01)
    # and the exact value for one dimension: KL(N(0.5, e^-0.5) ‖ N(0, 1))
    assert gaussian_kl(mu, logvar)[0, 0].item() == pytest.approx(0.5 * (0.25 + math.exp(-0.5) - 1 + 0.5))


def test_kl_is_fp32_under_bf16_inputs():
    mu = torch.randn(4, 8).bfloat16()
    assert gaussian_kl(mu, torch.zeros_like(mu)).dtype == torch.float32


@pytest.mark.parametrize("kernel", ["rbf", "imq"])
def test_mmd_same_distribution_near_zero_shifted_clearly_positive(kernel):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 8, generator=g), torch.randn(500, 8, generator=g)
    same = mmd(x, y, kernel).item()
    shifted = mmd(x + 1.0, y, kernel).item()
    assert abs(same) < 0.01
    assert shifted > 20 * max(abs(same), 1e-3)


def test_mmd_is_unbiased_u_statistic():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    y = torch.tensor([[0.5], [2.0]])
    k = lambda a, b: rbf_kernel(a, b, bandwidth=2.0)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - 3) / 6 + (kyy.sum() - 2) / 2 - 2 * kxy.mean()).item()
    assert mmd(x, y, "rbf", bandwidth=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_kernels_values():
    a, b = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])
    assert rbf_kernel(a, b).item() == pytest.approx(math.exp(-2.0 / 4.0))  # ‖a−b‖² = 2, 2σ² = 2·dim = 4
    expected = sum(4 * s / (4 * s + 2.0) for s in (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0))
    assert imq_kernel(a, b).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown MMD kernel"):
        mmd(a.repeat(2, 1), b.repeat(2, 1), "cosine")


def test_mmd_gradient_reaches_samples():
    x = torch.randn(16, 4, requires_grad=True)
    mmd(x + 2.0, torch.randn(16, 4)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _terms(cfg, beta=1.0):
    g = torch.Generator().manual_seed(1)
    rec = torch.rand(6, generator=g) * 50
    mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g) * 0.1
    z, prior = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    return infovae_loss(rec, torch.tensor(60), mu, logvar, z, cfg, beta, prior_z=prior), rec, mu, logvar, z, prior


def test_elbo_preset_equals_alpha0_lambda1():
    elbo, rec, mu, logvar, _, _ = _terms(ObjectiveConfig(preset="elbo"))
    same, *_ = _terms(ObjectiveConfig(preset="info_vae", alpha=0.0, lam=1.0))
    assert torch.allclose(elbo.loss, same.loss)
    assert elbo.loss.item() == pytest.approx((rec.sum() + gaussian_kl(mu, logvar).sum()).item(), rel=1e-6)


def test_infovae_weights_combine_terms():
    cfg = ObjectiveConfig(preset="info_vae", alpha=0.5, lam=10.0)
    t, rec, mu, logvar, z, prior = _terms(cfg, beta=0.3)
    expected = rec.sum() + 0.5 * 0.3 * gaussian_kl(mu, logvar).sum() + 9.5 * mmd(z, prior) * 6
    assert t.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert t.n_sentences == 6 and t.kl_per_dim.shape == (4,)


def test_mmd_vae_has_no_kl_and_beta_preset_has_no_mmd():
    cfg = ObjectiveConfig(preset="mmd_vae", lam=50.0)
    assert (cfg.kl_weight, cfg.mmd_weight) == (0.0, 50.0)
    t, rec, _, _, z, prior = _terms(cfg)
    assert t.loss.item() == pytest.approx((rec.sum() + 50 * 6 * mmd(z, prior)).item(), rel=1e-5)
    beta = ObjectiveConfig(preset="beta", beta=0.4)
    assert (beta.kl_weight, beta.mmd_weight) == (pytest.approx(0.4), pytest.approx(0.0))


def test_negative_divergence_weight_is_refused():
    with pytest.raises(ConfigError, match="negative"):
        ObjectiveConfig(preset="info_vae", alpha=0.0, lam=1e-3)


def test_free_bits_floor():
    kl = torch.tensor([[0.1, 2.0], [0.3, 4.0]])  # batch means: 0.2, 3.0
    assert free_bits_kl(kl, 0.0).item() == pytest.approx(6.4)
    assert free_bits_kl(kl, 0.5, "dim").item() == pytest.approx(2 * (0.5 + 3.0))
    assert free_bits_kl(kl, 5.0, "batch").item() == pytest.approx(2 * 5.0)
    assert free_bits_kl(kl, 1.0, "batch").item() == pytest.approx(6.4)
    x = kl.clone().requires_grad_()
    free_bits_kl(x, 0.5, "dim").backward()
    assert x.grad[:, 0].abs().sum() == 0 and x.grad[:, 1].abs().sum() > 0  # floored dim gets no gradient


@pytest.mark.parametrize("kind,step,expected", [
    ("constant", 0, 1.0), ("constant", 999, 1.0),
    ("linear", 0, 0.0), ("linear", 50, 0.5), ("linear", 100, 1.0), ("linear", 500, 1.0),
    ("logistic", 50, 0.5),
    ("cyclical", 0, 0.0), ("cyclical", 125, 1.0), ("cyclical", 60, 0.48), ("cyclical", 200, 1.0), ("cyclical", 250, 0.0),
])
def test_kl_schedules(kind, step, expected):
    cfg = KLScheduleConfig(kind=kind, warmup_steps=100, cycles=4, ratio=0.5)
    assert kl_beta(cfg, step, max_steps=1000) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("kind,end", [("constant", 0), ("linear", 100), ("logistic", 100), ("cyclical", 1000)])
def test_warmup_end_is_where_beta_stops_moving(kind, end):
    cfg = KLScheduleConfig(kind=kind, warmup_steps=100, cycles=4, ratio=0.5)
    assert warmup_end(cfg, max_steps=1000) == end
    after = [kl_beta(cfg, s, 1000) for s in range(end, 1000, 7)]
    if kind in ("constant", "linear"):  # from there on β_t is constant
        assert set(after) == {1.0}
    elif kind == "logistic":  # the sigmoid is within 1 % of its end from there on
        assert min(after) > 0.99
    else:  # cyclical: β_t keeps returning to 0 until the end of the run
        assert [kl_beta(cfg, s, 1000) for s in (250, 500, 750)] == [0.0, 0.0, 0.0]


def test_logistic_is_monotone_and_saturates():
    cfg = KLScheduleConfig(kind="logistic", warmup_steps=100)
    values = [kl_beta(cfg, s, 1000) for s in range(0, 200, 10)]
    assert values == sorted(values) and values[0] < 0.01 and values[-1] > 0.99
