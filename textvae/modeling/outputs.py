"""What the model's forward passes return, with the shapes of each field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor


@dataclass(frozen=True)
class VocabSpec:
    """The tokenizer facts a model needs; taken from the tokenizer, never hard-coded."""

    vocab_size: int
    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: Optional[int]


@dataclass
class VAEOutput:
    """One forward pass of :class:`~textvae.modeling.TextVAE`."""

    rec: Tensor
    """(B,) −log p(x|z) per sentence, summed over predicted tokens, fp32."""
    n_tokens: Tensor
    """() number of predicted tokens in the batch (tokens + one EOS per sentence)."""
    mu: Optional[Tensor] = None
    """(B, D) posterior mean (None for a language model)."""
    logvar: Optional[Tensor] = None
    """(B, D) posterior log-variance."""
    z: Optional[Tensor] = None
    """(B, D) the latent sample: with an encoder, the sample of q(z|x) (or μ) that the KL and MMD
    see; with ``inference: langevin``, the chain's final z. The decoder scored it, except under
    ``amortized+langevin``, where it scored ``refined``."""
    refined: Optional[Tensor] = None
    """(B, D) ``amortized+langevin`` in training: z refined by the chain (detached), what ``rec`` scores."""
    rec_encoder: Optional[Tensor] = None
    """(B,) ``amortized+langevin`` in training: −log p(x|z) at the encoder's sample ``z``, whose
    gradient reaches the encoder only (the decoder's weights are held fixed in it), fp32."""
    tilt: Optional[Tensor] = None
    """(B,) energy-based prior with an encoder: f_α(z) at ``z``, whose gradient reaches z (the
    encoder) but not the energy's weights; the KL from p_α is KL(q‖N(0, I)) − f_α(z) + log Z."""
    energy_data: Optional[Tensor] = None
    """(B,) energy-based prior, training: f_α at the posterior samples (detached z): the
    maximum-likelihood gradient's positive phase, E_q[∇_α f]."""
    energy_prior: Optional[Tensor] = None
    """(B,) energy-based prior, training: f_α at the prior chain's samples: the negative phase."""
    prior_z: Optional[Tensor] = None
    """(B, D) energy-based prior, training: the short-run prior samples (detached); the MMD
    compares q(z) with them."""
