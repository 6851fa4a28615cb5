"""The full evaluation of a trained model on one split (``textvae evaluate``).

Numbers are nats per sentence unless said, following He et al. 2019: IW-NLL with K samples,
−ELBO and their gap, PPL with its stated denominator, KL, MI (minibatch and whole-split), AU,
MMD with a fixed IMQ kernel, reconstruction BLEU from μ (with ``hit_limit``, the share of those
greedy reconstructions cut at the length limit instead of ending with EOS), and diversity of
prior samples.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable, Optional

import torch
from tqdm.auto import tqdm

from textvae.errors import ConfigError
from textvae.evaluation.latent import active_units, mutual_information, mutual_information_full
from textvae.evaluation.likelihood import iw_log_likelihood, proposal_notes
from textvae.evaluation.progress import EvalProgress
from textvae.inference.decoding import DecodeConfig, decode, decode_tokens
from textvae.inference.features import eval_mode
from textvae.evaluation.text_metrics import bleu, distinct_n, exact_match, self_bleu
from textvae.inference.api import TextVAE
from textvae.modeling.prior import prior_log_z
from textvae.objectives import mmd
from textvae.utils.precision import resolve_precision
from textvae.utils.seeding import seeded_generator

# The MMD reported as a metric uses one fixed kernel whatever the training objective used,
# so rows of a comparison table are measured with the same ruler.
METRIC_KERNEL = "imq"
# The decoding limit for a model that records none (saved before models recorded their longest
# training sentence), as evaluations used before.
FALLBACK_DECODE_LENGTH = 60


class EvaluationStopped(Exception):
    """``after_batch`` asked the evaluation to stop; ``progress`` is where it stands."""

    def __init__(self, progress: EvalProgress) -> None:
        super().__init__(f"evaluation stopped after {progress.batches} batches")
        self.progress = progress


@torch.no_grad()
def evaluate_model(model: TextVAE, batches: Iterable[Any], iw_samples: int = 500, seed: int = 0,
                   au_threshold: float = 0.01, num_prior_samples: int = 100, max_decode_length: Optional[int] = None,
                   chunk_rows: int = 512, progress: bool = False,
                   total: Optional[int] = None, precision: str = "fp32", resume: Optional[EvalProgress] = None,
                   after_batch: Optional[Callable[[EvalProgress], bool]] = None) -> dict[str, Any]:
    """Evaluate ``model`` on ``batches`` (textvae Batch objects of one split).

    Args:
        iw_samples: K for the importance-weighted bound (0 is refused; 1 gives the ELBO).
        precision: ``fp32`` (the reference), or ``bf16``/``fp16`` autocast for the network's
            matmuls; log-sum-exps, log-likelihood sums, KL, MI and MMD stay fp32 either way.
        au_threshold: the variance above which a latent dimension counts as active.
        num_prior_samples: sentences decoded from z ~ p(z) for distinct-n / self-BLEU.
        max_decode_length: token limit for reconstructions and samples (None: the model's
            :attr:`~textvae.TextVAE.default_max_new_tokens` where it records one, the longest
            training sentence; else 60).
        resume: the progress of an interrupted evaluation of the same model on the same ``batches``
            (in the same order) with the same settings: its batches are skipped, and the result is
            the one an uninterrupted evaluation gives.
        after_batch: called with the progress after each batch (e.g. to save it); returning True
            stops the evaluation with :class:`EvaluationStopped`.
    Returns:
        A flat dict with the keys listed in the README (iw_nll, neg_elbo, ppl, …).
    """
    if iw_samples < 1:
        raise ConfigError(f"--iw-samples must be >= 1 (500 is the published protocol), got {iw_samples}.")
    greedy, ancestral = DecodeConfig(method="greedy"), DecodeConfig(method="sample")
    if max_decode_length is None:
        max_decode_length = (model.default_max_new_tokens if model.generation_defaults.max_new_tokens
                             else FALLBACK_DECODE_LENGTH)

    device = model.device
    autocast = resolve_precision(precision, device, option="precision").autocast
    with eval_mode(model):
        gen = seeded_generator(device, seed)
        tok = model.tokenizer
        start = time.perf_counter()
        # An energy-based prior's log Z, once, from its own stream (N(0, I): 0, nothing drawn).
        log_z, log_z_se = (prior_log_z(model.prior, model.config.ebm.log_z_samples, device,
                                       seeded_generator(device, seed + 1)) if model.is_vae else (0.0, 0.0))

        state = resume if resume is not None else EvalProgress()
        if state.generator_state is not None:
            gen.set_state(state.generator_state)
        seconds_before = state.seconds
        sums, mus, logvars, zs, hyps, refs = state.sums, state.mus, state.logvars, state.zs, state.hyps, state.refs
        for index, batch in enumerate(tqdm(batches, disable=not progress, total=total, desc="evaluate",
                                           dynamic_ncols=True)):
            if index < state.batches:  # done before the interruption
                continue
            batch = batch.to(device)
            ids, lengths = batch.ids, batch.lengths
            b = ids.shape[0]
            sums.add(sentences=b, tokens=int((lengths - 1).sum()))
            if not model.is_vae:  # a language model's NLL is exact
                with autocast():
                    rec, _ = model.reconstruction_nll(ids, lengths, None)
                nll = rec.sum().item()
                sums.add(iw_nll=nll, neg_elbo=nll, rec=nll)
            else:
                with autocast():
                    out = iw_log_likelihood(model, ids, lengths, iw_samples, chunk_rows, gen, log_z=log_z)
                sums.add(iw_nll=-out["iw_ll"].sum().item(), neg_elbo=-out["elbo"].sum().item(),
                         rec=out["rec"].sum().item(), kl=out["kl"].sum().item())
                mu, logvar = out["mu"].float(), out["logvar"].float()  # the encoder ran once, inside the IW pass
                z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, device=device, generator=gen)
                if b >= 2:
                    prior = model.sample_prior(b, gen)  # N(0, I): the draws of torch.randn(z.shape)
                    sums.add(mmd=mmd(z, prior, METRIC_KERNEL).item() * b,
                             mi=mutual_information(mu, logvar, z).item() * b)
                mus.append(mu.float().cpu()), logvars.append(logvar.float().cpu()), zs.append(z.float().cpu())
                if tok is not None:
                    out = decode_tokens(model.decoder, mu, b, model.vocab, greedy, max_decode_length)
                    hyps += [_words(tok, s) for s in out.sequences]
                    state.cut += int((~out.finished).sum())
                    refs += [_words(tok, row[1:int(n) - 1].tolist()) for row, n in zip(ids.cpu(), lengths.cpu())]
            state.batches = index + 1
            state.seconds = seconds_before + time.perf_counter() - start
            state.generator_state = gen.get_state()
            if after_batch is not None and after_batch(state):
                raise EvaluationStopped(state)
        cut = state.cut
        n_sent, n_tok = int(sums["sentences"]), int(sums["tokens"])
        if n_sent == 0:
            raise ConfigError("the evaluation split is empty: no sentence to evaluate. Check the split name, "
                                  "data.max_length (everything may have been filtered out) and the data files.")

        word_level = bool(getattr(tok, "is_word_level", True))
        result: dict[str, Any] = sums.means(["iw_nll", "neg_elbo", "rec", "kl", "mmd", "mi"])
        result.update({
            "ppl": math.exp(sums["iw_nll"] / n_tok),
            "ppl_denominator": ("word tokens + one EOS per sentence" if word_level
                                else "subword tokens + one EOS per sentence (not comparable with word-level PPL)"),
            "iw_samples": iw_samples if model.is_vae else 0, "precision": precision,
            "n_sentences": n_sent, "n_tokens": n_tok, "latent_dim": model.latent_dim if model.is_vae else 0,
        })
        result["iw_gap"] = result["neg_elbo"] - result["iw_nll"]
        if model.is_vae:
            mu_all, logvar_all, z_all = torch.cat(mus), torch.cat(logvars), torch.cat(zs)
            result["mi_full"] = mutual_information_full(mu_all, logvar_all, z_all).item()
            result["au"] = active_units(mu_all, au_threshold)
            result["au_threshold"] = au_threshold
            result.update(proposal_notes(model, log_z, log_z_se))
            if hyps:
                result["bleu"] = bleu(hyps, refs)
                result["exact_match"] = exact_match(hyps, refs)
                result["hit_limit"] = cut / len(hyps)
                result["decode_limit"] = max_decode_length
        else:
            result.update({"kl": 0.0, "mi": 0.0, "mi_full": 0.0, "au": 0, "mmd": 0.0})
        if tok is not None and num_prior_samples > 0:
            # z ~ p(z) for a VAE; a language model samples from its own start state.
            prior_z = model.sample_prior(num_prior_samples, gen) if model.is_vae else None
            samples = [_words(tok, s) for s in decode(model.decoder, prior_z, num_prior_samples, model.vocab,
                                                      ancestral, max_decode_length, gen)]
            result.update(distinct_1=distinct_n(samples, 1), distinct_2=distinct_n(samples, 2),
                          self_bleu=self_bleu(samples))
            if model.is_vae:
                result["prior_samples"] = [" ".join(s) for s in samples[:10]]
        result["seconds"] = seconds_before + time.perf_counter() - start
        return result


def _words(tokenizer: Any, ids: list[int]) -> list[str]:
    return tokenizer.decode(ids).split()


# Columns of the printed table, in order, with their formats.
TABLE_COLUMNS = [("iw_nll", "{:.2f}"), ("neg_elbo", "{:.2f}"), ("iw_gap", "{:.2f}"), ("ppl", "{:.2f}"),
                 ("rec", "{:.2f}"), ("kl", "{:.2f}"), ("mi", "{:.2f}"), ("mi_full", "{:.2f}"), ("au", "{}"),
                 ("mmd", "{:.4f}"), ("bleu", "{:.2f}"), ("exact_match", "{:.3f}"), ("hit_limit", "{:.3f}"),
                 ("distinct_1", "{:.3f}"), ("distinct_2", "{:.3f}"), ("self_bleu", "{:.2f}")]


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: one row per named result, the metrics as columns (— where absent)."""
    head = "| run | " + " | ".join(c for c, _ in TABLE_COLUMNS) + " |"
    sep = "|---|" + "---|" * len(TABLE_COLUMNS)
    lines = [head, sep]
    for name, r in rows.items():
        cells = [fmt.format(r[c]) if c in r and r[c] is not None else "—" for c, fmt in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
