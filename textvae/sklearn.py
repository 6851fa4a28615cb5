"""A scikit-learn transformer that turns sentences into TextVAE latents.

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from textvae.sklearn import TextVAEFeaturizer

    pipe = make_pipeline(TextVAEFeaturizer("runs/yelp/model"), LogisticRegression(max_iter=1000))
    cross_val_score(pipe, texts, labels, cv=5)
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class TextVAEFeaturizer(TransformerMixin, BaseEstimator):
    """Sentences → μ (or a sample) of a saved TextVAE's posterior, as an (N, D) float32 array.

    The model is loaded on first use and kept; ``fit`` learns nothing. Only the constructor's
    arguments are parameters, so ``clone`` and ``cross_val_score`` copy it cheaply.

    Args:
        model_dir: a directory written by ``textvae train`` / ``TextVAE.save_pretrained``.
        use: ``mean`` (μ, deterministic) or ``sample`` (one draw from q(z|x) per sentence).
        batch_size: sentences encoded at once.
        max_length: longest input in tokens (default: the model's maximum); longer ones are
            truncated with a warning.
        device: ``cpu``, ``cuda``, or ``auto``.
        seed: seeds ``use="sample"``.
    """

    def __init__(self, model_dir: str, use: Literal["mean", "sample"] = "mean", batch_size: int = 64,
                 max_length: Optional[int] = None, device: str = "cpu", seed: Optional[int] = None):
        self.model_dir = model_dir
        self.use = use
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.seed = seed

    def fit(self, X: Sequence[str], y: Any = None) -> "TextVAEFeaturizer":
        """No-op (the model is already trained); returns self."""
        return self

    def transform(self, X: Sequence[str]) -> np.ndarray:
        """X: a sequence of sentences → (N, latent_dim) float32."""
        z = self._model().encode(list(X), use=self.use, batch_size=self.batch_size,
                                 max_length=self.max_length, seed=self.seed)
        return z.numpy()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"z{i}" for i in range(self._model().latent_dim)], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: usable without fit

    def _model(self) -> Any:
        key = (str(self.model_dir), self.device)
        if getattr(self, "_loaded_key", None) != key:
            from textvae.inference.api import TextVAE
            from textvae.utils.precision import resolve_device

            self._loaded = TextVAE.from_pretrained(self.model_dir, device=resolve_device(self.device)).eval()
            self._loaded_key = key
        return self._loaded

    def __getstate__(self) -> dict[str, Any]:
        # Pickle (joblib workers, saved pipelines) the parameters only; the model reloads.
        state = dict(super().__getstate__())
        state.pop("_loaded", None)
        state.pop("_loaded_key", None)
        return state
