import json
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from textvae.cli import main
from textvae.evaluation.probe import (check_labels, few_label_indices, parse_budgets, probe_features, run_probe,
                                      subsample)
from textvae.sklearn import TextVAEFeaturizer
from textvae.errors import ConfigError

# Two classes with disjoint vocabularies: any encoder that reconstructs them must separate them.
FOOD = ["soup", "bread", "cheese", "rice", "pasta", "salad"]
SPORT = ["tennis", "golf", "rugby", "hockey", "chess", "polo"]


def synthetic(n_per_class: int, seed: int) -> tuple[list[str], list[int]]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in enumerate((FOOD, SPORT)):
        for _ in range(n_per_class):
            texts.append(" ".join(rng.choice(words, size=rng.integers(2, 5))))
            labels.append(label)
    return texts, labels


TRAIN = synthetic(20, 0)
TEST = synthetic(15, 1)


@pytest.fixture(scope="module")
def model(train_autoencoder):
    return train_autoencoder(TRAIN[0], steps=150)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    return str(model.save_pretrained(tmp_path_factory.mktemp("probe") / "model"))


def write_csv(path, texts, labels, label_header="label"):
    path.write_text(f"text,{label_header}\n" + "".join(f"{t},{'food' if y == 0 else 'sport'}\n"
                                                      for t, y in zip(texts, labels)))
    return str(path)


# --------------------------------------------------------------------------- pieces


def test_parse_budgets():
    assert parse_budgets("10,100, all") == [10, 100, None]
    for bad in ("0", "ten", ""):
        with pytest.raises(ConfigError, match="positive integer or 'all'"):
            parse_budgets(bad)


def test_few_label_indices():
    labels = np.array([0] * 10 + [1] * 3 + [2] * 7)
    idx = few_label_indices(labels, 4, seed=0)
    assert np.bincount(labels[idx]).tolist() == [4, 3, 4]  # a class with fewer gives all it has
    assert len(set(idx.tolist())) == len(idx)
    assert np.array_equal(idx, few_label_indices(labels, 4, seed=0))
    assert not np.array_equal(idx, few_label_indices(labels, 4, seed=1))
    assert np.array_equal(few_label_indices(labels, None, seed=0), np.arange(20))
    assert np.array_equal(subsample(5, None), np.arange(5)) and len(subsample(100, 7)) == 7


def test_check_labels():
    with pytest.raises(ConfigError, match="single class"):
        check_labels([1, 1, 1], "train.csv")
    with pytest.raises(ConfigError, match="has no labels"):
        check_labels(None, "ptb")


def test_probe_on_separable_features_beats_chance_and_reports_baselines():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 2, 400), rng.integers(0, 2, 200)
    x_train = rng.normal(size=(400, 8)) + 3.0 * y_train[:, None]
    x_test = rng.normal(size=(200, 8)) + 3.0 * y_test[:, None]
    result = probe_features(x_train, y_train, x_test, y_test, [5, None], seeds=[0, 1, 2])
    five = result.get("latent", "5")
    assert five.mean > 0.9 and len(five.accuracies) == 3 and five.n_train == 10
    assert result.get("latent", "all").mean > 0.97 and result.get("latent", "all").accuracies.__len__() == 1
    majority = result.get("majority", "5")
    assert majority.mean < 0.65 and abs(result.test_majority - max(y_test.mean(), 1 - y_test.mean())) < 1e-9
    assert not any(r.method == "bow" for r in result.rows)  # no texts, no bag of words
    table = result.table()
    assert "latent" in table and "majority" in table and "3 seed(s)" in table


def test_run_probe_on_a_trained_model(model):
    result = run_probe(model, *TRAIN, *TEST, budgets=[3, None], seeds=range(3))
    assert result.get("latent", "3").mean > 0.85
    assert result.get("latent", "all").mean > 0.95
    assert result.get("bow", "all").mean > 0.95  # disjoint vocabularies: words alone suffice
    assert result.get("majority", "3").mean == pytest.approx(0.5)
    assert result.n_classes == 2 and result.n_test == 30 and result.n_train_pool == 40


# --------------------------------------------------------------------------- scikit-learn


