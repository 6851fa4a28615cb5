"""Metrics: the validation pass, mutual information, active units (and the full evaluation)."""

from textvae.evaluation.latent import active_units, mutual_information, mutual_information_full
from textvae.evaluation.validation import validate

__all__ = ["active_units", "mutual_information", "mutual_information_full", "validate"]
