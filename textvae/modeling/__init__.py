"""Encoders, the Gaussian posterior, decoders and the TextVAE that joins them."""

from textvae.modeling.outputs import VAEOutput, VocabSpec
from textvae.modeling.posterior import gaussian_log_prob, sample_gaussian, standard_normal_log_prob
from textvae.modeling.registry import DECODERS, ENCODERS
from textvae.modeling.vae import ModelLoadError, TextVAE

__all__ = ["VAEOutput", "VocabSpec", "gaussian_log_prob", "sample_gaussian", "standard_normal_log_prob",
           "DECODERS", "ENCODERS", "ModelLoadError", "TextVAE"]
