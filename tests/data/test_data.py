"""Corpus loading: shipped corpora, every local file format, and every kind of bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, TINY
from textvae.config import DataConfig
from textvae.data import SHIPPED_CORPORA, corpus_report, label_names, load_corpus
from textvae.errors import DataError

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


def test_example_limits_keep_a_seeded_random_subset_in_order():
    full = load_corpus(DataConfig(name="ptb"))
    dsd = load_corpus(DataConfig(name="ptb", max_train_examples=100, max_eval_examples=7))
    assert [len(d) for d in dsd.values()] == [100, 7, 7]
    position = {s: i for i, s in enumerate(full["test"]["text"][:])}
    picked = [position[s] for s in dsd["test"]["text"][:]]
    assert picked == sorted(picked) and picked[-1] > 7  # spread over the split, in its order
    assert set(dsd["train"]["text"][:]) <= set(full["train"]["text"][:])
    again = load_corpus(DataConfig(name="ptb", max_train_examples=100, max_eval_examples=7))
    assert again["train"]["text"][:] == dsd["train"]["text"][:]  # seeded
    other = load_corpus(DataConfig(name="ptb", max_train_examples=100, max_eval_examples=7), seed=1)
    assert other["train"]["text"][:] != dsd["train"]["text"][:]
    # The shipped Yelp test files list every negative sentence first: a limit keeps both classes.
    yelp = load_corpus(DataConfig(name="yelp", max_eval_examples=200))
    labels = yelp["test"]["label"][:]
    assert len(labels) == 200 and 50 < sum(labels) < 150


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
    report = corpus_report(dsd)
    assert "1 no_text" in report and "stsa.binary.train: 1 line(s) hold only a label and no sentence (line 2)" in report


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


# --------------------------------------------------------------------------- formats users have, through the CLI
# Every data-reading command (evaluate, reconstruct, encode, probe, plot-latent) takes the same
# --format / --encoding / --text-column / --label-column flags, and its errors name them.

DATA_COMMANDS = ["evaluate", "reconstruct", "encode", "probe", "plot-latent"]
SST_LINES = "1 a good film\n0\n\n0 a bad film\n1 a fine day\n1\n"  # two label-only lines: 2 and 6


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, train_autoencoder):
    model = train_autoencoder(["a good film", "a bad film", "a fine day", "the cat sat"], steps=5)
    return str(model.save_pretrained(tmp_path_factory.mktemp("data_cli") / "model"))


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    from textvae.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, captured.out, captured.err


def _error(argv: list[str], capsys) -> str:
    """Run the CLI, expect exit code 2 and one error line (the last line of stderr); return it."""
    code, _, err = _run(argv, capsys)
    last = err.rstrip("\n").split("\n")[-1]
    assert code == 2 and last.startswith(f"textvae {argv[0]}: error: "), err
    return last


def _data_argv(command: str, model: str, data: str, out: Path, *flags: str) -> list[str]:
    """``command`` reading ``data`` with ``flags``, writing (when it writes) under ``out``."""
    if command == "probe":
        return ["probe", model, "--train", data, "--test", data, "--labels-per-class", "1", "--seeds", "1",
                "--no-progress", *flags]
    if command == "evaluate":
        return ["evaluate", model, "--data", data, "--split", "train", "--iw-samples", "2", "--prior-samples", "2",
                "--output", str(out / "eval.json"), *flags]
    if command == "encode":
        return ["encode", model, "--data", data, "--output", str(out / "z.parquet"), "--no-progress", *flags]
    if command == "plot-latent":
        return ["plot-latent", model, "--data", data, "--output", str(out / "z.png"), *flags]
    return ["reconstruct", model, "--data", data, *flags]


def test_every_data_command_has_the_same_data_flags():
    from textvae.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in DATA_COMMANDS:
        flags = {s for action in subparsers[command]._actions for s in action.option_strings}
        assert {"--format", "--encoding", "--text-column", "--label-column"} <= flags, command


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_encoding_error_names_the_flag_of_that_command(model_dir, tmp_path, capsys, command):
    path = tmp_path / "win.csv"
    path.write_bytes("text,label\nfine film,0\ncaf\u00e9 film,1\ngood day,1\n".encode("cp1252"))
    err = _error(_data_argv(command, model_dir, str(path), tmp_path), capsys)
    assert re.search(r"win\.csv, line 3 \(column 4\): byte b'\\xe9' is not valid utf-8\. .*set --encoding cp1252 "
                     r"\(or --encoding latin-1, which accepts every byte\)\.$", err), err
    assert "data.encoding" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["win.csv"]  # nothing written
    # the flag it names works
    code, out, err = _run(_data_argv(command, model_dir, str(path), tmp_path, "--encoding", "cp1252",
                                     "--label-column", "label"), capsys)
    assert code == 0, err


def test_label_text_format(tmp_path):
    train = tmp_path / "sst.train"
    train.write_text(SST_LINES, encoding="utf-8")
    dsd = load_corpus(DataConfig(name=None, train_files=[str(train)], valid_files=[str(train)], format="label_text"))
    assert dsd["train"][:] == {"text": ["a good film", "a bad film", "a fine day"], "label": [1, 0, 1]}
    assert label_names(dsd) == ["0", "1"]
    assert dsd.dropped["train"] == {"blank": 1, "no_text": 2}
    assert dsd.notes["train"] == [f"{train}: 2 line(s) hold only a label and no sentence (lines 2, 6); "
                                  "they are left out."]
    assert f"note: {train}: 2 line(s) hold only a label" in corpus_report(dsd)
    # TREC-style string labels, numbered in sorted order
    trec = tmp_path / "trec.txt"
    trec.write_text("DESC:manner How did serfdom develop ?\nENTY:cremat What films featured Bond ?\n"
                    "DESC:def What is a fuel ?\n", encoding="utf-8")
    dsd = load_corpus(DataConfig(name=None, train_files=[str(trec)], valid_files=[str(trec)], format="label_text"))
    assert label_names(dsd) == ["DESC:def", "DESC:manner", "ENTY:cremat"] and dsd["train"]["label"][:] == [1, 2, 0]
    assert dsd["train"]["text"][0] == "How did serfdom develop ?"


def test_label_text_through_train_reports_label_only_lines(tmp_path, capsys, recwarn):
    train = tmp_path / "sst.train"
    train.write_text(SST_LINES * 3, encoding="utf-8")
    out = tmp_path / "run"
    code, printed, err = _run(["train", str(REPO / "recipes" / "quickstart.yaml"), *TINY, f"data.train_files={train}",
                               f"data.valid_files={train}", "data.format=label_text", "train.max_steps=1",
                               "train.eval_every=1", "--output", str(out), "--no-progress"], capsys)
    assert code == 0, err
    assert "train: 9 sentences; labels 0 3, 1 6; dropped on load 3 blank, 6 no_text" in printed, printed
    assert f"note: {train}: 6 line(s) hold only a label and no sentence (lines 2, 6, 8, 12, 14, …)" in printed
    assert (out / "model" / "model.safetensors").is_file()
    # The recipe's shipped corpus was replaced by these files, so its example sentences (unknown words to
    # this model) are not what the closing interpolation runs between.
    assert "interpolation between two prior draws (greedy, no repeated 3-gram):" in printed, printed
    assert "warning" not in err and not [w for w in recwarn if "unknown" in str(w.message)], err


def test_label_text_through_encode_keeps_labels_and_reports_label_only_lines(model_dir, tmp_path, capsys):
    train = tmp_path / "sst.train"
    train.write_text(SST_LINES, encoding="utf-8")
    out = tmp_path / "z.parquet"
    code, printed, err = _run(["encode", model_dir, "--data", str(train), "--format", "label_text",
                               "--output", str(out), "--no-progress"], capsys)
    assert code == 0, err
    assert (f"textvae encode: note: --data {train}: 1 blank line(s) or empty text cell(s) and 2 label-only "
            "line(s) left out; 3 sentences remain.") in err
    assert f"textvae encode: note: {train}: 2 line(s) hold only a label and no sentence (lines 2, 6)" in err
    table = pd.read_parquet(out)
    assert table["text"].tolist() == ["a good film", "a bad film", "a fine day"]
    assert table["label"].tolist() == ["1", "0", "1"]


def test_text_file_of_label_prefixed_lines_is_pointed_out(model_dir, tmp_path, capsys):
    path = tmp_path / "sst.txt"
    path.write_text("1 a good film\n0 a bad film\n1\n", encoding="utf-8")
    code, _, err = _run(["encode", model_dir, "--data", str(path), "--output", str(tmp_path / "z.npy"),
                         "--no-progress"], capsys)
    assert code == 0
    assert (f"textvae encode: note: every line of {path} starts with an integer (0, 1), as in '<label> <sentence>' "
            "files (SST, MR, SUBJ, TREC, CR, MPQA); it is read as text, so the number is the first word of each "
            "sentence; 1 line(s) hold only that number and are read as the sentence '1'. To read it as the label, "
            "set --format label_text.") in err
    # in a recipe, the same note names the recipe key
    dsd = load_corpus(DataConfig(name=None, train_files=[str(path)], valid_files=[str(path)]))
    assert dsd["train"]["text"][:] == ["1 a good film", "0 a bad film", "1"]
    assert dsd.notes["train"][0].endswith("set data.format=label_text.")


@pytest.mark.parametrize("content, flags, match", [
    ("1 good\n0 bad\nno label here\n1 fine\n", ["--format", "label_text"],
     r"sst\.data, line 3: 'no label here' does not start with an integer label like the other lines; "
     r"--format label_text reads '<label> <sentence>' on every line\. Fix that line, or read the file as plain "
     r"sentences \(--format text\)\.$"),
    ("1 good\n0 bad\n", ["--format", "label_text", "--text-column", "sentence"],
     r"--format label_text reads '<label> <sentence>' lines: .* so --text-column / --label-column do not apply"),
    ("1 good\n0 bad\n", [],
     r"Cannot tell the format of .*sst\.data from its extension '\.data'; set --format to one of text, label_text, "
     r".* --format label_text for '<label> <sentence>' lines\)\.$"),
    ("1 good\n0 bad\n", ["--format", "label_txt"],
     r"--format label_txt is not a known format\. Did you mean --format label_text\? The formats are text, "
     r"label_text, csv, tsv, json, jsonl, parquet\.$"),
    ("1 good\n0 bad\n", ["--format", "text", "--label-column", "label"],
     r"is read as text, and text files have only the column 'text', so there is no label column 'label' "
     r"\(--label-column\)\. For '<label> <sentence>' lines \(SST, MR, SUBJ, TREC, CR, MPQA\) set --format "
     r"label_text; .*; for unlabelled sentences leave out --label-column\.$"),
    ("1 good\n0 bad\n", ["--encoding", "utf-9"],
     r"--encoding utf-9 is not an encoding Python knows; use e\.g\. utf-8, cp1252 or latin-1"),
])
def test_format_mistakes_through_the_cli(model_dir, tmp_path, capsys, content, flags, match):
    path = tmp_path / "sst.data"
    path.write_text(content, encoding="utf-8")
    err = _error(["encode", model_dir, "--data", str(path), "--output", str(tmp_path / "z.npy"), *flags], capsys)
    assert re.search(match, err), err
    assert not (tmp_path / "z.npy").exists()


@pytest.mark.parametrize("name, content, match", [
    ("header.csv", "text,label\n", r"header\.csv has a header but no rows under it: there are no sentences to read"),
    ("header.tsv", "text\tlabel\n", r"header\.tsv has a header but no rows under it"),
    ("empty.json", "[]", r"empty\.json has no rows \(records\)"),
    ("empty.parquet", None, r"empty\.parquet has no rows \(records\)"),
])
def test_table_without_rows_through_the_cli(model_dir, tmp_path, capsys, name, content, match):
    path = tmp_path / name
    if content is None:
        pd.DataFrame({"text": pd.Series([], dtype=str)}).to_parquet(path)
    else:
        path.write_text(content, encoding="utf-8")
    err = _error(["encode", model_dir, "--data", str(path), "--output", str(tmp_path / "z.npy")], capsys)
    assert re.search(match, err) and "Instruction" not in err and "BatchSize" not in err, err
    assert not (tmp_path / "z.npy").exists()


def test_header_only_csv_through_train(tmp_path, capsys):
    path = tmp_path / "train.csv"
    path.write_text("text,label\n", encoding="utf-8")
    out = tmp_path / "run"
    err = _error(["train", str(REPO / "recipes" / "quickstart.yaml"), f"data.train_files={path}",
                  "--output", str(out), "--no-progress"], capsys)
    assert err.endswith("train.csv has a header but no rows under it: there are no sentences to read. Check that "
                        "it is the right file, and that it was written completely.")
    assert not out.exists() or not any(out.iterdir())


def test_directory_as_data_file_or_recipe(model_dir, tmp_path, capsys):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("a good film\n", encoding="utf-8")
    err = _error(["encode", model_dir, "--data", str(folder), "--output", str(tmp_path / "z.npy")], capsys)
    assert err.endswith(f"{folder} is a directory, not a data file (--data). Name the files in it with a glob "
                        f"pattern, e.g. --data '{folder}/*.txt', or give one file."), err
    out = tmp_path / "run"
    err = _error(["train", str(REPO / "recipes" / "quickstart.yaml"), f"data.train_files={folder}",
                  "--output", str(out)], capsys)
    assert err.endswith(f"(data.train_files). Name the files in it with a glob pattern, e.g. "
                        f"data.train_files={folder}/*.txt, or give one file."), err
    assert not out.exists() or not any(out.iterdir())
    err = _error(["train", str(REPO / "recipes" / "ptb"), "--output", str(out)], capsys)
    first = sorted(p.name for p in (REPO / "recipes" / "ptb").glob("*.yaml"))[0]
    assert re.search(r"recipes/ptb is a directory, not a recipe file\. Give the path of one recipe YAML "
                     rf"\(.*recipes/ptb holds {re.escape(first)}, .*\), e\.g\. .*recipes/ptb/{re.escape(first)}",
                     err), err
    assert "does not exist" not in err
    assert not out.exists() or not any(out.iterdir())


def test_glob_patterns_in_data_files(model_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "b.txt").write_text("the cat sat\n", encoding="utf-8")
    (tmp_path / "part" / "a.txt").write_text("a good film\na bad film\n", encoding="utf-8")
    (tmp_path / "part" / "deep").mkdir()
    (tmp_path / "part" / "deep" / "c.txt").write_text("a fine day\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    dsd = load_corpus(DataConfig(name=None, train_files=["part/*.txt"], valid_files=["part/**/*.txt"]))
    assert dsd["train"]["text"][:] == ["a good film", "a bad film", "the cat sat"]  # sorted: a.txt, b.txt
    assert dsd["validation"]["text"][:] == ["a good film", "a bad film", "the cat sat", "a fine day"]
    with pytest.raises(DataError, match=r"^The pattern 'part/\*\.csv' \(data\.valid_files\) matches no file "
                                        r"\(relative patterns are read from .*\)\. Check the folder"):
        load_corpus(DataConfig(name=None, train_files=["part/*.txt"], valid_files=["part/*.csv"]))
    code, printed, err = _run(["encode", model_dir, "--data", "part/**/*.txt", "--output", "z.npy", "--no-progress"],
                              capsys)
    assert code == 0 and "wrote 4 x 8 features" in printed, err
    err = _error(["encode", model_dir, "--data", "nowhere/*.txt", "--output", "y.npy"], capsys)
    assert "The pattern 'nowhere/*.txt' (--data) matches no file" in err and not Path("y.npy").exists()


def _no_hub(*args, **kwargs):
    raise AssertionError("the hub must not be tried for a mistyped shipped name")


def test_mistyped_shipped_name_is_refused_before_the_hub(model_dir, tmp_path, capsys, monkeypatch):
    from textvae.data import hub

    monkeypatch.setattr(hub, "load_dataset", _no_hub)
    out = tmp_path / "run"
    err = _error(["train", str(REPO / "recipes" / "quickstart.yaml"), "data.name=pbt", "--output", str(out)], capsys)
    assert err == ("textvae train: error: Did you mean data.name=ptb? 'pbt' is not a shipped corpus (those are ptb, "
                   "yelp, yahoo, sst2). To load a Hugging Face hub dataset of that name instead, give it with its "
                   "owner, as on its hub page (data.name=owner/pbt).")
    assert not out.exists() or not any(out.iterdir())
    err = _error(["evaluate", model_dir, "--data", "pbt", "--output", str(tmp_path / "e.json")], capsys)
    assert err.startswith("textvae evaluate: error: Did you mean --data ptb? 'pbt' is not a shipped corpus")
    err = _error(["encode", model_dir, "--data", "yelpp", "--output", str(tmp_path / "z.npy")], capsys)
    assert err.startswith("textvae encode: error: Did you mean --data yelp? --data yelpp is neither a file nor a "
                          "shipped corpus (ptb, yelp, yahoo, sst2) (relative paths are read from ")
    assert sorted(p.name for p in tmp_path.iterdir()) == (["run"] if out.exists() else [])


def test_hub_retry_noise_is_held_back(model_dir, tmp_path, capsys, monkeypatch):
    import logging

    from textvae.data import hub

    def offline(*args, **kwargs):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        logging.getLogger("urllib3.connectionpool").warning("Retrying (Retry(total=4)) after connection broken")
        logging.getLogger("datasets.load").warning("Couldn't reach the Hugging Face Hub")
        raise ConnectionError("Couldn't reach 'someone/corpus' on the Hub (ConnectError)")

    monkeypatch.setattr(hub, "load_dataset", offline)
    err = _error(["evaluate", model_dir, "--data", "someone/corpus", "--output", str(tmp_path / "e.json")], capsys)
    assert err.startswith("textvae evaluate: error: The dataset 'someone/corpus' is not a shipped corpus and could "
                          "not be loaded from the Hugging Face hub (offline? ConnectionError: Couldn't reach")
    assert err.endswith("Use a shipped corpus (--data ptb / yelp / yahoo / sst2) or local files: --data "
                        "path/train.txt (for csv/json/parquet also --text-column and --label-column).")
    assert "Retrying" not in capsys.readouterr().err and not (tmp_path / "e.json").exists()

    # when the hub answers, what it logged is passed on as it would have been
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    hub_logger = logging.getLogger("huggingface_hub")
    hub_logger.addHandler(handler)
    try:
        with hub.held_hub_logs():
            logging.getLogger("huggingface_hub.file_download").warning("a real warning")
            assert seen == []
        assert seen == ["a real warning"]
    finally:
        hub_logger.removeHandler(handler)


def test_shipped_example_sentences_are_test_sentences_of_their_classes():
    # The commands printed after training reconstruct and interpolate these: held-out text, and for
    # a labelled corpus from the first class to the second.
    with_examples = {name: spec for name, spec in SHIPPED_CORPORA.items() if spec.examples}
    assert {"ptb", "yelp"} <= set(with_examples)
    for name, spec in with_examples.items():
        test = load_corpus(DataConfig(name=name))["test"]
        where = {text: i for i, text in enumerate(test["text"])}
        assert len(spec.examples) == 2 and all(e in where for e in spec.examples), name
        if spec.label_names:
            assert [test["label"][where[e]] for e in spec.examples] == [0, 1], name
