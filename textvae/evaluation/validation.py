"""The validation pass run during training: rec, KL, ELBO, MMD, MI and AU on held-out data."""

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
        n_tokens.
    """
    generator = seeded_generator(device, seed)
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
                sums.add(kl=gaussian_kl(out.mu, out.logvar).sum().item())
                mus.append(out.mu.float().cpu())
                if b >= 2:
                    prior = torch.randn(out.z.shape, device=device, generator=generator)
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
    return result
