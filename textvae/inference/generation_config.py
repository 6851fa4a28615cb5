"""The decoding defaults a model directory records: ``generation_config.json``, as in Hugging Face.

    {"max_new_tokens": 29,
     "max_new_tokens_from": "the longest sentence of the train split (tokens, EOS excluded, after data.max_length)"}

``textvae train`` records the length of the longest training sentence it kept (after
``data.max_length`` filtered or truncated the split; ``longest`` in ``data_stats.json``), so that
decoding with no length limit given stops where the training data did, not at the position limit
(``model.max_positions`` − 2, hundreds of tokens that a rambling decoder would fill). A model
directory without the file (saved before textvae recorded it, or by ``save_pretrained`` of a model
built by hand) decodes with the position limit, as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from textvae.errors import ModelError
from textvae.utils.io import atomic_write_json
from textvae.utils.layout import GENERATION_CONFIG_NAME

TRAIN_SOURCE = "the longest sentence of the train split (tokens, EOS excluded, after data.max_length)"


@dataclass
class GenerationDefaults:
    """What decoding uses when a call leaves an option unset."""

    max_new_tokens: Optional[int] = None
    """Most tokens per sentence, EOS excluded (None: the position limit, model.max_positions − 2)."""
    max_new_tokens_from: Optional[str] = None
    """Where ``max_new_tokens`` comes from, for people reading the file."""

    @classmethod
    def from_data_stats(cls, stats: dict[str, Any]) -> "GenerationDefaults":
        """The defaults of a model trained on data with these statistics
        (:func:`textvae.data.tokenize_corpus`: ``stats["train"]["longest"]``)."""
        longest = stats.get("train", {}).get("longest")
        return cls(longest, TRAIN_SOURCE) if longest else cls()

    def save(self, directory: str | Path) -> None:
        """Write ``generation_config.json`` into ``directory`` (atomically); with nothing recorded,
        remove one left there by an earlier save, so the directory says what the model holds."""
        path = Path(directory) / GENERATION_CONFIG_NAME
        if self.max_new_tokens is None:
            path.unlink(missing_ok=True)
            return
        atomic_write_json(path, {"max_new_tokens": self.max_new_tokens,
                                 "max_new_tokens_from": self.max_new_tokens_from})

    @classmethod
    def load(cls, directory: str | Path) -> "GenerationDefaults":
        """The defaults ``directory`` records; none (``GenerationDefaults()``) without the file.

        Raises:
            ModelError: the file is not JSON or its ``max_new_tokens`` is not an integer >= 1.
        """
        path = Path(directory) / GENERATION_CONFIG_NAME
        if not path.is_file():
            return cls()
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ModelError(f"{path} is not valid JSON ({err}); the model directory is damaged. Delete the file "
                             "to decode with the position limit, or copy it from the run that wrote these "
                             "weights.") from err
        value = meta.get("max_new_tokens") if isinstance(meta, dict) else "not an object"
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ModelError(f"{path}: max_new_tokens must be an integer >= 1 or null, got {value!r}. Fix or "
                             "delete the file (without it, decoding stops at the position limit).")
        source = meta.get("max_new_tokens_from")
        return cls(value, source if isinstance(source, str) else None)
