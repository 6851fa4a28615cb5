"""Pictures of the latent space: a 2-D PCA scatter of posterior means, coloured by label; and the
aggregate posterior q(z) drawn against samples of the prior (N(0, I), and an energy-based prior's
chain), all projected on the principal components of the posterior samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

if TYPE_CHECKING:
    from textvae.inference.api import TextVAE

POSTERIOR = "aggregate posterior"
GAUSSIAN = "N(0, I)"
EBM = "EBM prior"
# (colour, marker) of each prior set: apart from the label colours (tab10) of the posterior points.
PRIOR_STYLES = {GAUSSIAN: ("black", "x"), EBM: ("magenta", "+")}


def pca_projections(reference: np.ndarray, *others: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Fit a 2-component PCA on ``reference`` (N, D) and project it and each of ``others`` (M, D) on it.

    With D = 1 (or a single reference point) the missing component is a column of zeros.

    Returns:
        the projections [(N, 2), (M, 2), …] in the order given, and the explained variance ratio
        of the two components in ``reference`` (2,).
    """
    from sklearn.decomposition import PCA

    components = min(2, reference.shape[1], reference.shape[0])
    pca = PCA(n_components=components).fit(reference)
    projections = []
    for x in (reference, *others):
        xy = pca.transform(x)
        if components < 2:  # one dimension (or one point): plot it on a line
            xy = np.concatenate([xy, np.zeros((len(xy), 2 - components))], axis=1)
        projections.append(xy)
    ratio = np.zeros(2)
    ratio[:components] = pca.explained_variance_ratio_
    return projections, ratio


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    return plt


def _scatter_labelled(ax, xy: np.ndarray, labels: Optional[Sequence[int]], label_names: Optional[Sequence[str]],
                      name: str = "") -> None:
    """Points coloured by label (one colour, named ``name``, without labels)."""
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.6, label=f"{name} ({len(xy)})" if name else None)
        return
    labels = np.asarray(labels)
    for value in np.unique(labels):
        label = label_names[value] if label_names is not None else str(value)
        mask = labels == value
        prefix = f"{name}: " if name else ""
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, label=f"{prefix}{label} ({int(mask.sum())})")


def _save(fig, path: str | Path) -> None:
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")


def plot_pca(mu: np.ndarray, path: str | Path, labels: Optional[Sequence[int]] = None,
             label_names: Optional[Sequence[str]] = None, title: str = "") -> np.ndarray:
    """Scatter the first two principal components of ``mu`` (N, D) into a PNG, one colour per label.

    Returns:
        the explained variance ratio of the two components.
    """
    plt = _pyplot()
    [xy], ratio = pca_projections(mu)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    _scatter_labelled(ax, xy, labels, label_names)
    if labels is not None:
        ax.legend(markerscale=3, fontsize="small")
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
    ax.set_title(title or f"PCA of posterior means, {len(mu)} sentences")
    _save(fig, path)
    plt.close(fig)
    return ratio


# --------------------------------------------------------------------------- posterior against prior


@torch.no_grad()
def aggregate_posterior_samples(model: "TextVAE", texts: Sequence[str], seed: Optional[int] = 0,
                                batch_size: int = 64, max_length: Optional[int] = None) -> torch.Tensor:
    """One posterior sample per text, as training draws it; together, samples of the aggregate
    posterior q(z) = mean over x of q(z|x). → (N, D) fp32 CPU.

    ``amortized``: z ~ q(z|x) of the encoder. A posterior chain (``langevin``,
    ``amortized+langevin``): the final z of one short-run chain per sentence
    (:meth:`~textvae.modeling.vae.TextVAEModel.posterior_samples`), not a draw of the Gaussian
    fitted to ``model.langevin.fit_samples`` of them that ``encode(use="sample")`` returns, which
    costs that many chains per sentence. Noise from a generator seeded with ``seed``.
    """
    from textvae.data import Collator
    from textvae.inference.features import (as_text_list, check_max_length, default_max_length, eval_mode,
                                            require_encoder, tokenize_texts)
    from textvae.modeling.posterior import sample_gaussian
    from textvae.utils.seeding import seeded_generator

    require_encoder(model)
    max_length = max_length or default_max_length(model)
    check_max_length(model, max_length, "encoder")
    ids, report = tokenize_texts(model.tokenizer, as_text_list(texts), max_length)
    report.warn(max_length, stacklevel=3)
    collate = Collator(model.vocab.pad_id, model.vocab.bos_id, model.vocab.eos_id)
    generator = seeded_generator(model.device, seed)
    out = [torch.zeros(0, model.latent_dim)]
    with eval_mode(model):
        for start in range(0, len(ids), batch_size):
            batch = collate([{"ids": x} for x in ids[start:start + batch_size]]).to(model.device)
            if model.config.inference == "amortized":
                z = sample_gaussian(*model.posterior(batch.ids, batch.lengths), generator)
            else:  # the chain takes its own gradients: it turns them on inside
                z = model.posterior_samples(batch.ids, batch.lengths, generator)
            out.append(z.float().cpu())
    return torch.cat(out)


