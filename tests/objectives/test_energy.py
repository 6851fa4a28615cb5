"""The energy-based prior's maximum-likelihood term and its place in the InfoVAE loss."""

import pytest
import torch
from torch import nn

from textvae.config import ObjectiveConfig
from textvae.objectives import energy_ml_loss, infovae_loss


def test_ml_gradient_is_the_difference_of_the_two_expectations_by_hand():
    # f_α(z) = α·z: ∇_α f(z) = z, so ∇_α of the log-likelihood is mean(z⁺) − mean(z⁻).
    alpha = torch.tensor([0.3, -0.7], requires_grad=True)
    z_data = torch.tensor([[1.0, 2.0], [3.0, 4.0]])                 # mean [2, 3]
    z_prior = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])  # mean [1, 1/3]
    loss = energy_ml_loss(z_data @ alpha, z_prior @ alpha)
    loss.backward()
    n = 2
    assert torch.allclose(alpha.grad, -n * torch.tensor([2.0 - 1.0, 3.0 - 1.0 / 3.0]))
    # value: n·(mean f(z⁻) − mean f(z⁺))
    expected = n * ((z_prior @ alpha).mean() - (z_data @ alpha).mean())
    assert torch.allclose(loss, expected)


def test_energy_penalty_adds_the_squared_energies_and_their_gradient_by_hand():
    # f_α(z) = α·z with γ = 0.5: loss = n·(mean f⁻ − mean f⁺ + γ·(mean f⁺² + mean f⁻²)), and
    # ∂/∂α of γ·mean f² is γ·mean 2·f·z.
    alpha = torch.tensor([0.3, -0.7], requires_grad=True)
    z_data = torch.tensor([[1.0, 2.0], [3.0, 4.0]])                 # f⁺ = [−1.1, −1.9]
    z_prior = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])  # f⁻ = [−0.7, 1.3, −0.4]
    loss = energy_ml_loss(z_data @ alpha, z_prior @ alpha, l2=0.5)
    loss.backward()
    n, f_data, f_prior = 2, torch.tensor([-1.1, -1.9]), torch.tensor([-0.7, 1.3, -0.4])
    value = f_prior.mean() - f_data.mean() + 0.5 * (f_data.square().mean() + f_prior.square().mean())
    assert torch.allclose(loss, n * value)
    grad = (z_prior.mean(0) - z_data.mean(0)
            + 0.5 * ((2 * f_data[:, None] * z_data).mean(0) + (2 * f_prior[:, None] * z_prior).mean(0)))
    assert torch.allclose(alpha.grad, n * grad)
    # γ = 0 is pure maximum likelihood, and the penalty reaches the loss through infovae_loss.
    f_d, f_p = z_data @ alpha.detach(), z_prior @ alpha.detach()
    assert torch.allclose(energy_ml_loss(f_d, f_p, l2=0.0), n * (f_p.mean() - f_d.mean()))
    rec, mu, logvar = torch.rand(2) * 10, torch.randn(2, 2), torch.zeros(2, 2)
    cfg = ObjectiveConfig(preset="elbo")
    plain, penalised = (infovae_loss(rec, torch.tensor(9), mu, logvar, mu.clone(), cfg, tilt=torch.zeros(2),
                                     energy_data=f_d, energy_prior=f_p, energy_l2=g) for g in (0.0, 0.5))
    assert torch.allclose(penalised.loss - plain.loss, n * 0.5 * (f_d.square().mean() + f_p.square().mean()))
    assert torch.equal(penalised.energy, plain.energy)  # the logged gap is the likelihood's, unpenalised


def test_ml_gradient_of_an_mlp_energy_matches_per_sample_gradients():
    torch.manual_seed(0)
    energy = nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Linear(5, 1))
    z_data, z_prior = torch.randn(4, 3), torch.randn(6, 3)

    def grads(z):  # ∇_α f(z) for one sample, flattened
        energy.zero_grad()
        energy(z.unsqueeze(0)).sum().backward()
        return torch.cat([p.grad.flatten() for p in energy.parameters()])

    expected = torch.stack([grads(z) for z in z_data]).mean(0) - torch.stack([grads(z) for z in z_prior]).mean(0)
    energy.zero_grad()
    energy_ml_loss(energy(z_data).squeeze(-1), energy(z_prior).squeeze(-1)).backward()
    got = torch.cat([p.grad.flatten() for p in energy.parameters()])
    assert torch.allclose(-got / len(z_data), expected, atol=1e-6)


def test_loss_adds_the_ml_term_and_the_tilt_to_the_kl():
    torch.manual_seed(0)
    cfg = ObjectiveConfig(preset="elbo")
    rec, mu, logvar = torch.rand(4) * 10, torch.randn(4, 2), torch.randn(4, 2) * 0.1
    z = mu.clone()
    base = infovae_loss(rec, torch.tensor(20), mu, logvar, z, cfg)
    tilt, f_data, f_prior = torch.randn(4), torch.randn(4), torch.randn(4)
    terms = infovae_loss(rec, torch.tensor(20), mu, logvar, z, cfg, tilt=tilt, energy_data=f_data, energy_prior=f_prior)
    assert torch.allclose(terms.kl, base.kl - tilt.sum())  # KL(q‖N) − f(z): the KL from p_α less log Z
    assert torch.allclose(terms.loss, base.loss - tilt.sum() + 4 * (f_prior.mean() - f_data.mean()))
    assert torch.allclose(terms.energy, f_data.sum() - 4 * f_prior.mean())
    assert base.energy is None and "energy" in terms.detached() and "energy" not in base.detached()


def test_langevin_terms_have_no_kl_and_the_encoder_term_adds():
    cfg = ObjectiveConfig(preset="elbo")
    rec, z = torch.rand(3) * 5, torch.randn(3, 2)
    terms = infovae_loss(rec, torch.tensor(9), None, None, z, cfg)  # short-run inference: no q(z|x)
    assert terms.kl.item() == 0.0 and terms.kl_per_dim is None and torch.equal(terms.loss, rec.sum())
    assert terms.mmd.item() != 0.0  # measured between the chain's z and the prior
    encoder = torch.rand(3)
    mu, logvar = torch.zeros(3, 2), torch.zeros(3, 2)
    both = infovae_loss(rec, torch.tensor(9), mu, logvar, z, cfg, rec_encoder=encoder)
    assert torch.allclose(both.loss, rec.sum() + encoder.sum()) and torch.allclose(both.rec_encoder, encoder.sum())
    assert torch.allclose(both.rec, rec.sum())


@pytest.mark.parametrize("preset", ["elbo", "info_vae"])
def test_mmd_compares_q_with_the_prior_samples_given(preset):
    cfg = ObjectiveConfig(preset=preset, **({"alpha": 0.5, "lam": 10.0} if preset == "info_vae" else {}))
    z = torch.randn(8, 2)
    far = torch.randn(8, 2) + 5.0
    near = infovae_loss(torch.zeros(8), torch.tensor(8), z, torch.zeros(8, 2), z, cfg, prior_z=z.flip(0))
    away = infovae_loss(torch.zeros(8), torch.tensor(8), z, torch.zeros(8, 2), z, cfg, prior_z=far)
    assert away.mmd > near.mmd
