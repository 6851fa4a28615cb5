"""From tokenized sentences to padded batches: length filtering, bucketing, collation.

A batch row is ``[bos, tok_1 … tok_n, eos, pad …]``. ``lengths`` counts bos and eos, and every
mask is built from ``lengths`` — never by comparing with ``pad_id``, which may equal ``eos_id``
(GPT-2). The sampler is deterministic in (seed, epoch) and can resume in the middle of an epoch.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import datasets
import numpy as np
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader, Sampler

from textvae.config import DataConfig
from textvae.data.tokenizers import TextTokenizer
from textvae.errors import DataError

# --------------------------------------------------------------------------- tokenization

CACHE_VERSION = "1"  # bump when _encode changes what it writes


def tokenize_corpus(dsd: DatasetDict, tokenizer: TextTokenizer,
                    cfg: DataConfig) -> tuple[DatasetDict, dict[str, dict[str, int]]]:
    """Add ``ids`` (no specials) and ``length`` columns; apply ``cfg.max_length``.

    ``length_policy=filter`` drops sentences longer than ``max_length`` tokens, ``truncate``
    cuts them. Sentences with no token at all are dropped either way.

    Returns:
        the tokenized splits, and per split the counts ``kept``, ``filtered`` (dropped as too
        long), ``truncated``, ``empty`` (dropped, no token), ``tokens`` (sum of kept lengths) and
        ``longest`` (the longest kept length, after truncation: what a trained model records as
        its default decoding limit).

    Raises:
        DataError: a split is left without sentences.
    """
    truncate = cfg.length_policy == "truncate"
    splits, stats = {}, {}
    tokenizer_key = _tokenizer_fingerprint(tokenizer)
    for split, dataset in dsd.items():
        encoded = dataset.map(_encode, batched=True, desc=f"tokenizing {split}",
                              fn_kwargs={"tokenizer": tokenizer, "max_length": cfg.max_length, "truncate": truncate},
                              cache_file_name=_cache_file(dataset, tokenizer_key, cfg))
        raw = np.asarray(encoded.with_format("arrow")["raw_length"].to_numpy(), dtype=np.int64)
        too_long = raw > cfg.max_length
        empty = raw == 0
        keep = ~empty if truncate else ~empty & ~too_long
        if not keep.any():
            raise DataError(
                f"After tokenization the {split} split has no sentences left: {int(too_long.sum()):,} of "
                f"{len(raw):,} are longer than data.max_length={cfg.max_length} tokens (the longest has "
                f"{int(raw.max())}) and {int(empty.sum()):,} have no token. Set a larger data.max_length "
                "or data.length_policy=truncate.")
        if not keep.all():
            encoded = encoded.select(np.flatnonzero(keep))
        splits[split] = encoded.remove_columns("raw_length")
        lengths = np.minimum(raw[keep], cfg.max_length) if truncate else raw[keep]
        stats[split] = {"kept": int(keep.sum()), "filtered": 0 if truncate else int(too_long.sum()),
                        "truncated": int(too_long.sum()) if truncate else 0, "empty": int(empty.sum()),
                        "tokens": int(lengths.sum()), "longest": int(lengths.max())}
    return DatasetDict(splits), stats


def _tokenizer_fingerprint(tokenizer: TextTokenizer) -> str:
    """A hash of the tokenizer's saved files: equal files, equal token ids."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(tmp)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cache_file(dataset: Dataset, tokenizer_key: str, cfg: DataConfig) -> Optional[str]:
    """Where the tokenized copy of an in-memory split is cached (None: let datasets decide).

    Splits read from files already live in datasets' cache, which names the map result itself;
    the shipped corpora are built in memory, and datasets caches a map of those only when given a
    file name. The name hashes the split's content fingerprint, the tokenizer files and the
    length settings, so a change to any of them tokenizes again.
    """
    if dataset.cache_files or not datasets.is_caching_enabled():
        return None
    key = hashlib.sha256("|".join([CACHE_VERSION, dataset._fingerprint, tokenizer_key, str(cfg.max_length),
                                   cfg.length_policy]).encode()).hexdigest()[:24]
    root = Path(datasets.config.HF_DATASETS_CACHE) / "textvae-tokenized"
    root.mkdir(parents=True, exist_ok=True)
    return str(root / f"tokenized-{key}.arrow")