def test_featurizer_in_a_pipeline_with_cross_validation(model, model_dir):
    featurizer = TextVAEFeaturizer(model_dir, batch_size=16)
    assert featurizer.get_params() == {"model_dir": model_dir, "use": "mean", "batch_size": 16,
                                       "max_length": None, "device": "cpu", "seed": None}
    features = featurizer.fit(TRAIN[0]).transform(TRAIN[0])
    assert features.shape == (40, 8) and features.dtype == np.float32
    np.testing.assert_allclose(features, model.encode(TRAIN[0]).numpy(), rtol=1e-5, atol=1e-6)
    twin = clone(featurizer)
    assert twin.get_params() == featurizer.get_params() and not hasattr(twin, "_loaded")
    assert pickle.loads(pickle.dumps(featurizer)).get_params() == featurizer.get_params()
    pipe = make_pipeline(TextVAEFeaturizer(model_dir), LogisticRegression(max_iter=1000))
    scores = cross_val_score(pipe, TRAIN[0], TRAIN[1], cv=3)
    assert scores.mean() > 0.85
    assert list(featurizer.get_feature_names_out()) == [f"z{i}" for i in range(8)]


# --------------------------------------------------------------------------- CLI


def test_cli_probe_on_files(model_dir, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", *TRAIN)
    test = write_csv(tmp_path / "test.csv", *TEST)
    out = tmp_path / "probe.json"
    assert main(["probe", model_dir, "--train", train, "--test", test, "--labels-per-class", "3,all",
                 "--seeds", "2", "--output", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "labels/class" in printed and "latent" in printed and "bow" in printed and "majority" in printed
    saved = json.loads(out.read_text())
    assert saved["label_names"] == ["food", "sport"] and saved["seeds"] == [0, 1]
    rows = {(r["method"], r["budget"]): r for r in saved["rows"]}
    assert rows[("latent", "3")]["mean"] > 0.85 and len(rows[("latent", "3")]["accuracies"]) == 2
    assert rows[("majority", "all")]["mean"] == pytest.approx(0.5)


def test_cli_probe_bad_labels(model_dir, tmp_path, capsys):
    test = write_csv(tmp_path / "test.csv", *TEST)
    no_label = write_csv(tmp_path / "nolabel.csv", *TRAIN, label_header="topic")
    assert main(["probe", model_dir, "--train", no_label, "--test", test]) == 2
    err = capsys.readouterr().err
    assert "has no column 'label'" in err and "Traceback" not in err
    one_class = write_csv(tmp_path / "one.csv", TRAIN[0][:20], TRAIN[1][:20])
    assert main(["probe", model_dir, "--train", one_class, "--test", write_csv(tmp_path / "t1.csv", TEST[0][:5],
                                                                                  TEST[1][:5])]) == 2
    assert "single class" in capsys.readouterr().err
    text_file = tmp_path / "train.txt"
    text_file.write_text("\n".join(TRAIN[0]))
    assert main(["probe", model_dir, "--train", str(text_file), "--test", test]) == 2
    assert "text files have only the column 'text'" in capsys.readouterr().err
    assert main(["probe", model_dir, "--dataset", "ptb"]) == 2
    assert "not a shipped labelled corpus" in capsys.readouterr().err
    assert main(["probe", model_dir, "--train", test]) == 2
    assert "both --train FILE and --test FILE" in capsys.readouterr().err
    assert main(["probe", model_dir, "--dataset", "sst2", "--labels-per-class", "ten"]) == 2
    assert "positive integer or 'all'" in capsys.readouterr().err


def test_cli_probe_shipped_shortcut(model_dir, capsys):
    # sst2 through its shortcut, on small random subsets (the model never saw this vocabulary)
    assert main(["probe", model_dir, "--dataset", "sst2", "--max-train", "60", "--max-test", "40",
                 "--labels-per-class", "5", "--seeds", "2", "--no-progress", "--no-bow"]) == 0
    captured = capsys.readouterr()
    assert "60 training and 40 test sentences" in captured.out
    assert "warning:" in captured.err  # most sst2 words are unknown to this tiny model, and it says so


def test_cli_plot_latent(model_dir, tmp_path, capsys):
    data = write_csv(tmp_path / "data.csv", *TRAIN)
    png = tmp_path / "latent.png"
    assert main(["plot-latent", model_dir, "--data", data, "--label-column", "label", "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "40 sentences" in capsys.readouterr().out
    text = tmp_path / "data.txt"
    text.write_text("\n".join(TRAIN[0]))
    assert main(["plot-latent", model_dir, "--data", str(text), "--max-points", "10",
                 "--output", str(tmp_path / "plain.png")]) == 0
    assert "10 sentences" in capsys.readouterr().out
    assert main(["plot-latent", model_dir, "--data", str(text), "--output", str(tmp_path / "x.jpg")]) == 2
    assert "use a .png file name" in capsys.readouterr().err


def test_cli_probe_same_file_and_blank_rows_say_so(model_dir, tmp_path, capsys):
    path = tmp_path / "train.csv"
    write_csv(path, *TRAIN)
    with path.open("a") as f:
        f.write(" ,food\n,sport\n")  # two rows without text
    out = tmp_path / "probe.json"
    assert main(["probe", model_dir, "--train", str(path), "--test", str(path), "--labels-per-class", "3",
                 "--seeds", "1", "--no-progress", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert (f"textvae probe: warning: --train and --test share the same file ({path.resolve()}): the probe is tested "
            "on sentences it was trained on, so its accuracy says how well it fits them, not how well it "
            "generalises. Give a held-out --test file.") in captured.err
    assert (f"textvae probe: note: --train {path}: 2 blank line(s) or empty text cell(s) left out; 40 sentences "
            "remain.") in captured.err
    assert f"textvae probe: note: --test {path}: 2 blank" in captured.err
    assert "40 training and 40 test sentences" in captured.out and out.is_file()


def test_cli_probe_on_label_prefixed_files(model_dir, tmp_path, capsys):
    train, test = tmp_path / "stsa.train", tmp_path / "stsa.test"
    train.write_text("".join(f"{y} {t}\n" for t, y in zip(*TRAIN)) + "1\n", encoding="utf-8")
    test.write_text("".join(f"{y} {t}\n" for t, y in zip(*TEST)), encoding="utf-8")
    out = tmp_path / "probe.json"
    assert main(["probe", model_dir, "--train", str(train), "--test", str(test), "--format", "label_text",
                 "--labels-per-class", "3,all", "--seeds", "2", "--no-progress", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"textvae probe: note: {train}: 1 line(s) hold only a label and no sentence (line 41)" in captured.err
    assert "warning" not in captured.err
    saved = json.loads(out.read_text())
    assert saved["label_names"] == ["0", "1"] and saved["n_train_pool"] == 40 and saved["n_test"] == 30
    assert next(r for r in saved["rows"] if (r["method"], r["budget"]) == ("latent", "all"))["mean"] > 0.9
    # without --format: no extension to go by, and the error names the probe's flag
    assert main(["probe", model_dir, "--train", str(train), "--test", str(test)]) == 2
    err = capsys.readouterr().err
    assert "set --format to one of text, label_text" in err and "data.format" not in err
    assert "Traceback" not in err
    # shipped sets have their own format
    assert main(["probe", model_dir, "--dataset", "sst2", "--format", "label_text"]) == 2
    assert ("textvae probe: error: --format applies to --train/--test files; the shipped corpus 'sst2' is read in "
            "its own format. Leave it out.") in capsys.readouterr().err


def test_cli_probe_text_file_hints_label_text(model_dir, tmp_path, capsys):
    text_file = tmp_path / "train.txt"
    text_file.write_text("".join(f"{y} {t}\n" for t, y in zip(*TRAIN)), encoding="utf-8")
    assert main(["probe", model_dir, "--train", str(text_file), "--test", str(text_file)]) == 2
    err = capsys.readouterr().err
    assert err.rstrip("\n").split("\n")[-1] == (
        f"textvae probe: error: {text_file} is read as text, and text files have only the column 'text', so there "
        "is no label column 'label' (--label-column). For '<label> <sentence>' lines (SST, MR, SUBJ, TREC, CR, "
        "MPQA) set --format label_text; for labelled tables use a csv/tsv/json/parquet file.")


def test_plot_title_names_the_run_of_a_checkpoint_folder(tmp_path):
    from textvae.cli.plot_latent import model_name

    run = tmp_path / "yelp_info_vae"
    run.mkdir()
    (run / "recipe.yaml").write_text("{}\n")  # what marks a run directory
    # "best" alone would name every run's best model; the run's folder says which
    assert model_name(str(run / "best")) == "yelp_info_vae/best"
    assert model_name(str(run / "model") + "/") == "yelp_info_vae/model"
    assert model_name(str(run / "checkpoints" / "step-00001000")) == "yelp_info_vae/checkpoints/step-00001000"
    assert model_name(str(tmp_path / "exported_vae")) == "exported_vae"
