"""Tokenizing a corpus, length-bucketed sampling with exact resume, and padded batches."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from textvae.config import DataConfig, TokenizerConfig
from textvae.data import (Batch, Collator, LengthBucketSampler, TextTokenizer, TokenizedDataset, load_corpus,
                          make_loader, tokenize_corpus)
from textvae.errors import DataError

# Word counts 1..12 and one blank text: lengths are known exactly under a word tokenizer.
TEXTS = [" ".join(f"w{j}" for j in range(n)) for n in range(1, 13)] + ["   "]


@pytest.fixture(scope="module")
def word_tok() -> TextTokenizer:
    return TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=100), TEXTS)


def _corpus(texts: list[str], labels: list[int] | None = None) -> DatasetDict:
    columns, features = {"text": texts}, Features({"text": Value("string")})
    if labels is not None:
        columns["label"], features["label"] = labels, ClassLabel(names=["neg", "pos"])
    split = Dataset.from_dict(columns, features=features)
    return DatasetDict({"train": split, "validation": split})


# --------------------------------------------------------------------------- tokenize_corpus


def test_filter_drops_long_and_empty_sentences(word_tok):
    dsd, stats = tokenize_corpus(_corpus(TEXTS), word_tok, DataConfig(max_length=5))
    assert stats["train"] == {"kept": 5, "filtered": 7, "truncated": 0, "empty": 1, "tokens": 15,
                              "longest": 5}
    assert dsd["train"]["length"][:] == [1, 2, 3, 4, 5]
    assert [len(ids) for ids in dsd["train"]["ids"][:]] == [1, 2, 3, 4, 5]
    assert dsd["train"].column_names == ["text", "ids", "length"]


def test_truncate_cuts_long_sentences(word_tok):
    dsd, stats = tokenize_corpus(_corpus(TEXTS), word_tok, DataConfig(max_length=5, length_policy="truncate"))
    assert stats["validation"] == {"kept": 12, "filtered": 0, "truncated": 7, "empty": 1,
                                   "tokens": 15 + 7 * 5, "longest": 5}
    assert dsd["train"]["length"][:] == [1, 2, 3, 4] + [5] * 8
    assert dsd["train"]["ids"][11] == word_tok.encode(TEXTS[11])[:5]


def test_split_left_empty_names_split_and_max_length(word_tok):
    texts = TEXTS[5:8]
    dsd = DatasetDict({"train": Dataset.from_dict({"text": TEXTS}), "validation": Dataset.from_dict({"text": texts})})
    with pytest.raises(DataError, match=r"validation split has no sentences left.*data\.max_length=3.*longest has 8"):
        tokenize_corpus(dsd, word_tok, DataConfig(max_length=3))


def test_labels_survive_tokenization(word_tok):
    dsd, _ = tokenize_corpus(_corpus(TEXTS[:4], [0, 1, 1, 0]), word_tok, DataConfig(max_length=3))
    assert dsd["train"]["label"][:] == [0, 1, 1]


# --------------------------------------------------------------------------- sampler


def _lengths(n: int = 1037) -> list[int]:
    return [(i * 7919) % 61 + 1 for i in range(n)]


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_example_once_per_epoch(bucket, shuffle):
    sampler = LengthBucketSampler(_lengths(), batch_size=8, shuffle=shuffle, seed=3, bucket=bucket)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 130
        assert sorted(i for b in batches for i in b) == list(range(1037))
        assert sum(len(b) < 8 for b in batches) == 1


def test_bucketing_is_deterministic_and_changes_per_epoch():
    a = LengthBucketSampler(_lengths(), batch_size=8, seed=5)
    b = LengthBucketSampler(_lengths(), batch_size=8, seed=5)
    assert a.epoch_batches(2) == b.epoch_batches(2)
    assert a.epoch_batches(2) != a.epoch_batches(3)
    assert a.epoch_batches(2) != LengthBucketSampler(_lengths(), batch_size=8, seed=6).epoch_batches(2)


def test_bucketing_groups_similar_lengths():
    lengths = _lengths(4000)
    spread = {}
    for bucket in (True, False):
        batches = LengthBucketSampler(lengths, batch_size=16, seed=0, bucket=bucket).epoch_batches(0)
        spread[bucket] = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread[True] * 5 < spread[False]


def test_resume_from_batch_k_gives_the_remaining_batches():
    sampler = LengthBucketSampler(_lengths(), batch_size=8, seed=1)
    sampler.set_epoch(4)
    full = list(sampler)
    sampler.set_position(4, 57)
    assert list(sampler) == full[57:]
    assert list(sampler) == full  # the position applies to one pass only
    sampler.set_position(4, len(full))
    assert list(sampler) == []


def test_drop_last_drops_the_short_batch():
    sampler = LengthBucketSampler(_lengths(), batch_size=8, drop_last=True)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 129 and all(len(b) == 8 for b in batches)
    assert len({i for b in batches for i in b}) == 129 * 8


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_replicas_partition_the_epoch(replicas):
    lengths = _lengths()
    single = LengthBucketSampler(lengths, batch_size=8, seed=2).epoch_batches(1)
    ranks = [LengthBucketSampler(lengths, batch_size=8, seed=2, num_replicas=replicas, rank=r)
             for r in range(replicas)]
    per_rank = [s.epoch_batches(1) for s in ranks]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(ranks[0])
    # Rank r holds batches r, r+R, … of the single-process epoch; padding repeats the first ones.
    interleaved = [per_rank[r][k] for k in range(len(per_rank[0])) for r in range(replicas)]
    assert interleaved[:len(single)] == single
    assert interleaved[len(single):] == single[:len(interleaved) - len(single)]
    seen = Counter(i for b in single for i in b)
    assert set(seen) == set(range(len(lengths))) and max(seen.values()) == 1


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        LengthBucketSampler([1, 2], batch_size=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketSampler([1, 2], batch_size=0)


# --------------------------------------------------------------------------- batches


def test_collator_pads_with_bos_eos_and_lengths():
    collate = Collator(pad_id=0, bos_id=1, eos_id=2)
    batch = collate([{"ids": [7, 8, 9], "label": 1}, {"ids": [5], "label": 0}])
    assert batch.ids.tolist() == [[1, 7, 8, 9, 2], [1, 5, 2, 0, 0]]
    assert batch.ids.dtype == torch.long and batch.ids.shape == (2, 5)
    assert batch.lengths.tolist() == [5, 3]
    assert batch.labels.tolist() == [1, 0]
    assert batch.num_sentences == 2 and batch.num_target_tokens == 4 + 2
    assert batch.mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert collate([{"ids": [3]}]).labels is None


def test_mask_comes_from_lengths_when_pad_equals_eos():
    collate = Collator(pad_id=9, bos_id=9, eos_id=9)  # GPT-2: one token for all three
    batch = collate([{"ids": [4, 5]}, {"ids": [4]}])
    assert batch.ids.tolist() == [[9, 4, 5, 9], [9, 4, 9, 9]]
    assert batch.mask.sum(1).tolist() == [4, 3] and batch.num_target_tokens == 5


def test_batch_to_device_keeps_everything():
    batch = Batch(torch.tensor([[1, 4, 2]]), torch.tensor([3]), torch.tensor([1]))
    moved = batch.to("cpu")
    assert torch.equal(moved.ids, batch.ids) and torch.equal(moved.labels, batch.labels)
    assert Batch(batch.ids, batch.lengths).to(torch.device("cpu")).labels is None


def test_make_loader_end_to_end_on_ptb():
    corpus = load_corpus(DataConfig(name="ptb", max_train_examples=2000, max_eval_examples=300))
    # room for every word of the 2,000 sentences (PTB has 10k), so that decoding gives them back
    tok = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=10004), corpus["train"]["text"])
    dsd, stats = tokenize_corpus(corpus, tok, DataConfig(name="ptb", max_length=40))
    loader = make_loader(dsd["train"], tok, batch_size=32, shuffle=True, seed=0)
    assert isinstance(loader.batch_sampler, LengthBucketSampler)
    loader.batch_sampler.set_epoch(0)
    batches = list(loader)
    assert len(batches) == len(loader) == -(-stats["train"]["kept"] // 32)
    assert sum(b.num_sentences for b in batches) == stats["train"]["kept"]
    assert sum(b.num_target_tokens for b in batches) == stats["train"]["tokens"] + stats["train"]["kept"]
    for b in batches[:5]:
        rows = torch.arange(b.num_sentences)
        assert (b.ids[:, 0] == tok.bos_id).all()
        assert (b.ids[rows, b.lengths - 1] == tok.eos_id).all()
        assert b.ids.shape[1] == int(b.lengths.max())
        assert (b.ids[~b.mask] == tok.pad_id).all()
    # Every word of these sentences is in the vocabulary: decoding a row gives its sentence back.
    assert {tok.decode(row) for row in batches[0].ids} <= set(corpus["train"]["text"][:])


def test_tokenized_dataset_respects_selected_rows(word_tok):
    dsd, _ = tokenize_corpus(_corpus(TEXTS[:6], [0, 1, 0, 1, 0, 1]), word_tok, DataConfig(max_length=10))
    picked = dsd["train"].select([4, 1])
    data = TokenizedDataset.from_hf(picked)
    assert data.lengths == [5, 2] and data.labels == [0, 1]
    assert data[0] == {"ids": word_tok.encode(TEXTS[4]), "label": 0}
    loader = make_loader(picked, word_tok, batch_size=2, shuffle=False, bucket=False)
    (batch,) = list(loader)
    assert batch.lengths.tolist() == [7, 4] and batch.labels.tolist() == [0, 1]


def test_worker_processes_give_the_same_batches(word_tok):
    dsd, _ = tokenize_corpus(_corpus(TEXTS[:12]), word_tok, DataConfig(max_length=20))
    batches = {}
    for workers in (0, 1):
        loader = make_loader(dsd["train"], word_tok, batch_size=3, shuffle=True, seed=4, num_workers=workers)
        loader.batch_sampler.set_epoch(2)
        batches[workers] = [b.ids.tolist() for b in loader]
    assert batches[0] == batches[1] and len(batches[0]) == 4


def test_iterating_a_loader_leaves_the_global_rng_alone(word_tok):
    """A resumed run creates one more iterator than an uninterrupted one; sampling must not shift."""
    dsd, _ = tokenize_corpus(_corpus(TEXTS[:12]), word_tok, DataConfig(max_length=20))
    loader = make_loader(dsd["train"], word_tok, batch_size=3, shuffle=True, seed=0)
    state = torch.get_rng_state()
    for _ in range(2):
        list(loader)
    assert torch.equal(torch.get_rng_state(), state)


def test_in_memory_splits_are_tokenized_once_then_read_from_the_cache(word_tok, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    corpus = _corpus(["a b c", "d e", "a a a a"])
    first, stats = tokenize_corpus(corpus, word_tok, DataConfig(max_length=3))
    files = sorted((tmp_path / "textvae-tokenized").glob("*.arrow"))
    assert len(files) == 1  # train and validation hold the same sentences: one entry
    assert first["train"].cache_files[0]["filename"] in map(str, files)
    again, stats_again = tokenize_corpus(_corpus(["a b c", "d e", "a a a a"]), word_tok, DataConfig(max_length=3))
    assert again["train"]["ids"] == first["train"]["ids"] and stats_again == stats
    assert len(list((tmp_path / "textvae-tokenized").glob("*.arrow"))) == 1  # reused, not rewritten
    tokenize_corpus(corpus, word_tok, DataConfig(max_length=4))  # other settings: another cache entry
    assert len(list((tmp_path / "textvae-tokenized").glob("*.arrow"))) == 2
