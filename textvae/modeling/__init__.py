"""Encoders, the Gaussian posterior, decoders and the TextVAEModel that joins them: nn.Modules only.

The user-facing :class:`textvae.TextVAE` (with tokenizer, generate, encode, ...) extends
TextVAEModel in :mod:`textvae.inference.api`. Names are imported when first used, so that a
light submodule (``outputs``) does not load the Transformer encoders and decoders with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VAEOutput": "textvae.modeling.outputs", "VocabSpec": "textvae.modeling.outputs",
    "gaussian_log_prob": "textvae.modeling.posterior", "sample_gaussian": "textvae.modeling.posterior",
    "standard_normal_log_prob": "textvae.modeling.posterior",
    "DECODERS": "textvae.modeling.registry", "ENCODERS": "textvae.modeling.registry",
    "TextVAEModel": "textvae.modeling.vae",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'textvae.modeling' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
