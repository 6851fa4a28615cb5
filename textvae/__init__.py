"""textvae: sentence-level variational autoencoders with the InfoVAE objective.

    from textvae import TextVAE, load_recipe, train

    result = train(load_recipe("recipes/quickstart.yaml"), "runs/qs")
    model = TextVAE.from_pretrained("runs/qs")
    model.generate(3, method="sample", top_p=0.9, seed=0)

The names below are imported when first used (as Hugging Face packages do), so ``import
textvae`` and ``textvae --version`` stay quick: torch and the data libraries load with the first
name that needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "TextVAE": "textvae.inference.api",
    "TextVAEModel": "textvae.modeling.vae",
    "DecodeConfig": "textvae.inference.decoding",
    "Recipe": "textvae.config",
    "load_recipe": "textvae.config",
    "train": "textvae.training.trainer",
    "Trainer": "textvae.training.trainer",
    "evaluate_model": "textvae.evaluation.evaluate",
    "TextVAEFeaturizer": "textvae.sklearn",
    "TextVAEError": "textvae.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'textvae' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
