"""Posterior collapse, told to the user: the validation numbers that show it and the recipe keys
that fight it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

MI_COLLAPSED = 0.1
"""Nats: below this minibatch mutual information, with no active unit, z carries nothing."""


def collapsed(metrics: Mapping[str, Any]) -> bool:
    """Whether validation ``metrics`` show a collapsed latent: no active unit and MI ≈ 0.

    LM runs (no ``au``/``mi``) have no latent to collapse."""
    if "au" not in metrics or "mi" not in metrics:
        return False
    return metrics["au"] == 0 and metrics["mi"] < MI_COLLAPSED


def collapse_warning(metrics: Mapping[str, Any], recipe: Any = None) -> Optional[str]:
    """A one-paragraph warning when ``metrics`` show collapse, naming the keys that help; else None."""
    if not collapsed(metrics) or (recipe is not None and recipe.model.mode == "lm"):
        return None  # a language model has no latent to collapse (its au/mi are zeros by construction)
    dims = f" of {recipe.model.latent_dim}" if recipe is not None else ""
    return (f"warning: posterior collapse: at validation 0{dims} latent units are active (AU) and the "
            f"mutual information is {metrics['mi']:.3f} nats (KL {metrics.get('kl', float('nan')):.3f}), so the "
            "decoder ignores z and its features are useless. Recipe keys that help: objective.preset=mmd_vae "
            "or info_vae (with objective.lam sized against the reconstruction, e.g. 100), "
            "objective.free_bits=0.5, objective.kl_schedule.kind=cyclical, objective.word_dropout=0.3; "
            "see recipes/README.md.")
