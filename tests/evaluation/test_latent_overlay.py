"""plot-latent --prior-samples: the aggregate posterior against N(0, I) and an energy-based prior,
on the PCA of the posterior samples — the projection, the sample sets, the PNG and the CLI."""

import numpy as np
import pytest
import torch

from textvae import TextVAE
from textvae.cli import main
from textvae.config import (DecoderConfig, EncoderConfig, EnergyPriorConfig, LangevinConfig, ModelConfig,
                            PosteriorLangevinConfig, TokenizerConfig)
from textvae.data import TextTokenizer
from textvae.evaluation.plots import (EBM, GAUSSIAN, POSTERIOR, aggregate_posterior_samples, pca_projections,
                                      plot_prior_overlay, prior_samples)
from textvae.modeling import VocabSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SENTENCES = ["the cat sat", "a dog ran far", "the dog sat down", "a cat ran", "the bird flew away",
             "a bird sat", "the cat ran far", "a dog sat"]


def tiny_model(prior: str = "gaussian", inference: str = "amortized") -> TextVAE:
    """A random (untrained) model, latent 4, with cheap chains (3 steps) where it has any."""
    torch.manual_seed(0)
    tokenizer = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=50), SENTENCES)
    vocab = VocabSpec(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
    cfg = ModelConfig(latent_dim=4, max_positions=16, prior=prior, inference=inference,
                      ebm=EnergyPriorConfig(hidden_dims=[8], langevin=LangevinConfig(steps=3)),
                      langevin=PosteriorLangevinConfig(steps=3, fit_samples=2),
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=8),
                      decoder=DecoderConfig(embed_dim=8, hidden_dim=8))
    model = TextVAE(cfg, vocab, tokenizer)
    if prior == "ebm":
        with torch.no_grad():
            for p in model.prior.parameters():
                p.normal_(0.0, 0.5)  # a tilted prior, not the N(0, I) a fresh one is
    return model.eval()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlay")
    return {prior: str(tiny_model(prior).save_pretrained(root / prior)) for prior in ("gaussian", "ebm")}


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    return str(path)


# --------------------------------------------------------------------------- the projection


def test_pca_projection_finds_the_dominant_axis_and_projects_other_sets_on_it():
    # Reference: centred, exactly uncorrelated columns (their sample covariance is diagonal) with
    # standard deviations 10, 1, 0.01, rotated by a known q and moved to a centre c. Its principal
    # axes are q's columns, the variance ratios 100, 1, 1e-4 over their sum, and every set's
    # projection is (x − c)·axis, up to the sign of each axis.
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    c = np.array([5.0, -2.0, 1.0])
    base = rng.normal(size=(400, 3))
    base, _ = np.linalg.qr(base - base.mean(0))  # orthonormal columns, still centred
    reference = (base * np.sqrt(399) * [10.0, 1.0, 0.01]) @ q.T + c
    other = rng.normal(size=(50, 3))
    (xy_ref, xy_other), ratio = pca_projections(reference, other)
    assert xy_ref.shape == (400, 2) and xy_other.shape == (50, 2)
    assert np.allclose(ratio, np.array([100.0, 1.0]) / 101.0001)
    for k in range(2):
        expected_ref, expected_other = (reference - c) @ q[:, k], (other - c) @ q[:, k]
        sign = np.sign(xy_ref[:, k] @ expected_ref)
        assert np.allclose(sign * xy_ref[:, k], expected_ref, atol=1e-8)
        assert np.allclose(sign * xy_other[:, k], expected_other, atol=1e-8)
    assert np.allclose(xy_ref.std(0, ddof=1), [10.0, 1.0])


def test_pca_projection_of_one_dimension_is_a_line():
    (xy, other), ratio = pca_projections(np.arange(6.0).reshape(6, 1), np.ones((2, 1)))
    assert xy.shape == (6, 2) and other.shape == (2, 2)
    assert np.all(xy[:, 1] == 0) and np.allclose(np.abs(xy[:, 0]), np.abs(np.arange(6.0) - 2.5))
    assert np.allclose(ratio, [1.0, 0.0])


# --------------------------------------------------------------------------- the sample sets


def test_prior_sets_follow_the_prior_and_the_seed():
    gaussian, ebm = tiny_model("gaussian"), tiny_model("ebm")
    assert list(prior_samples(gaussian, 7)) == [GAUSSIAN]
    sets = prior_samples(ebm, 7, seed=3)
    assert list(sets) == [GAUSSIAN, EBM] and all(v.shape == (7, 4) for v in sets.values())
    # The Gaussian set is randn of the seed; the EBM set its prior chain, drawn after it from the same stream.
    g = torch.Generator().manual_seed(3)
    assert torch.equal(sets[GAUSSIAN], torch.randn(7, 4, generator=g))
    assert torch.equal(sets[EBM], ebm.sample_prior(7, g))
    assert torch.equal(prior_samples(ebm, 7, seed=3)[EBM], sets[EBM])