def prior_samples(model: "TextVAE", n: int, seed: Optional[int] = 0) -> dict[str, torch.Tensor]:
    """``n`` draws of N(0, I) and, for ``model.prior: ebm``, ``n`` of the energy-based prior's
    short-run chain (:meth:`sample_prior`), from one generator seeded with ``seed`` (the Gaussian
    first). → {:data:`GAUSSIAN`: (n, D), [:data:`EBM`: (n, D)]}, fp32 CPU."""
    from textvae.utils.seeding import seeded_generator

    generator = seeded_generator(model.device, seed)
    sets = {GAUSSIAN: torch.randn(n, model.latent_dim, device=model.device, generator=generator).cpu()}
    if not model.prior.normalized:
        sets[EBM] = model.sample_prior(n, generator).float().cpu()
    return sets


@dataclass
class SetSummary:
    """Where one set of samples lies on the posterior's two principal components."""

    n: int
    mean: np.ndarray
    """(2,) mean of its projections on PC1, PC2."""
    std: np.ndarray
    """(2,) their standard deviations."""
    in_plane: float
    """Share of the set's own total variance (all D dimensions) in the PC1–PC2 plane."""


def summarize(samples: np.ndarray, xy: np.ndarray) -> SetSummary:
    """The summary of ``samples`` (N, D) from its projections ``xy`` (N, 2)."""
    total = float(samples.var(0).sum())
    return SetSummary(len(xy), xy.mean(0), xy.std(0), float(xy.var(0).sum()) / total if total > 0 else 0.0)


@dataclass
class OverlayResult:
    ratio: np.ndarray
    """(2,) explained variance ratio of PC1, PC2 in the posterior samples."""
    projections: dict[str, np.ndarray]
    """Set name → (N, 2) projections: :data:`POSTERIOR` first, then the prior sets in the order given."""
    summaries: dict[str, SetSummary]
    """Set name → its :class:`SetSummary`, in the same order."""


def plot_prior_overlay(posterior: np.ndarray, priors: Mapping[str, np.ndarray], path: str | Path,
                       labels: Optional[Sequence[int]] = None, label_names: Optional[Sequence[str]] = None,
                       title: str = "") -> OverlayResult:
    """The aggregate posterior against prior samples, in one PNG: a PCA fitted on ``posterior``
    (N, D) alone, every set projected on it; the posterior points coloured by label (one colour
    without labels), each prior set (name → (M, D)) with its own marker and colour.
    """
    names = list(priors)
    projections, ratio = pca_projections(posterior, *(priors[k] for k in names))
    sets = {POSTERIOR: posterior, **{k: priors[k] for k in names}}
    projected = dict(zip(sets, projections))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=120)
    _scatter_labelled(ax, projected[POSTERIOR], labels, label_names, name=POSTERIOR)
    for name in names:
        colour, marker = PRIOR_STYLES.get(name, ("gray", "^"))
        xy = projected[name]
        ax.scatter(xy[:, 0], xy[:, 1], s=10, alpha=0.35, c=colour, marker=marker, linewidths=0.8,
                   label=f"{name} ({len(xy)})")
    ax.legend(markerscale=2, fontsize="small")
    ax.set_xlabel(f"PC1 of the posterior samples ({100 * ratio[0]:.1f}% of their variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}%)")
    ax.set_title(title or f"aggregate posterior against prior samples (PCA of q(z), {len(posterior)} samples)")
    _save(fig, path)
    plt.close(fig)
    summaries = {name: summarize(sets[name], projected[name]) for name in sets}
    return OverlayResult(ratio, projected, summaries)
