"""Using a trained model: the user-facing TextVAE, decoding, generation, reconstruction,
interpolation, features.

Names are imported when first used: importing :mod:`textvae.inference.decoding` alone (the CLI's
flags need its method names) must not load the data libraries that :class:`TextVAE` needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TextVAE": "textvae.inference.api", "latent_path": "textvae.inference.api",
            "DecodeConfig": "textvae.inference.decoding"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'textvae.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
