"""The validation pass run during training: rec, KL, ELBO, MMD, MI and AU on held-out data.

A model with a posterior chain (``model.inference`` langevin or amortized+langevin) is measured on
the Gaussian fitted to each sentence's short-run samples (what ``eval()``-mode forward returns):
rec at a sample of it, its KL, MI and AU, so that ``neg_elbo`` stays a bound. With an
energy-based prior the KL is KL(q‖N(0, I)) − f_α(z) + log Z, with log Z estimated by importance
sampling (``log_z``, ``log_z_se``), and the MMD compares q(z) with the prior chain's samples.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, ContextManager, Iterable, Optional

import torch

from textvae.config import ObjectiveConfig
from textvae.evaluation.latent import active_units, mutual_information
from textvae.evaluation.sums import Sums
from textvae.inference.features import eval_mode
from textvae.modeling import TextVAEModel
from textvae.modeling.prior import prior_log_z
from textvae.objectives import gaussian_kl, mmd
from textvae.utils.seeding import seeded_generator


@torch.no_grad()
def validate(model: TextVAEModel, batches: Iterable[Any], objective: ObjectiveConfig,
             device: torch.device, autocast: Optional[ContextManager] = None,
             max_batches: Optional[int] = None, seed: int = 1234,
             au_threshold: float = 0.01) -> dict[str, float]:
    """Average the objective's terms over held-out batches (nats per sentence unless said).

    Uses its own seeded generator, so validating never moves the training RNG and two
    validations of the same model agree.

    Returns:
        rec, kl, neg_elbo (rec + KL), loss (the training objective at β = 1), mmd, mi, au,
        ppl_elbo (exp of −ELBO per predicted token, an upper bound on the PPL), n_sentences,
        n_tokens; with an energy-based prior also log_z and log_z_se.
    """
    generator = seeded_generator(device, seed)
    log_z, log_z_se = 0.0, 0.0
    if model.is_vae and not model.prior.normalized:  # its own stream: the other draws stay as they are
        log_z, log_z_se = prior_log_z(model.prior, model.config.ebm.log_z_samples, device,
                                      seeded_generator(device, seed + 1))
    sums = Sums()
    mus = []
    with eval_mode(model):
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            batch = batch.to(device)
            with autocast or nullcontext():
                out = model(batch.ids, batch.lengths, generator=generator)
            b = batch.ids.shape[0]
            sums.add(rec=out.rec.sum().item(), tokens=int(out.n_tokens.item()), sentences=b)
            if model.is_vae:
                kl = gaussian_kl(out.mu, out.logvar).sum()
                if out.tilt is not None:  # energy-based prior: KL(q‖N) − f_α(z) + log Z
                    kl = kl - out.tilt.sum() + b * log_z
                sums.add(kl=kl.item())
                mus.append(out.mu.float().cpu())
                if b >= 2:
                    prior = model.sample_prior(b, generator)  # N(0, I): the draws of torch.randn(z.shape)
                    sums.add(mmd=mmd(out.z, prior, objective.kernel, objective.bandwidth).item() * b,
                             mi=mutual_information(out.mu, out.logvar, out.z).item() * b)
    n_sent, n_tok = int(sums["sentences"]), int(sums["tokens"])
    if n_sent == 0:
        raise ValueError("the validation split is empty: nothing to evaluate. Check data.valid_files "
                         "or data.max_length (every sentence may have been filtered out).")
    result = sums.means(["rec", "kl"])
    result.update(neg_elbo=(sums["rec"] + sums["kl"]) / n_sent, **sums.means(["mmd", "mi"]))
    result.update(au=active_units(torch.cat(mus), au_threshold) if mus else 0,
                  ppl_elbo=math.exp(min((sums["rec"] + sums["kl"]) / max(n_tok, 1), 50.0)),
                  n_sentences=n_sent, n_tokens=n_tok)
    result["loss"] = result["rec"] + objective.kl_weight * result["kl"] + objective.mmd_weight * result["mmd"]
    if not model.is_vae:
        result["loss"] = result["rec"]
    elif not model.prior.normalized:
        result.update(log_z=log_z, log_z_se=log_z_se)
    return result
