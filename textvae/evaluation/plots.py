"""Pictures of the latent space: a 2-D PCA scatter of posterior means, coloured by label."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np


def plot_pca(mu: np.ndarray, path: str | Path, labels: Optional[Sequence[int]] = None,
             label_names: Optional[Sequence[str]] = None, title: str = "") -> np.ndarray:
    """Scatter the first two principal components of ``mu`` (N, D) into a PNG, one colour per label.

    Returns:
        the explained variance ratio of the two components.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    components = min(2, mu.shape[1], mu.shape[0])
    pca = PCA(n_components=components)
    xy = pca.fit_transform(mu)
    if components < 2:  # one dimension (or one point): plot it on a line
        xy = np.concatenate([xy, np.zeros((len(xy), 2 - components))], axis=1)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.6)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            name = label_names[value] if label_names is not None else str(value)
            mask = labels == value
            ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, label=f"{name} ({int(mask.sum())})")
        ax.legend(markerscale=3, fontsize="small")
    ratio = np.zeros(2)
    ratio[:components] = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% of variance)")
    ax.set_title(title or f"PCA of posterior means, {len(mu)} sentences")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return ratio