@pytest.mark.parametrize("inference", ["amortized", "langevin", "amortized+langevin"])
def test_aggregate_posterior_samples_are_one_seeded_draw_per_sentence(inference):
    model = tiny_model(inference=inference)
    z = aggregate_posterior_samples(model, SENTENCES + SENTENCES[:2], seed=1, batch_size=4)
    assert z.shape == (10, 4) and z.dtype == torch.float32 and torch.isfinite(z).all()
    assert torch.equal(z, aggregate_posterior_samples(model, SENTENCES + SENTENCES[:2], seed=1, batch_size=4))
    assert not torch.equal(z, aggregate_posterior_samples(model, SENTENCES + SENTENCES[:2], seed=2, batch_size=4))
    assert not torch.equal(z[0], z[8])  # a repeated sentence gets a fresh draw
    if inference == "amortized":  # draws of q(z|x), not its mean
        mu = model.encode(SENTENCES[:2])
        assert not torch.allclose(z[:2], mu)
        assert torch.allclose((z[:2] - mu).abs().mean(), torch.tensor(0.8), atol=0.6)  # σ ≈ 1 untrained


def test_overlay_plot_projects_every_set_on_the_posterior_pca(tmp_path):
    rng = np.random.default_rng(0)
    posterior = rng.normal(size=(300, 5)) * [4.0, 2.0, 0.5, 0.5, 0.5]
    priors = {GAUSSIAN: rng.normal(size=(200, 5)), EBM: rng.normal(size=(100, 5)) + 3.0}
    path = tmp_path / "sub" / "overlay.png"
    result = plot_prior_overlay(posterior, priors, path, labels=[i % 2 for i in range(300)], label_names=["a", "b"])
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert list(result.projections) == [POSTERIOR, GAUSSIAN, EBM]
    expected, ratio = pca_projections(posterior, priors[GAUSSIAN], priors[EBM])
    for got, want in zip(result.projections.values(), expected):
        assert np.allclose(got, want)
    assert np.allclose(result.ratio, ratio)
    s = result.summaries
    assert [s[k].n for k in s] == [300, 200, 100]
    assert np.allclose(s[POSTERIOR].mean, 0.0) and s[POSTERIOR].std[0] > s[POSTERIOR].std[1]
    assert np.allclose(s[GAUSSIAN].std, expected[1].std(0)) and np.allclose(s[EBM].mean, expected[2].mean(0))
    assert s[GAUSSIAN].in_plane < 0.6 < s[POSTERIOR].in_plane  # 2 of 5 unit directions vs the two widest


# --------------------------------------------------------------------------- the command


def test_cli_prior_samples_gaussian_model_draws_two_sets(model_dirs, text_file, tmp_path, capsys):
    png = tmp_path / "gaussian.png"
    assert main(["plot-latent", model_dirs["gaussian"], "--data", text_file, "--prior-samples", "20",
                 "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    out = capsys.readouterr().out
    assert ("20 samples each of the aggregate posterior and N(0, I); posterior: one z ~ q(z|x) per sentence, "
            "8 sentences, each 2.5 times on average; PC1+PC2 of the posterior samples explain") in out
    assert EBM not in out
    rows = {line.split("  ")[1].strip(): line for line in out.splitlines()[2:]}
    assert list(rows) == [POSTERIOR, GAUSSIAN]
    # the posterior's projections are centred: both its means print as zero
    assert [float(x) for x in rows[POSTERIOR].split()[2:6:2]] == [0.0, 0.0]


def test_cli_prior_samples_ebm_model_draws_the_energy_prior_too(model_dirs, tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"{t},{'cat' if 'cat' in t else 'other'}\n" for t in SENTENCES))
    png = tmp_path / "ebm.png"
    assert main(["plot-latent", model_dirs["ebm"], "--data", str(data), "--label-column", "label",
                 "--prior-samples", "6", "--seed", "4", "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC
    out = capsys.readouterr().out
    assert ("6 samples each of the aggregate posterior, N(0, I) and the EBM prior (its model.ebm.langevin chain); "
            "posterior: one z ~ q(z|x) per sentence, 6 sentences;") in out
    assert [line.split("  ")[1].strip() for line in out.splitlines()[2:]] == [POSTERIOR, GAUSSIAN, EBM]


@pytest.mark.parametrize("value", ["-1", "1"])
def test_cli_prior_samples_below_two_is_a_clear_error(model_dirs, text_file, tmp_path, capsys, value):
    png = tmp_path / "x.png"
    assert main(["plot-latent", model_dirs["gaussian"], "--data", text_file, "--prior-samples", value,
                 "--output", str(png)]) == 2
    err = capsys.readouterr().err
    assert f"--prior-samples must be 0 (off) or >= 2 (a PCA needs two points), got {value}." in err
    assert "Traceback" not in err and not png.exists()


def test_cli_without_prior_samples_is_the_plot_of_means(model_dirs, text_file, tmp_path, capsys):
    png = tmp_path / "mu.png"
    assert main(["plot-latent", model_dirs["ebm"], "--data", text_file, "--output", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.read_bytes()[:8] == PNG_MAGIC and "8 sentences, PC1+PC2 explain" in out and GAUSSIAN not in out
