import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from datasets import Dataset

from textvae.cli import main
from textvae.config import DecoderConfig, EncoderConfig, ModelConfig, TokenizerConfig
from textvae.data import TextTokenizer
from textvae.inference.api import latent_path, lerp, slerp
from textvae.inference.features import InputWarning, encode_dataset, write_features
from textvae import TextVAE
from textvae.modeling import VocabSpec
from textvae.errors import ConfigError

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn",
             "we eat bread and cheese", "rain falls on the roof today"]


@pytest.fixture(scope="module")
def model(train_autoencoder) -> TextVAE:
    return train_autoencoder(SENTENCES)


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    return str(model.save_pretrained(tmp_path_factory.mktemp("latent_api") / "model"))


# --------------------------------------------------------------------------- API


@pytest.mark.parametrize("options", [{}, {"method": "beam", "beam_size": 3}])
def test_reconstruct_returns_memorised_sentences(model, options):
    assert model.reconstruct(SENTENCES, **options) == SENTENCES
    assert model.reconstruct(SENTENCES[0]) == [SENTENCES[0]]  # one string is one text


def test_saved_model_reconstructs_the_same(model, model_dir):
    again = TextVAE.from_pretrained(model_dir)
    assert again.reconstruct(SENTENCES) == SENTENCES
    assert torch.equal(again.encode(SENTENCES), model.encode(SENTENCES))


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolation_endpoints_are_the_inputs(model, method):
    path = model.interpolate(SENTENCES[0], SENTENCES[3], steps=6, method=method)
    assert len(path) == 6
    assert path[0] == SENTENCES[0] and path[-1] == SENTENCES[3]
    z = model.interpolation_latents(SENTENCES[0], SENTENCES[3], 6, method=method)
    ends = model.encode([SENTENCES[0], SENTENCES[3]])
    assert torch.equal(z[0], ends[0]) and torch.equal(z[-1], ends[1])


def test_interpolation_between_prior_samples_is_seeded(model):
    a = model.interpolate(steps=4, seed=3)
    assert len(a) == 4 and a == model.interpolate(steps=4, seed=3)
    assert not torch.equal(model.interpolation_latents(steps=4, seed=3), model.interpolation_latents(steps=4, seed=4))


def test_lerp_and_slerp_paths():
    a, b = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    t = torch.linspace(0, 1, 5)
    assert torch.allclose(lerp(a, b, t)[2], torch.tensor([1.5, 0.5, 0.0]))
    # slerp: norms go linearly from ‖a‖ to ‖b‖; the direction turns at a constant angular speed
    path = slerp(a, b, t)
    assert torch.allclose(path.norm(dim=1), torch.linspace(3.0, 1.0, 5), atol=1e-5)
    angles = torch.atan2(path[:, 1], path[:, 0])
    assert torch.allclose(angles, torch.linspace(0, torch.pi / 2, 5), atol=1e-5)
    # equal norms stay equal all the way, while lerp's midpoints shrink
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(16, generator=g), torch.randn(16, generator=g)
    u, v = 4 * u / u.norm(), 4 * v / v.norm()
    spherical = latent_path(u, v, 9, "slerp")
    assert torch.allclose(spherical.norm(dim=1), torch.full((9,), 4.0), atol=1e-4)
    assert latent_path(u, v, 9, "lerp").norm(dim=1)[4] < 3.5
    assert torch.equal(spherical[0], u) and torch.equal(spherical[-1], v)
    # degenerate endpoints: same direction, opposite directions, a zero vector
    assert torch.allclose(slerp(a, 2 * a, t).norm(dim=1), torch.linspace(3, 6, 5), atol=1e-5)
    assert torch.allclose(slerp(a, -a, t), lerp(a, -a, t))
    assert torch.allclose(slerp(torch.zeros(3), b, t), lerp(torch.zeros(3), b, t))


def test_generate_is_seeded_and_seeds_differ(model):
    first = model.generate(8, method="sample", seed=0)
    assert len(first) == 8 and all(isinstance(s, str) for s in first)
    assert first == model.generate(8, method="sample", seed=0)
    assert first != model.generate(8, method="sample", seed=1)
    # greedy depends on the seed only through z; beam returns one sentence per z too
    assert model.generate(3, seed=5) == model.generate(3, seed=5)
    assert len(model.generate(3, method="beam", beam_size=2, seed=5)) == 3


def test_encode_shape_dtype_and_sampling(model):
    mu = model.encode(SENTENCES)
    assert mu.shape == (5, 8) and mu.dtype == torch.float32 and mu.device.type == "cpu"
    assert model.encode([]).shape == (0, 8)
    torch.testing.assert_close(model.encode(SENTENCES, batch_size=2), mu)  # batching changes nothing
    s1 = model.encode(SENTENCES, use="sample", seed=0)
    assert torch.equal(s1, model.encode(SENTENCES, use="sample", seed=0)) and not torch.equal(s1, mu)
    with pytest.raises(ConfigError, match="use must be 'mean' or 'sample'"):
        model.encode(SENTENCES, use="mode")


