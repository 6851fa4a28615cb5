"""Corpus loading: shipped corpora, every local file format, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from textvae.config import DataConfig
from textvae.data import SHIPPED_CORPORA, DataError, corpus_report, label_names, load_corpus

SENTENCES = ["the cat sat", "a dog ran far", "birds fly", "fish swim in the sea", "it rained", "we left"]
LABELS = ["pos", "neg", "pos", "neg", "pos", "neg"]


def _write_table(path: Path, fmt: str, rows: list[dict]) -> None:
    """Write rows with columns ``sentence`` and ``sentiment`` in ``fmt``."""
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif fmt == "parquet":
        frame.to_parquet(path)


def _files(tmp_path: Path, fmt: str, n_valid: int = 2) -> dict[str, list[str]]:
    rows = [{"sentence": s, "sentiment": lab} for s, lab in zip(SENTENCES, LABELS)]
    train, valid = tmp_path / f"train.{fmt}", tmp_path / f"valid.{fmt}"
    _write_table(train, fmt, rows)
    _write_table(valid, fmt, rows[:n_valid])
    return {"train_files": [str(train)], "valid_files": [str(valid)]}


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["csv", "tsv", "json", "jsonl", "parquet"])
def test_table_formats_with_text_and_label_columns(tmp_path, fmt):
    cfg = DataConfig(name=None, text_column="sentence", label_column="sentiment", **_files(tmp_path, fmt))
    dsd = load_corpus(cfg)
    assert list(dsd) == ["train", "validation"]
    assert dsd["train"]["text"][:] == SENTENCES
    assert dsd["train"].column_names == ["text", "label"]
    # String labels are numbered in sorted order of the train labels: neg=0, pos=1.
    assert label_names(dsd) == ["neg", "pos"]
    assert dsd["train"]["label"][:] == [1, 0, 1, 0, 1, 0]
    assert dsd["validation"]["label"][:] == [1, 0]


def test_text_files(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("\n".join(f"  {s} " for s in SENTENCES) + "\n", encoding="utf-8")
    test = tmp_path / "test.text"
    test.write_text("one more\n", encoding="utf-8")
    dsd = load_corpus(DataConfig(name=None, train_files=[str(train)], test_files=[str(test)]))
    assert list(dsd) == ["train", "validation", "test"]  # validation carved from train
    assert sorted(dsd["train"]["text"][:] + dsd["validation"]["text"][:]) == sorted(SENTENCES)
    assert dsd["test"]["text"][:] == ["one more"]
    assert label_names(dsd) is None and dsd["train"].column_names == ["text"]


def test_format_from_config_overrides_extension(tmp_path):
    path = tmp_path / "sentences.data"
    path.write_text("a b\nc d\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"sentences\.data.*data\.format"):
        load_corpus(DataConfig(name=None, train_files=[str(path)]))
    dsd = load_corpus(DataConfig(name=None, train_files=[str(path)], valid_files=[str(path)], format="text"))
    assert dsd["train"]["text"][:] == ["a b", "c d"]


def test_integer_labels_keep_their_values_and_unseen_labels_fail(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    _write_table(train, "jsonl", [{"text": s, "y": i % 3} for i, s in enumerate(SENTENCES)])
    _write_table(test, "jsonl", [{"text": "x", "y": 1}])
    dsd = load_corpus(DataConfig(name=None, train_files=[str(train)], valid_files=[str(train)],
                                 test_files=[str(test)], label_column="y"))
    assert dsd["train"]["label"][:] == [0, 1, 2, 0, 1, 2]
    assert label_names(dsd) == ["0", "1", "2"]
    _write_table(test, "jsonl", [{"text": "x", "y": 7}, {"text": "z", "y": 9}])
    with pytest.raises(DataError, match=r"test\.jsonl \(test\) has labels \[7, 9\] that never occur in train"):
        load_corpus(DataConfig(name=None, train_files=[str(train)], valid_files=[str(train)],
                               test_files=[str(test)], label_column="y"))


def test_blank_cells_are_dropped_and_counted(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label\nhello there,1\n   ,0\nNA,0\n,1\nbye,0\n", encoding="utf-8")
    dsd = load_corpus(DataConfig(name=None, train_files=[str(path)], valid_files=[str(path)], label_column="label"))
    # "NA" is a sentence, not a missing value.
    assert dsd["train"]["text"][:] == ["hello there", "NA", "bye"]
    assert dsd.dropped["train"] == {"blank": 2}
    assert "dropped on load 2 blank" in corpus_report(dsd)


# --------------------------------------------------------------------------- shipped corpora


def test_ptb_loads_complete():
    dsd = load_corpus(DataConfig(name="ptb"))
    assert {s: len(d) for s, d in dsd.items()} == {"train": 42068, "validation": 3370, "test": 3761}
    first = dsd["train"][1]["text"]
    assert first.startswith("pierre <unk> N years") and first == first.strip()


def test_yelp_labels_from_file_suffix_and_carved_validation():
    dsd = load_corpus(DataConfig(name="yelp"), seed=0)
    assert len(dsd["train"]) + len(dsd["validation"]) == 25278 + 38205
    assert len(dsd["test"]) == 50278 + 76392
    assert label_names(dsd) == ["negative", "positive"]
    counts = pd.Series(dsd["test"]["label"][:]).value_counts().to_dict()
    assert counts == {0: 50278, 1: 76392}
    assert 0.04 < len(dsd["validation"]) / 63483 < 0.06
    # The carve is seeded: same seed, same split; another seed, another split.
    again = load_corpus(DataConfig(name="yelp"), seed=0)
    other = load_corpus(DataConfig(name="yelp"), seed=1)
    assert again["validation"]["text"][:50] == dsd["validation"]["text"][:50]
    assert other["validation"]["text"][:50] != dsd["validation"]["text"][:50]


def test_sst2_labels_from_first_token():
    dsd = load_corpus(DataConfig(name="sst2"))
    assert {s: len(d) for s, d in dsd.items()} == {"train": 6920, "validation": 872, "test": 1821}
    assert dsd["train"][0] == {"text": "a stirring , funny and finally transporting re-imagining of beauty "
                                       "and the beast and 1930s horror films", "label": 1}
    assert sum(dsd["train"]["label"][:]) == 3610


def test_yahoo_documents():
    dsd = load_corpus(DataConfig(name="yahoo"))
    assert len(dsd["train"]) + len(dsd["validation"]) == 10000
    assert len(dsd["test"]) == 10000


def test_example_limits_keep_the_first_sentences():
    full = load_corpus(DataConfig(name="ptb"))
    dsd = load_corpus(DataConfig(name="ptb", max_train_examples=100, max_eval_examples=7))
    assert [len(d) for d in dsd.values()] == [100, 7, 7]
    assert dsd["train"]["text"][:] == full["train"]["text"][:100]
    assert dsd["test"]["text"][:] == full["test"]["text"][:7]


def test_shipped_registry_lists_the_four_corpora():
    assert set(SHIPPED_CORPORA) == {"ptb", "yelp", "yahoo", "sst2"}


def test_data_dir_override_and_label_only_lines(tmp_path, monkeypatch):
    folder = tmp_path / "sentence_classification"
    folder.mkdir()
    (folder / "stsa.binary.train").write_text("1 good film\n0\n\n0 bad film\n1 fine\n", encoding="utf-8")
    (folder / "stsa.binary.dev").write_text("1 ok\n", encoding="utf-8")
    (folder / "stsa.binary.test").write_text("0 meh\n", encoding="utf-8")
    monkeypatch.setenv("TEXTVAE_DATA_DIR", str(tmp_path))
    dsd = load_corpus(DataConfig(name="sst2"))
    assert dsd["train"]["text"][:] == ["good film", "bad film", "fine"]
    assert dsd.dropped["train"] == {"blank": 1, "no_text": 1}
    assert "1 no_text" in corpus_report(dsd)


def test_missing_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTVAE_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"nowhere does not exist.*TEXTVAE_DATA_DIR"):
        load_corpus(DataConfig(name="ptb"))


def test_hub_failure_explains_offline_and_local_files():
    with pytest.raises(DataError, match=r"could not be loaded from the Hugging Face hub \(offline\?.*"
                                        r"data\.name=ptb.*data\.train_files="):
        load_corpus(DataConfig(name="someone/not-a-shipped-corpus"))
    with pytest.raises(DataError, match=r"^Did you mean data\.name=yelp\?"):
        load_corpus(DataConfig(name="yelpp"))


def test_hub_code_path_on_a_local_dataset_folder(tmp_path):
    """load_dataset(name) also takes a folder of data files: the hub path, without a network."""
    (tmp_path / "train.csv").write_text("sentence,y\n" + "".join(f"{s},{lab}\n" for s, lab in zip(SENTENCES, LABELS)))
    (tmp_path / "test.csv").write_text("sentence,y\nhello there,pos\n")
    cfg = DataConfig(name=str(tmp_path), text_column="sentence", label_column="y")
    dsd = load_corpus(cfg, seed=0)
    assert list(dsd) == ["train", "validation", "test"]  # no validation split: carved
    assert len(dsd["train"]) + len(dsd["validation"]) == len(SENTENCES)
    assert dsd["test"][0] == {"text": "hello there", "label": 1} and label_names(dsd) == ["neg", "pos"]
    with pytest.raises(DataError, match=r"has no split 'training' \(data\.train_split\); its splits are"):
        load_corpus(DataConfig(name=str(tmp_path), train_split="training"))


# --------------------------------------------------------------------------- line splitting and encodings


def test_only_newline_ends_a_line(tmp_path):
    path = tmp_path / "odd.txt"
    # A lone \r stays inside its line too (the datasets text builder would split there).
    path.write_bytes("one\x85two\nthree\u2028four\r\nfive\x0bsix\x0cseven\n\n  \neight\rnine\n".encode("utf-8"))
    dsd = load_corpus(DataConfig(name=None, train_files=[str(path)], valid_files=[str(path)]))
    assert dsd["train"]["text"][:] == ["one\x85two", "three\u2028four", "five\x0bsix\x0cseven", "eight\rnine"]
    assert dsd.dropped["train"] == {"blank": 2}


def test_cp1252_file_names_file_and_line_then_loads_with_encoding(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes("plain line\nsecond line\ncaf\u00e9 \u2019quoted\u2019\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"win\.txt, line 3 .*not valid utf-8.*data\.encoding=cp1252"):
        load_corpus(DataConfig(name=None, train_files=[str(path)]))
    dsd = load_corpus(DataConfig(name=None, train_files=[str(path)], valid_files=[str(path)], encoding="cp1252"))
    assert dsd["train"]["text"][2] == "caf\u00e9 \u2019quoted\u2019"


def test_cp1252_csv_names_file_and_line(tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes("text\nfine\ncaf\u00e9\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"win\.csv, line 3 .*data\.encoding=cp1252"):
        load_corpus(DataConfig(name=None, train_files=[str(path)]))
    dsd = load_corpus(DataConfig(name=None, train_files=[str(path)], valid_files=[str(path)], encoding="cp1252"))
    assert dsd["train"]["text"][:] == ["fine", "caf\u00e9"]


# --------------------------------------------------------------------------- bad input


def _write(tmp_path: Path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("name, content, kwargs, match", [
    ("empty.txt", b"", {}, r"empty\.txt is empty \(0 bytes\)"),
    ("empty.csv", b"", {}, r"empty\.csv is empty \(0 bytes\)"),
    ("blank.txt", "\n  \n\t\n", {}, r"blank\.txt has only blank lines"),
    ("blank.csv", "\n\n\n", {}, r"blank\.csv has only blank lines"),
    ("ragged.csv", "text,label\nfine,1\ntoo,many,fields,0\n", {"label_column": "label"},
     r"ragged\.csv: line 3 has 4 fields but the header has 2"),
    ("bad.jsonl", '{"text": "ok"}\n{"text": "no comma" "x": 1}\n', {}, r"bad\.jsonl: line 2 is not valid JSON"),
    ("bad.json", '[{"text": "a"},\n {"text": }]', {}, r"bad\.json: not valid JSON at line 2"),
    ("cols.csv", "sentence,label\nhi,1\n", {}, r"cols\.csv has no column 'text' \(data\.text_column\); "
                                                r"its columns are \['sentence', 'label'\]"),
    ("cols.jsonl", '{"text": "hi", "y": 1}\n', {"label_column": "label"},
     r"no column 'label' \(data\.label_column\); its columns are \['text', 'y'\]"),
    ("nolabel.txt", "hi\n", {"label_column": "label"}, r"text files have only the column 'text'"),
    ("holes.csv", "text,label\nhi,1\nho,\n", {"label_column": "label"},
     r"holes\.csv \(train\) has rows without a label"),
    ("enc.txt", "hi\n", {"encoding": "no-such-codec"}, r"not an encoding Python knows"),
])
def test_bad_input_raises_data_error(tmp_path, name, content, kwargs, match):
    path = _write(tmp_path, name, content)
    with pytest.raises(DataError, match=match):
        load_corpus(DataConfig(name=None, train_files=[path], **kwargs))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt does not exist.*data\.train_files"):
        load_corpus(DataConfig(name=None, train_files=[str(tmp_path / "nope.txt")]))
    train = _write(tmp_path, "train.csv", "text\nhi\nho\n")
    with pytest.raises(DataError, match=r"missing\.csv does not exist"):
        load_corpus(DataConfig(name=None, train_files=[train], test_files=[str(tmp_path / "missing.csv")]))


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)
