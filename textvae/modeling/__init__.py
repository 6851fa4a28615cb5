"""Encoders, the Gaussian posterior, decoders and the TextVAEModel that joins them: nn.Modules only.

The user-facing :class:`textvae.TextVAE` (with tokenizer, generate, encode, ...) extends
TextVAEModel in :mod:`textvae.inference.api`.
"""

from textvae.modeling.outputs import VAEOutput, VocabSpec
from textvae.modeling.posterior import gaussian_log_prob, sample_gaussian, standard_normal_log_prob
from textvae.modeling.registry import DECODERS, ENCODERS
from textvae.modeling.vae import TextVAEModel
from textvae.errors import ModelError

__all__ = ["VAEOutput", "VocabSpec", "gaussian_log_prob", "sample_gaussian", "standard_normal_log_prob",
           "DECODERS", "ENCODERS", "ModelError", "TextVAEModel"]
