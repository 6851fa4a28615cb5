"""Text in, latents out: tokenizing raw text for a model, encoding corpora, writing features.

Raw text is tokenized with the model's own tokenizer and cut to a maximum length; every cut,
empty input and all-unknown input is reported once per call as an :class:`InputWarning`, so
that nothing is silently changed. Inputs are never dropped: features stay aligned with texts.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

import numpy as np
import torch
from torch import Tensor

from textvae.config import DataConfig
from textvae.data import SHIPPED_CORPORA, Collator, label_names, load_corpus
from textvae.errors import ConfigError, DataError
from textvae.modeling.posterior import sample_gaussian
from textvae.utils.seeding import seeded_generator

if TYPE_CHECKING:  # annotations only: TextVAE (inference/api.py) is built on these helpers
    from datasets import Dataset

    from textvae.inference.api import TextVAE

Use = Literal["mean", "sample"]
FEATURE_FORMATS = (".npy", ".parquet")


class InputWarning(UserWarning):
    """Input text that was changed or is degenerate (truncated, empty, only unknown words)."""


# --------------------------------------------------------------------------- text → ids


@dataclass
class TokenizeReport:
    """What :func:`tokenize_texts` had to do to the inputs."""

    total: int = 0
    truncated: int = 0
    longest: int = 0
    """Length in tokens of the longest input before truncation."""
    empty: int = 0
    only_unknown: int = 0

    def add(self, other: "TokenizeReport") -> None:
        self.total += other.total
        self.truncated += other.truncated
        self.longest = max(self.longest, other.longest)
        self.empty += other.empty
        self.only_unknown += other.only_unknown

    def warn(self, max_length: int, stacklevel: int = 3) -> None:
        """One :class:`InputWarning` per kind of problem found."""
        if self.truncated:
            warnings.warn(f"{self.truncated} of {self.total} input text(s) are longer than {max_length} tokens "
                          f"(the longest has {self.longest}) and were truncated to {max_length}; "
                          "pass a larger max_length (--max-length) to keep more.", InputWarning, stacklevel=stacklevel)
        if self.empty:
            warnings.warn(f"{self.empty} of {self.total} input text(s) are empty (no token); each is encoded "
                          "as the empty sentence.", InputWarning, stacklevel=stacklevel)
        if self.only_unknown:
            warnings.warn(f"{self.only_unknown} of {self.total} input text(s) consist only of words unknown "
                          "to the model's tokenizer (<unk>); their features carry no information about the "
                          "words.", InputWarning, stacklevel=stacklevel)


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], TokenizeReport]:
    """Token ids (no specials) of each text, cut to ``max_length``, and what was done.

    Raises:
        ConfigError: an item of ``texts`` is not a string (None, a number).
    """
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise ConfigError(f"texts must be strings, got {type(bad[0]).__name__} {bad[0]!r}.")
    ids = tokenizer.encode_batch(texts) if texts else []
    unk = tokenizer.unk_id
    report = TokenizeReport(
        total=len(ids), longest=max((len(x) for x in ids), default=0),
        truncated=sum(len(x) > max_length for x in ids), empty=sum(not x for x in ids),
        only_unknown=sum(bool(x) and unk is not None and all(t == unk for t in x) for x in ids))
    return [x[:max_length] for x in ids], report


def as_text_list(texts: Sequence[str] | str) -> list[str]:
    """A lone string is one text, not a sequence of characters."""
    return [texts] if isinstance(texts, str) else list(texts)


def default_max_length(model: "TextVAE") -> int:
    """Longest sentence (tokens, specials excluded) the model's positions allow."""
    return max(1, model.config.max_positions - 2)


# Parts that embed positions and so cannot read or write past model.max_positions.
POSITIONAL_KINDS = ("transformer",)


def check_max_length(model: "TextVAE", max_length: int, part: str) -> None:
    """Raise a clear error when a Transformer ``part`` (encoder/decoder) cannot hold ``max_length`` tokens."""
    kind = getattr(model.config, part).kind
    limit = default_max_length(model)
    if kind in POSITIONAL_KINDS and max_length > limit:
        raise ConfigError(f"max_length {max_length} is longer than the {kind} {part} can hold: "
                           f"model.max_positions={model.config.max_positions} leaves {limit} tokens after BOS "
                           f"and EOS. Use --max-length {limit} or less.")


