"""What the trainer does for models with Langevin chains (``model.inference: langevin |
amortized+langevin``, ``model.prior: ebm``): their own seeded noise stream, checkpointed with the
run; the extra terms their forward pass returns, handed to the objective; and the refusal of data
parallelism, which they do not support.

The chains draw their noise from a private ``torch.Generator`` seeded from ``train.seed`` (and the
rank), not from torch's global stream: adding or lengthening a chain leaves the dropout and z noise
of the rest of the step as they were, and the generator's state, saved in every checkpoint as
``chain_rng``, makes ``--resume`` continue the chains exactly.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from textvae.config import Recipe
from textvae.errors import ConfigError
from textvae.modeling import VAEOutput
from textvae.training.distributed import Replicas

CHAIN_SEED_OFFSET = 7919
"""Added to ``train.seed``: the chains' stream differs from the run's global stream of the same seed."""


def refuse_data_parallel(recipe: Recipe, replicas: Replicas) -> None:
    """Stop before the process group is joined when chains would run under DDP."""
    model = recipe.model
    if replicas.enabled and model.uses_chains:
        choice = f"model.inference={model.inference}" if model.inference != "amortized" else "model.prior=ebm"
        raise ConfigError(
            f"{choice} is not supported with --nproc > 1: the Langevin chains take gradients inside the "
            "forward pass, and an energy-based prior's negatives and MMD would need gathering across processes, "
            "which textvae does not do yet. Train it in one process (one GPU, or --nproc 1).")


def chain_generator(recipe: Recipe, device: torch.device, rank: int = 0) -> Optional[torch.Generator]:
    """The chains' private noise stream, or None for a model without chains."""
    if not recipe.model.uses_chains:
        return None
    return torch.Generator(device=device).manual_seed(recipe.train.seed + CHAIN_SEED_OFFSET + rank)


def chain_terms(out: VAEOutput, recipe: Recipe) -> dict[str, Any]:
    """The keyword arguments of :func:`~textvae.objectives.infovae_loss` that a chain model's
    forward pass adds (all None for an amortized VAE with a Gaussian prior), and the energy's penalty."""
    return {"tilt": out.tilt, "energy_data": out.energy_data, "energy_prior": out.energy_prior,
            "rec_encoder": out.rec_encoder, "energy_l2": recipe.model.ebm.l2}