def _encode(batch: dict[str, list], tokenizer: TextTokenizer, max_length: int, truncate: bool) -> dict[str, list]:
    ids = tokenizer.encode_batch(batch["text"])
    raw = [len(x) for x in ids]
    if truncate:
        ids = [x[:max_length] for x in ids]
    return {"ids": ids, "length": [len(x) for x in ids], "raw_length": raw}


# --------------------------------------------------------------------------- sampling


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of indices, each drawn from sentences of similar length.

    Per epoch, with ``bucket``: shuffle all indices, cut them into mega-batches of
    ``batch_size × 50``, sort each by length, cut into batches, shuffle the batch order. Without
    ``bucket``: plain shuffled batches. Everything depends only on (seed, epoch), so every rank
    computes the same batch list; rank r takes batches r, r+R, r+2R, … (the list is padded by
    repeating its first batches so that all ranks get the same number, or cut with ``drop_last``).

    Resume: ``set_position(epoch, k)`` makes the next pass yield this rank's batches of ``epoch``
    from the k-th on (0-based), exactly as an uninterrupted run would have. ``set_epoch(e)`` is
    ``set_position(e, 0)``. The position applies to one pass; the next starts at batch 0.
    """

    MEGA_BATCHES = 50

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 bucket: bool = True, drop_last: bool = False, num_replicas: int = 1, rank: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed, self.bucket = batch_size, shuffle, seed, bucket
        self.drop_last, self.num_replicas, self.rank = drop_last, num_replicas, rank
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.set_position(epoch, 0)

    def set_position(self, epoch: int, batch_index: int) -> None:
        """Start the next pass at this rank's batch ``batch_index`` of ``epoch``."""
        if batch_index < 0:
            raise ValueError(f"batch_index must be >= 0, got {batch_index}")
        self.epoch, self.start_batch = epoch, batch_index

    def __len__(self) -> int:
        """Batches per epoch for this rank (a full epoch, whatever the resume position)."""
        n = len(self.lengths)
        total = n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)
        return total // self.num_replicas if self.drop_last else math.ceil(total / self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        start, self.start_batch = self.start_batch, 0
        yield from self.epoch_batches(self.epoch)[start:]

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, in order."""
        batches = self._all_batches(epoch)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        replicas = self.num_replicas
        if replicas > 1:
            if self.drop_last:
                batches = batches[:len(batches) - len(batches) % replicas]
            elif batches and len(batches) % replicas:
                need = math.ceil(len(batches) / replicas) * replicas
                batches = (batches * replicas)[:need]  # repeat the first batches to even out ranks
            batches = batches[self.rank::replicas]
        return [b.tolist() for b in batches]

    def _all_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        n, size = len(self.lengths), self.batch_size
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if not self.bucket:
            return [order[i:i + size] for i in range(0, n, size)]
        batches = []
        mega = size * self.MEGA_BATCHES  # a multiple of size: only the very last batch can be short
        for start in range(0, n, mega):
            chunk = order[start:start + mega]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """Padded sentences: ``ids`` (B, T) = [bos, tokens…, eos, pad…], T = longest + 2.

    ``lengths`` (B,) counts bos and eos; ``labels`` (B,) or None.
    """

    ids: torch.Tensor
    lengths: torch.Tensor
    labels: Optional[torch.Tensor] = None

    def to(self, device: Union[str, torch.device], non_blocking: bool = False) -> Batch:
        labels = None if self.labels is None else self.labels.to(device, non_blocking=non_blocking)
        return Batch(self.ids.to(device, non_blocking=non_blocking),
                     self.lengths.to(device, non_blocking=non_blocking), labels)

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)``."""
        return Batch(self.ids.pin_memory(), self.lengths.pin_memory(),
                     None if self.labels is None else self.labels.pin_memory())

    @property
    def mask(self) -> torch.Tensor:
        """(B, T) bool: True on bos, tokens and eos."""
        positions = torch.arange(self.ids.size(1), device=self.ids.device)
        return positions.unsqueeze(0) < self.lengths.unsqueeze(1)

    @property
    def num_sentences(self) -> int:
        return self.ids.size(0)

    @property
    def num_target_tokens(self) -> int:
        """Tokens the decoder predicts: every token plus eos (bos is never a target)."""
        return int((self.lengths - 1).sum())