def test_encode_dataset_equals_encode(model):
    dataset = Dataset.from_dict({"text": SENTENCES * 3, "label": [0, 1, 0, 1, 0] * 3})
    with_z = encode_dataset(model, dataset, batch_size=4)
    assert with_z.column_names == ["text", "label", "z"]
    np.testing.assert_allclose(np.asarray(with_z["z"]), model.encode(SENTENCES * 3).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="no column 'sentence'"):
        encode_dataset(model, dataset, text_column="sentence")


def test_empty_unknown_and_too_long_inputs_are_reported(model):
    with pytest.warns(InputWarning) as caught:
        out = model.reconstruct(["", "zebra quokka", " ".join(["cat"] * 30)])
    messages = " ".join(str(w.message) for w in caught)
    assert "1 of 3 input text(s) are empty" in messages
    assert "consist only of words unknown" in messages
    assert "longer than 14 tokens (the longest has 30) and were truncated to 14" in messages
    assert len(out) == 3
    # a truncated text is encoded exactly as its first max_length tokens
    with pytest.warns(InputWarning, match="truncated to 3"):
        cut = model.encode(["the cat sat on the mat"], max_length=3)
    assert torch.equal(cut, model.encode(["the cat sat"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ordinary input: no warning at all
        model.encode(SENTENCES)


def test_bad_requests_are_clear_errors(model, train_autoencoder):
    with pytest.raises(ConfigError, match="steps must be >= 2"):
        model.interpolate(SENTENCES[0], SENTENCES[1], steps=1)
    with pytest.raises(ConfigError, match="give two sentences"):
        model.interpolate(SENTENCES[0], None)
    with pytest.raises(ConfigError, match="unknown interpolation method"):
        model.interpolate(SENTENCES[0], SENTENCES[1], method="cubic")
    with pytest.raises(ConfigError, match="texts must be strings"):
        model.encode([None])
    with pytest.raises(ConfigError, match=r"z must have shape \(N, 8\)"):
        model.decode_latent(torch.zeros(2, 3))
    lm = train_autoencoder(SENTENCES, steps=1, mode="lm")
    with pytest.raises(ConfigError, match="language model"):
        lm.encode(SENTENCES)
    assert len(lm.generate(2, method="sample", seed=0)) == 2  # an LM still generates
    lm.tokenizer = None
    with pytest.raises(ConfigError, match="no tokenizer"):
        lm.generate(1)


def test_write_features_formats(tmp_path):
    z = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert np.array_equal(np.load(write_features(tmp_path / "f.npy", z)), z)
    table = pq.read_table(write_features(tmp_path / "f.parquet", z, ["a", "b", "c"], ["x", "y", "x"]))
    assert table.column_names == ["text", "label", "z"]
    assert np.array_equal(np.asarray(table["z"].to_pylist(), dtype=np.float32), z)
    with pytest.raises(ConfigError, match=r"use a \.npy or \.parquet"):
        write_features(tmp_path / "f.csv", z)
    with pytest.raises(ConfigError, match="3 feature rows but 2 texts"):
        write_features(tmp_path / "g.parquet", z, ["a", "b"])


# --------------------------------------------------------------------------- CLI


def test_cli_generate(model_dir, capsys):
    assert main(["generate", model_dir, "--num", "4", "--decode", "sample", "--top-k", "5", "--seed", "1",
                 "--device", "cpu"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 4
    main(["generate", model_dir, "--num", "4", "--decode", "sample", "--top-k", "5", "--seed", "1"])
    assert capsys.readouterr().out.splitlines() == first
    assert main(["generate", model_dir, "--num", "2", "--top-p", "0.9"]) == 2
    assert "only apply to method 'sample'" in capsys.readouterr().err


def test_cli_accepts_a_run_directory(model, tmp_path, capsys):
    run = tmp_path / "run"
    model.save_pretrained(run / "model")
    (run / "recipe.yaml").write_text("train: {}\n")
    assert main(["reconstruct", str(run), SENTENCES[2]]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"< {SENTENCES[2]}"
    assert main(["generate", str(tmp_path), "--num", "1"]) == 2
    assert "neither a textvae run directory" in capsys.readouterr().err


def test_cli_reconstruct(model_dir, tmp_path, capsys):
    assert main(["reconstruct", model_dir, SENTENCES[0], SENTENCES[1], "--decode", "beam", "--beam-size", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"> {SENTENCES[0]}", f"< {SENTENCES[0]}",
                                                    f"> {SENTENCES[1]}", f"< {SENTENCES[1]}"]
    data = tmp_path / "in.txt"
    data.write_text("\n".join(SENTENCES) + "\n")
    assert main(["reconstruct", model_dir, "--data", str(data)]) == 0
    assert [line[2:] for line in capsys.readouterr().out.splitlines()[1::2]] == SENTENCES
    # too long: truncated, and said so on stderr as one plain line
    assert main(["reconstruct", model_dir, " ".join(["dog"] * 20), "--max-length", "5"]) == 0
    captured = capsys.readouterr()
    assert "textvae reconstruct: warning: 1 of 1 input text(s) are longer than 5 tokens" in captured.err
    assert len(captured.out.splitlines()[1][2:].split()) <= 5
    assert main(["reconstruct", model_dir]) == 2
    assert "either as arguments or with --data" in capsys.readouterr().err


def test_cli_interpolate(model_dir, capsys):
    assert main(["interpolate", model_dir, SENTENCES[0], SENTENCES[2], "--steps", "5", "--method", "slerp"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["t", "‖z‖", "sentence"]
    assert len(lines) == 5
    assert lines[0].startswith("0.000") and lines[0].endswith(SENTENCES[0])
    norms = [float(line.split()[1]) for line in lines]
    assert all(n > 0 for n in norms)
    assert lines[-1].startswith("1.000") and lines[-1].endswith(SENTENCES[2])
    assert main(["interpolate", model_dir, "--steps", "3", "--seed", "0"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 3
    assert main(["interpolate", model_dir, SENTENCES[0], SENTENCES[1], "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--steps must be >= 2 so that the path includes both endpoints" in err and "Traceback" not in err
    assert main(["interpolate", model_dir, SENTENCES[0]]) == 2
    assert "give two sentences" in capsys.readouterr().err


def test_cli_encode(model_dir, model, tmp_path, capsys):
    data = tmp_path / "in.csv"
    data.write_text("sentence,label\n" + "\n".join(f"{s},{'pos' if i % 2 else 'neg'}"
                                                  for i, s in enumerate(SENTENCES)) + "\n")
    out = tmp_path / "feats.parquet"
    assert main(["encode", model_dir, "--data", str(data), "--text-column", "sentence", "--label-column", "label",
                 "--output", str(out), "--no-progress"]) == 0
    assert f"wrote 5 x 8 features (mean) to {out}" in capsys.readouterr().out
    table = pq.read_table(out).to_pydict()
    assert table["text"] == SENTENCES and table["label"] == ["neg", "pos", "neg", "pos", "neg"]
    np.testing.assert_allclose(np.asarray(table["z"]), model.encode(SENTENCES).numpy(), rtol=1e-5, atol=1e-6)
    txt = tmp_path / "in.txt"
    txt.write_text("\n".join(SENTENCES) + "\n")
    assert main(["encode", model_dir, "--data", str(txt), "--output", str(tmp_path / "f.npy"), "--no-progress"]) == 0
    feats = np.load(tmp_path / "f.npy")
    assert feats.shape == (5, 8) and feats.dtype == np.float32
    assert main(["encode", model_dir, "--data", str(txt), "--output", str(tmp_path / "f.txt")]) == 2
    assert "use a .npy or .parquet file name" in capsys.readouterr().err
    assert main(["encode", model_dir, "--data", "no_such_corpus", "--output", str(tmp_path / "f.npy")]) == 2
    assert "neither a file nor a shipped corpus" in capsys.readouterr().err


def test_transformer_model_through_the_api():
    tokenizer = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=100), SENTENCES)
    vocab = VocabSpec(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
    part = {"kind": "transformer", "hidden_dim": 16, "num_heads": 2, "ffn_dim": 32}
    cfg = ModelConfig(latent_dim=4, max_positions=10, encoder=EncoderConfig(**part), decoder=DecoderConfig(**part))
    torch.manual_seed(0)
    model = TextVAE(cfg, vocab, tokenizer).eval()
    assert model.generate(3, method="sample", seed=0) == model.generate(3, method="sample", seed=0)
    assert len(model.reconstruct(SENTENCES, method="beam", beam_size=2)) == 5
    assert model.encode(SENTENCES).shape == (5, 4)
    with pytest.warns(InputWarning, match="truncated to 8"):  # max_positions 10 − BOS − EOS
        model.encode([" ".join(["cat"] * 12)])
    with pytest.raises(ConfigError, match="max_positions=10 leaves 8 tokens"):
        model.generate(1, max_length=9)
    with pytest.raises(ConfigError, match="max_positions=10 leaves 8 tokens"):
        model.encode(SENTENCES, max_length=9)
