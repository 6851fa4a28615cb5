"""Maximum likelihood for a latent-space energy-based prior (Pang et al. 2020), as a pure function.

For p_α(z) = exp(f_α(z))·N(z; 0, I) / Z(α), the gradient of the log-likelihood of posterior samples
z⁺ is

    ∇_α E_q[log p_α(z⁺)] = E_q[∇_α f_α(z⁺)] − E_{p_α}[∇_α f_α(z⁻)],

the second expectation being ∇_α log Z(α), estimated with z⁻ from the prior's short-run chain.
:func:`energy_ml_loss` is the surrogate whose gradient is minus that (times the sentence count):
descending it is maximum-likelihood learning of the energy. Both samples come in detached, so it
moves the energy's weights only.
"""

from __future__ import annotations

from torch import Tensor


def energy_ml_loss(f_data: Tensor, f_prior: Tensor, l2: float = 0.0) -> Tensor:
    """n·(mean f_α(z⁻) − mean f_α(z⁺) + γ·(mean f_α(z⁺)² + mean f_α(z⁻)²)), fp32: a *sum over the
    batch's n sentences* like every other term (the caller divides last).

    Args:
        f_data: (n,) f_α at the posterior samples z⁺ (detached z: the positive phase).
        f_prior: (m,) f_α at the prior chain's samples z⁻ (the negative phase).
        l2: γ, the weight of the energy-magnitude penalty (``model.ebm.l2``; 0: pure maximum likelihood).
    Returns:
        () the surrogate; with γ = 0, ∂/∂α of it is −n·(E_q[∇_α f] − E_{p_α}[∇_α f]).
    """
    n = f_data.shape[0]
    f_data, f_prior = f_data.float(), f_prior.float()
    loss = f_prior.mean() - f_data.mean()
    if l2:
        loss = loss + l2 * (f_data.square().mean() + f_prior.square().mean())
    return n * loss