# --------------------------------------------------------------------------- encoding


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate without dropout, then give the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def require_encoder(model: "TextVAE") -> None:
    if not model.is_vae:
        raise ConfigError("this model is a language model (model.mode=lm): it has no encoder and no latent "
                           "code to encode into; use a model trained with model.mode=vae.")
    if model.tokenizer is None:
        raise ConfigError("this model has no tokenizer, so it cannot read text. Load it with "
                           "TextVAE.from_pretrained from a directory with a tokenizer/ folder, or build it "
                           "as TextVAE(config, vocab, tokenizer).")


@torch.no_grad()
def encode_ids(model: "TextVAE", ids: list[list[int]], use: Use = "mean", batch_size: int = 64,
               generator: Optional[torch.Generator] = None, progress: bool = False) -> Tensor:
    """Latents of tokenized sentences: μ of q(z|x), or one sample from it. → (N, D) fp32 CPU.

    With short-run inference (``model.inference`` langevin or amortized+langevin) q is the Gaussian
    fitted to each sentence's short-run samples, so ``mean`` is the mean of those samples; their
    chains draw from ``generator`` (None: a fixed seed, so the same batch encodes the same way).
    """
    if use not in ("mean", "sample"):
        raise ConfigError(f"use must be 'mean' or 'sample', got {use!r}.")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
    collate = Collator(model.vocab.pad_id, model.vocab.bos_id, model.vocab.eos_id)
    out = [torch.zeros(0, model.latent_dim)]
    starts = range(0, len(ids), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="encoding", unit="batch", file=sys.stderr)
    with eval_mode(model):
        for start in starts:
            batch = collate([{"ids": x} for x in ids[start:start + batch_size]]).to(model.device)
            mu, logvar = model.posterior(batch.ids, batch.lengths, generator)  # short-run: the fitted Gaussian
            z = sample_gaussian(mu, logvar, generator) if use == "sample" else mu
            out.append(z.float().cpu())
    return torch.cat(out)


def encode_texts(model: "TextVAE", texts: Sequence[str], use: Use = "mean", batch_size: int = 64,
                 max_length: Optional[int] = None, generator: Optional[torch.Generator] = None,
                 progress: bool = False) -> Tensor:
    """Latents of raw texts (see :meth:`TextVAE.encode`). → (N, D) fp32 CPU."""
    require_encoder(model)
    max_length = max_length or default_max_length(model)
    check_max_length(model, max_length, "encoder")
    ids, report = tokenize_texts(model.tokenizer, as_text_list(texts), max_length)
    report.warn(max_length, stacklevel=4)
    return encode_ids(model, ids, use, batch_size, generator, progress)


def encode_dataset(model: "TextVAE", dataset: "Dataset", batch_size: int = 64, use: Use = "mean",
                   text_column: str = "text", column: str = "z", max_length: Optional[int] = None,
                   seed: Optional[int] = None) -> "Dataset":
    """``dataset`` with a ``z`` column (a list of D floats per row), via a batched ``datasets.map``.

    Args:
        use: ``mean`` (μ) or ``sample`` (one draw from q(z|x), seeded by ``seed``).
    Raises:
        ConfigError: no ``text_column``, or a model that cannot encode.
    """
    require_encoder(model)
    if text_column not in dataset.column_names:
        raise ConfigError(f"the dataset has no column {text_column!r}; its columns are {dataset.column_names}.")
    max_length = max_length or default_max_length(model)
    check_max_length(model, max_length, "encoder")
    generator = seeded_generator(model.device, seed)
    total = TokenizeReport()

    def add_z(batch: dict[str, list]) -> dict[str, Any]:
        ids, report = tokenize_texts(model.tokenizer, batch[text_column], max_length)
        total.add(report)
        return {column: encode_ids(model, ids, use, batch_size, generator).numpy()}

    # A fresh fingerprint: hashing the closure would pickle the whole model, and a cached result
    # from another model's weights must never be reused.
    result = dataset.map(add_z, batched=True, batch_size=batch_size, new_fingerprint=uuid.uuid4().hex,
                         desc="encoding")
    total.warn(max_length)
    return result


