"""Objectives: KL, MMD kernels, KL schedules, the InfoVAE loss and the energy prior's maximum-likelihood
term, as small pure functions."""

from textvae.objectives.energy import energy_ml_loss
from textvae.objectives.infovae import LossTerms, infovae_loss
from textvae.objectives.kl import free_bits_kl, gaussian_kl
from textvae.objectives.mmd import KERNELS, imq_kernel, mmd, rbf_kernel
from textvae.objectives.schedules import SCHEDULES, kl_beta, warmup_end

__all__ = ["energy_ml_loss", "LossTerms", "infovae_loss", "free_bits_kl", "gaussian_kl", "KERNELS", "imq_kernel", "mmd",
           "rbf_kernel", "SCHEDULES", "kl_beta", "warmup_end"]
