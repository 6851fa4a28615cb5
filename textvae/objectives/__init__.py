"""Objectives: KL, MMD kernels, KL schedules and the InfoVAE loss, as small pure functions."""

from textvae.objectives.infovae import LossTerms, infovae_loss
from textvae.objectives.kl import free_bits_kl, gaussian_kl
from textvae.objectives.mmd import KERNELS, imq_kernel, mmd, rbf_kernel
from textvae.objectives.schedules import SCHEDULES, kl_beta

__all__ = ["LossTerms", "infovae_loss", "free_bits_kl", "gaussian_kl", "KERNELS", "imq_kernel", "mmd",
           "rbf_kernel", "SCHEDULES", "kl_beta"]
