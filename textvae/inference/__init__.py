"""Using a trained model: the user-facing TextVAE, decoding, generation, reconstruction,
interpolation, features."""

from textvae.inference.api import TextVAE, latent_path
from textvae.inference.decoding import DecodeConfig

__all__ = ["DecodeConfig", "TextVAE", "latent_path"]