# --------------------------------------------------------------------------- writing


def write_features(path: str | Path, z: Tensor | np.ndarray, texts: Optional[Sequence[str]] = None,
                   labels: Optional[Sequence[Any]] = None) -> Path:
    """Save features: ``.npy`` (the (N, D) float32 array) or ``.parquet`` (text, label, z).

    Raises:
        ConfigError: another extension, or texts/labels that do not match the rows.
    """
    path = Path(path)
    array = np.asarray(z, dtype=np.float32)
    if path.suffix not in FEATURE_FORMATS:
        raise ConfigError(f"cannot write features to {path}: use a {' or '.join(FEATURE_FORMATS)} file name.")
    for name, values in (("texts", texts), ("labels", labels)):
        if values is not None and len(values) != len(array):
            raise ConfigError(f"{len(array)} feature rows but {len(values)} {name}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, array)
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {}
    if texts is not None:
        columns["text"] = pa.array(list(texts), pa.string())
    if labels is not None:
        columns["label"] = pa.array(list(labels))
    flat = pa.array(array.reshape(-1), pa.float32())
    columns["z"] = pa.FixedSizeListArray.from_arrays(flat, array.shape[1]) if array.ndim == 2 and array.shape[1] \
        else pa.array([[]] * len(array), pa.list_(pa.float32()))
    pq.write_table(pa.table(columns), path)
    return path


# --------------------------------------------------------------------------- reading corpora


def load_texts(source: str, split: str = "train", text_column: str = "text",
               label_column: Optional[str] = None) -> tuple[list[str], Optional[list[int]], Optional[list[str]]]:
    """Texts (and labels, label names) of a shipped corpus split or a local file.

    ``source`` is a file path (text/csv/tsv/json/jsonl/parquet; every non-blank row, in file
    order; ``split`` is ignored) or a shipped corpus name (``ptb``, ``yelp``, ``yahoo``,
    ``sst2``). A shipped corpus without its own validation split has one carved from train by
    :func:`~textvae.data.load_corpus`; ``split=train`` gives the whole train file(s) back.

    Raises:
        DataError: a missing file, an unknown name or split, a missing column.
    """
    from datasets import concatenate_datasets  # imported when used: datasets takes a second to import

    if Path(source).is_file() or source not in SHIPPED_CORPORA:
        if not Path(source).is_file():
            raise DataError(f"{source} is neither a file nor a shipped corpus ({', '.join(SHIPPED_CORPORA)}).")
        # Giving the file as the validation split too stops load_corpus from carving a random
        # part out of it, so rows stay complete and in file order.
        cfg = DataConfig(name=None, train_files=[source], valid_files=[source], text_column=text_column,
                         label_column=label_column)
        corpus = load_corpus(cfg)
        dataset = corpus["train"]
    else:
        if label_column not in (None, "label"):
            raise DataError(f"the shipped corpus {source!r} has fixed columns text and label; "
                            "--label-column applies to files only.")
        corpus = load_corpus(DataConfig(name=source))
        if split not in corpus:
            raise DataError(f"the shipped corpus {source!r} has no split {split!r}; its splits are {list(corpus)}.")
        dataset = corpus[split]
        if split == "train" and "validation" not in SHIPPED_CORPORA[source].files:
            dataset = concatenate_datasets([corpus["train"], corpus["validation"]])
    labels = dataset["label"] if "label" in dataset.column_names else None
    return list(dataset["text"]), labels, label_names(corpus) if labels is not None else None


# --------------------------------------------------------------------------- CLI helpers


@contextlib.contextmanager
def report_warnings(command: str) -> Iterator[None]:
    """Print textvae's input warnings as one plain line each on stderr (no file/line noise)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, InputWarning):
                    print(f"textvae {command}: warning: {w.message}", file=sys.stderr)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)
