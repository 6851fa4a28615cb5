import json
import math

import pytest
import torch

from textvae.cli import main
from textvae.config import DecoderConfig, EncoderConfig, ModelConfig
from textvae.evaluation import active_units, mutual_information, mutual_information_full
from textvae.evaluation.evaluate import evaluate_model
from textvae.evaluation.likelihood import iw_log_likelihood
from textvae.evaluation.text_metrics import bleu, distinct_n, exact_match, self_bleu
from textvae import TextVAE
from textvae.modeling import VocabSpec
from textvae.objectives import gaussian_kl, mmd
from textvae.errors import ConfigError

from tests.helpers import REPO, TINY, run_test_loader

VOCAB = VocabSpec(vocab_size=20, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def tiny_model(init_logvar=-1.0):
    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=3, init_logvar=init_logvar, encoder=EncoderConfig(embed_dim=8, hidden_dim=8),
                      decoder=DecoderConfig(embed_dim=8, hidden_dim=8))
    return TextVAE(cfg, VOCAB).eval()


def sentences():
    ids = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 9, 2, 0], [1, 10, 2, 0, 0], [1, 11, 12, 13, 2]])
    return ids, torch.tensor([5, 4, 3, 5])


def test_iw_bound_is_above_elbo_and_tightens_with_k():
    model = tiny_model()
    ids, lengths = sentences()
    means = {}
    for k in (1, 10, 200):
        runs = [iw_log_likelihood(model, ids, lengths, k, generator=torch.Generator().manual_seed(s))
                for s in range(8)]
        means[k] = torch.stack([r["iw_ll"] for r in runs]).mean(0)
        for r in runs:
            # log-mean-exp of the weights >= their mean, the sample ELBO (Jensen), per sentence
            assert (r["iw_ll"] >= r["elbo_mc"] - 1e-5).all()
    assert (means[10] >= means[1] - 0.05).all() and (means[200] >= means[10] - 0.05).all()
    assert (means[200] - means[1]).mean() > 0.01  # and it really tightens
    assert (means[200] >= iw_log_likelihood(model, ids, lengths, 1)["elbo"] - 0.05).all()  # above the ELBO
    with pytest.raises(ValueError, match=">= 1"):
        iw_log_likelihood(model, ids, lengths, 0)


def test_iw_with_one_sample_is_an_unbiased_elbo_estimate():
    model = tiny_model()
    ids, lengths = sentences()
    g = torch.Generator().manual_seed(0)
    r = [iw_log_likelihood(model, ids, lengths, 1, generator=g) for _ in range(300)]
    iw = torch.stack([x["iw_ll"] for x in r]).mean(0)
    elbo = torch.stack([x["elbo"] for x in r]).mean(0)  # closed-form KL
    assert torch.allclose(iw, elbo, atol=0.15)


def test_mutual_information_bounds():
    g = torch.Generator().manual_seed(0)
    # an encoder that ignores x: every posterior is the prior (the estimate's noise shrinks with N)
    mu, logvar = torch.zeros(4000, 4), torch.zeros(4000, 4)
    z = torch.randn(4000, 4, generator=g)
    assert abs(mutual_information(mu, logvar, z).item()) < 0.05
    assert abs(mutual_information_full(mu, logvar, z).item()) < 0.05
    n, d = 64, 4
    # an encoder that copies x into z: well-separated, narrow posteriors
    mu = torch.randn(n, d, generator=g) * 5
    logvar = torch.full((n, d), -8.0)
    z = mu + (0.5 * logvar).exp() * torch.randn(n, d, generator=g)
    mi = mutual_information(mu, logvar, z).item()
    assert 0 < mi <= math.log(n) + 1e-4 and mi > 0.95 * math.log(n)
    assert mutual_information_full(mu, logvar, z, chunk=7).item() == pytest.approx(mi, rel=1e-5)


def test_active_units_count_hand_built_encoders():
    g = torch.Generator().manual_seed(0)
    mu = torch.zeros(500, 5)
    mu[:, 0] = torch.randn(500, generator=g)  # variance 1: active
    mu[:, 1] = 0.2 * torch.randn(500, generator=g)  # variance 0.04: active
    mu[:, 2] = 0.05 * torch.randn(500, generator=g)  # variance 0.0025: inactive
    assert active_units(mu) == 2
    assert active_units(mu, threshold=0.001) == 3
    assert active_units(mu[:1]) == 0


def test_mmd_of_prior_samples_against_prior_is_near_zero():
    g = torch.Generator().manual_seed(1)
    values = [mmd(torch.randn(128, 8, generator=g), torch.randn(128, 8, generator=g)).item() for _ in range(10)]
    assert abs(sum(values) / len(values)) < 0.01


def test_text_metrics():
    a = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "in", "the", "park", "today"]]
    assert bleu(a, a) == pytest.approx(100.0)
    assert bleu([["x", "y", "z", "w"]] * 2, a) < 5
    assert exact_match(a, [a[0], ["no"]]) == 0.5
    assert distinct_n([["a", "a", "b"]], 1) == pytest.approx(2 / 3)
    assert distinct_n([["a", "b", "a", "b"]], 2) == pytest.approx(2 / 3)
    assert self_bleu([a[0], a[0], a[0]]) == pytest.approx(100.0)
    assert self_bleu(a) < 30


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    code = main(["train", str(REPO / "recipes/ptb/vae.yaml"), *TINY, "train.max_steps=4", "train.eval_every=4",
                 "--output", str(out), "--no-progress"])
    assert code == 0
    return out