class Collator:
    """Pads ``{"ids": [...], "label": int}`` examples into a :class:`Batch`."""

    def __init__(self, pad_id: int, bos_id: int, eos_id: int):
        if None in (pad_id, bos_id, eos_id):
            raise ValueError(f"the collator needs pad, bos and eos ids, got {pad_id}, {bos_id}, {eos_id}")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id

    def __call__(self, examples: list[dict[str, Any]]) -> Batch:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        seqs = [ex["ids"] for ex in examples]
        width = max(len(s) for s in seqs) + 2
        rows = [[self.bos_id, *s, self.eos_id] + [self.pad_id] * (width - len(s) - 2) for s in seqs]
        lengths = torch.tensor([len(s) + 2 for s in seqs], dtype=torch.long)
        labels = [ex.get("label") for ex in examples]
        has_labels = all(label is not None for label in labels)
        return Batch(torch.tensor(rows, dtype=torch.long), lengths,
                     torch.tensor(labels, dtype=torch.long) if has_labels else None)


class TokenizedDataset(torch.utils.data.Dataset):
    """Token ids (and labels) as Python lists: indexing one example from Arrow is slow."""

    def __init__(self, ids: list[list[int]], labels: Optional[list[int]] = None):
        if labels is not None and len(labels) != len(ids):
            raise ValueError(f"{len(ids)} sentences but {len(labels)} labels")
        self.ids, self.labels = ids, labels

    @classmethod
    def from_hf(cls, dataset: Dataset) -> TokenizedDataset:
        """From a split of :func:`tokenize_corpus` (columns ``ids`` and optionally ``label``)."""
        table = dataset.with_format("arrow")  # respects select()/shuffle() index mappings
        labels = table["label"].to_pylist() if "label" in dataset.column_names else None
        return cls(table["ids"].to_pylist(), labels)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {"ids": self.ids[index]}
        if self.labels is not None:
            item["label"] = self.labels[index]
        return item


def make_loader(dataset: Union[Dataset, TokenizedDataset], tokenizer: TextTokenizer, batch_size: int,
                shuffle: bool, seed: int = 0, bucket: bool = True, num_workers: int = 0,
                num_replicas: int = 1, rank: int = 0, drop_last: bool = False,
                pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` of :class:`Batch` over a tokenized split.

    Its ``batch_sampler`` is a :class:`LengthBucketSampler`: call ``loader.batch_sampler.set_epoch(e)``
    (or ``set_position(e, k)`` to resume) before each pass.
    """
    if isinstance(dataset, Dataset):
        dataset = TokenizedDataset.from_hf(dataset)
    if num_workers > 0:
        # Workers are forked after the Rust tokenizers ran threads; without this every worker warns.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sampler = LengthBucketSampler(dataset.lengths, batch_size, shuffle=shuffle, seed=seed, bucket=bucket,
                                  drop_last=drop_last, num_replicas=num_replicas, rank=rank)
    collator = Collator(tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    # Its own generator: otherwise every iter(loader) draws a worker seed from torch's global RNG,
    # and a resumed run (one more iter() than an uninterrupted one) would sample differently.
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, num_workers=num_workers,
                      pin_memory=pin_memory, generator=generator)
