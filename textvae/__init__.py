"""textvae: sentence-level variational autoencoders with the InfoVAE objective."""

__version__ = "0.1.0"