KEYS = ["iw_nll", "neg_elbo", "ppl", "ppl_denominator", "rec", "kl", "mi", "mi_full", "au", "latent_dim", "mmd",
        "bleu", "exact_match", "hit_limit", "decode_limit", "distinct_1", "distinct_2", "self_bleu", "iw_samples",
        "n_sentences", "n_tokens"]


def test_evaluate_command_returns_every_field_and_writes_json(tiny_run, capsys):
    code = main(["evaluate", str(tiny_run), "--split", "test", "--iw-samples", "5", "--max-sentences", "20",
                 "--prior-samples", "5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "iw_nll" in printed and "word tokens + one EOS" in printed
    result = json.loads((tiny_run / "eval.json").read_text())
    for key in KEYS:
        assert key in result, key
    from textvae.config import load_recipe
    from textvae.data import load_corpus

    # the run's test split (TINY keeps a seeded 64 of it), its first 20 sentences
    first20 = load_corpus(load_recipe(tiny_run / "recipe.yaml").data)["test"]["text"][:20]
    kept = [line.split() for line in first20 if len(line.split()) <= 30]  # TINY sets data.max_length=30
    assert result["n_sentences"] == len(kept) and result["n_tokens"] == sum(len(w) + 1 for w in kept)
    assert result["iw_samples"] == 5 and result["latent_dim"] == 4
    assert result["iw_nll"] <= result["neg_elbo"] + 1.0
    assert result["ppl"] == pytest.approx(math.exp(result["iw_nll"] * len(kept) / result["n_tokens"]), rel=1e-6)
    assert 0 <= result["au"] <= 4 and 0 <= result["bleu"] <= 100
    # reconstructions stop at the longest training sentence, which the run recorded
    assert result["decode_limit"] == json.loads((tiny_run / "data_stats.json").read_text())["train"]["longest"]
    assert 0 <= result["hit_limit"] <= 1


def test_evaluate_kl_matches_closed_form(tiny_run, emulated_bf16_allowed):
    model, loader = run_test_loader(tiny_run, 16, 8)
    result = evaluate_model(model, loader, iw_samples=2, num_prior_samples=0)
    kl, n = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            mu, logvar = model.posterior(batch.ids, batch.lengths)
            kl += gaussian_kl(mu, logvar).sum().item()
            n += batch.ids.shape[0]
    assert result["n_sentences"] == n and result["kl"] == pytest.approx(kl / n, rel=1e-5)
    # bf16 autocast for the matmuls: the same numbers to a small fraction of a nat, sums still fp32
    torch.manual_seed(0)
    low = evaluate_model(model, loader, iw_samples=2, num_prior_samples=0, precision="bf16")
    assert low["precision"] == "bf16" and result["precision"] == "fp32"
    assert isinstance(low["iw_nll"], float) and math.isfinite(low["iw_nll"])
    assert low["iw_nll"] == pytest.approx(result["iw_nll"], abs=0.5)
    assert low["kl"] == pytest.approx(result["kl"], abs=0.05)
    with pytest.raises(ConfigError, match=">= 1"):
        evaluate_model(model, loader, iw_samples=0)
    with pytest.raises(ConfigError, match="empty"):
        evaluate_model(model, [], iw_samples=2)


def test_lm_rows_have_exact_nll(tmp_path):
    out = tmp_path / "lm"
    assert main(["train", str(REPO / "recipes/ptb/lm.yaml"), *TINY, "train.max_steps=2", "train.eval_every=2",
                 "--output", str(out), "--no-progress"]) == 0
    assert main(["evaluate", str(out), "--iw-samples", "3", "--max-sentences", "10", "--prior-samples", "4"]) == 0
    result = json.loads((out / "eval.json").read_text())
    assert result["iw_nll"] == pytest.approx(result["neg_elbo"]) == pytest.approx(result["rec"])
    assert result["kl"] == 0 and result["au"] == 0 and result["iw_samples"] == 0


@pytest.mark.parametrize("args,match", [
    (["evaluate", "{tmp}"], "neither a textvae run directory"),
    (["evaluate", "{run}", "--split", "dev"], "split 'dev' does not exist here; the splits are: train, validation, test"),
    (["evaluate", "{run}", "--iw-samples", "0"], "--iw-samples must be >= 1"),
    (["evaluate", "{run}", "--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
    (["report", "{tmp}"], "not a textvae run directory"),
])
def test_evaluate_bad_input(tiny_run, tmp_path, capsys, args, match):
    args = [a.format(tmp=tmp_path, run=tiny_run) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_report_for_one_and_several_runs(tiny_run, tmp_path):
    assert main(["report", str(tiny_run)]) == 0
    text = (tiny_run / "report.md").read_text()
    assert "| run |" in text and "curves.png" in text and (tiny_run / "curves.png").stat().st_size > 1000
    assert main(["report", str(tiny_run), str(tiny_run), "--output", str(tmp_path / "both")]) == 0
    both = (tmp_path / "both" / "report.md").read_text()
    assert both.split("## `textvae evaluate`")[0].count(str(tiny_run)) == 2  # one validation row per run
