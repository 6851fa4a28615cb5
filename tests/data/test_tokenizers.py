"""Tokenizers: the four kinds behind one interface, special ids, save/load round trips."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from textvae.config import TokenizerConfig
from textvae.data import TextTokenizer, data_root, read_text_lines
from textvae.errors import DataError

TRAINED_KINDS = ["word", "bpe", "unigram"]
ALL_KINDS = TRAINED_KINDS + ["pretrained"]


@pytest.fixture(scope="module")
def ptb_lines() -> list[str]:
    lines, _ = read_text_lines(data_root() / "ptb" / "ptb.valid.txt")
    return lines


@pytest.fixture(scope="module")
def gpt2_like_dir(tmp_path_factory, ptb_lines) -> Path:
    """A local GPT-2-style tokenizer: byte-level BPE whose only special is <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(ptb_lines, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    directory = tmp_path_factory.mktemp("gpt2_like")
    fast.save_pretrained(str(directory))
    return directory


def _local_word_level(directory: Path, specials: dict[str, str]) -> Path:
    """A transformers tokenizer over a tiny word vocabulary, with the given special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = list(specials.values()) + ["[UNK]", "the", "cat", "sat"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(dict.fromkeys(words))}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", **specials).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def tokenizers(ptb_lines, gpt2_like_dir) -> dict[str, TextTokenizer]:
    made = {kind: TextTokenizer.train(TokenizerConfig(kind=kind, vocab_size=12000 if kind == "word" else 600),
                                      ptb_lines) for kind in TRAINED_KINDS}
    made["pretrained"] = TextTokenizer.train(
        TokenizerConfig(kind="pretrained", name_or_path=str(gpt2_like_dir)), ptb_lines)
    return made


# --------------------------------------------------------------------------- all kinds


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_load_round_trip(tokenizers, ptb_lines, tmp_path, kind):
    tok = tokenizers[kind]
    tok.save(tmp_path / "tok")
    again = TextTokenizer.load(tmp_path / "tok")
    assert type(again) is type(tok) and again.kind == kind
    assert again.vocab_size == tok.vocab_size
    ids = ("pad_id", "bos_id", "eos_id", "unk_id")
    assert [getattr(again, a) for a in ids] == [getattr(tok, a) for a in ids]
    sample = ptb_lines[:50] + ["Unseen Words: naïve café, 42!"]
    assert again.encode_batch(sample) == tok.encode_batch(sample)
    assert [again.id_to_token(i) for i in range(tok.vocab_size)] == [tok.id_to_token(i) for i in range(tok.vocab_size)]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_encode_batch_matches_encode_and_has_no_specials(tokenizers, ptb_lines, kind):
    tok = tokenizers[kind]
    batch = tok.encode_batch(ptb_lines[:20])
    assert batch == [tok.encode(t) for t in ptb_lines[:20]]
    specials = {tok.bos_id, tok.eos_id, tok.pad_id}
    assert all(i not in specials and 0 <= i < tok.vocab_size for ids in batch for i in ids)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_decode_skips_pad_bos_eos_only_when_asked(tokenizers, kind):
    tok = tokenizers[kind]
    ids = tok.encode("the company said")
    framed = [tok.bos_id, *ids, tok.eos_id, tok.pad_id, tok.pad_id]
    assert tok.decode(framed) == tok.decode(ids) == "the company said"
    assert tok.decode(torch.tensor(framed)) == "the company said"
    assert tok.decode(framed, skip_special_tokens=False) != "the company said"
    assert tok.decode_batch([ids, framed]) == ["the company said"] * 2


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_token_lookup(tokenizers, kind):
    tok = tokenizers[kind]
    for index in (tok.bos_id, tok.eos_id, 5):
        assert tok.token_to_id(tok.id_to_token(index)) == index
    assert tok.token_to_id("definitely-not-a-token-xyz") is None


def test_only_word_is_word_level(tokenizers):
    assert [tokenizers[k].is_word_level for k in ALL_KINDS] == [True, False, False, False]


# --------------------------------------------------------------------------- trained kinds


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_specials_are_distinct_and_named(tokenizers, kind):
    tok = tokenizers[kind]
    ids = [tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id]
    assert ids == [0, 1, 2, 3]
    assert [tok.id_to_token(i) for i in ids] == ["<pad>", "<bos>", "<eos>", "<unk>"]


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_ptb_literal_unk_is_the_unk_id(tokenizers, kind):
    tok = tokenizers[kind]
    ids = tok.encode("mr. <unk> is N years old")
    assert ids.count(tok.unk_id) == 1
    assert tok.encode("<unk>") == [tok.unk_id]
    # <unk> is a word of PTB: decoding keeps it.
    assert tok.decode(ids) == "mr. <unk> is N years old"


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_subword_decode_gives_back_the_text(tokenizers, ptb_lines, kind):
    tok = tokenizers[kind]
    assert tok.decode_batch(tok.encode_batch(ptb_lines[:200])) == ptb_lines[:200]


def test_bpe_is_byte_level_so_nothing_is_unknown(tokenizers):
    tok = tokenizers["bpe"]
    text = "Ünïcödé — 東京 \u2028 emoji 🙂"
    ids = tok.encode(text)
    assert tok.unk_id not in ids and tok.decode(ids) == text


def test_word_vocab_is_contiguous_and_ptb_complete():
    lines, _ = read_text_lines(data_root() / "ptb" / "ptb.train.txt")
    tok = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=20000), lines)
    # 9,999 distinct PTB words including <unk>, plus <pad> <bos> <eos>; no id left unused.
    assert tok.vocab_size == 10002
    assert sorted(tok.token_to_id(tok.id_to_token(i)) for i in range(tok.vocab_size)) == list(range(10002))
    assert all(tok.unk_id not in ids for ids in tok.encode_batch([ln.replace("<unk>", "") for ln in lines[:500]]))


def test_word_vocab_size_and_min_freq(ptb_lines):
    small = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=50), ptb_lines)
    assert small.vocab_size == 50
    assert small.encode("the zyzzyva") == [small.token_to_id("the"), small.unk_id]
    frequent = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=100000, min_freq=3), ptb_lines)
    rare = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=100000, min_freq=1), ptb_lines)
    assert 4 < frequent.vocab_size < rare.vocab_size


@pytest.mark.parametrize("kind", TRAINED_KINDS)
def test_lowercase(ptb_lines, kind):
    tok = TextTokenizer.train(TokenizerConfig(kind=kind, vocab_size=300, lowercase=True), ptb_lines[:500])
    assert tok.encode("The Company SAID") == tok.encode("the company said")


def test_unigram_pickles(tokenizers):
    tok = tokenizers["unigram"]
    again = pickle.loads(pickle.dumps(tok))
    assert again.encode("the company said <unk>") == tok.encode("the company said <unk>")


# --------------------------------------------------------------------------- pretrained


def test_gpt2_like_specials_are_filled(tokenizers):
    tok = tokenizers["pretrained"]
    end = tok.token_to_id("<|endoftext|>")
    assert tok.bos_id == tok.eos_id == tok.pad_id == end
    assert tok.unk_id is None  # byte-level: nothing is unknown
    assert tok.vocab_size == 400


def test_pretrained_fills_bos_eos_from_cls_sep(tmp_path):
    directory = _local_word_level(tmp_path / "bert", {"cls_token": "[CLS]", "sep_token": "[SEP]",
                                                      "pad_token": "[PAD]"})
    tok = TextTokenizer.train(TokenizerConfig(kind="pretrained", name_or_path=str(directory)), [])
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == tuple(tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    assert tok.unk_id == tok.token_to_id("[UNK]")
    assert tok.encode("the cat sat") == [tok.token_to_id(w) for w in ("the", "cat", "sat")]


def test_pretrained_without_specials_gets_new_ones(tmp_path):
    directory = _local_word_level(tmp_path / "bare", {})
    tok = TextTokenizer.train(TokenizerConfig(kind="pretrained", name_or_path=str(directory)), [])
    assert tok.vocab_size == 6  # 4 words + added <bos> and <eos>
    assert len({tok.bos_id, tok.eos_id}) == 2 and tok.pad_id == tok.eos_id
    tok.save(tmp_path / "saved")
    again = TextTokenizer.load(tmp_path / "saved")
    assert (again.bos_id, again.eos_id, again.vocab_size) == (tok.bos_id, tok.eos_id, 6)


def test_pretrained_unknown_name_explains_local_path(tmp_path):
    with pytest.raises(DataError, match=r"Could not load the pretrained tokenizer.*tokenizer\.name_or_path="):
        TextTokenizer.train(TokenizerConfig(kind="pretrained", name_or_path="no-such-org/no-such-tokenizer"), [])


def test_load_needs_a_tokenizer_directory(tmp_path):
    with pytest.raises(DataError, match=r"holds no tokenizer \(tokenizer_config\.json is missing\)"):
        TextTokenizer.load(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"kind": "morse"}', encoding="utf-8")
    with pytest.raises(DataError, match=r"does not describe a textvae tokenizer.*word, bpe, unigram, pretrained"):
        TextTokenizer.load(tmp_path)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_load_names_a_missing_file(tokenizers, tmp_path, kind):
    tokenizers[kind].save(tmp_path)
    for path in tmp_path.iterdir():
        if path.name != "tokenizer_config.json":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DataError, match=r"is missing; the tokenizer folder .* is incomplete"):
        TextTokenizer.load(tmp_path)
