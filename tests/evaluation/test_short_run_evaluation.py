"""The evaluation protocol for short-run inference and the energy-based prior: the fitted-Gaussian
proposal gives a valid importance-weighted bound, log Z enters the IW-NLL, and the reports say
what their KL, MI and AU are of."""

import math

import pytest
import torch

from textvae import TextVAE
from textvae.config import (ChainScheduleConfig, DecoderConfig, EncoderConfig, EnergyPriorConfig, LangevinConfig,
                            ModelConfig, ObjectiveConfig, PosteriorLangevinConfig, TokenizerConfig)
from textvae.data import Collator, TextTokenizer
from textvae.evaluation import validate
from textvae.evaluation.evaluate import evaluate_model
from textvae.evaluation.likelihood import importance_log_weights, iw_bound, iw_log_likelihood
from textvae.modeling import VocabSpec
from textvae.modeling.langevin import fit_gaussian, langevin_chain
from textvae.modeling.prior import prior_log_z

# p(x|z) = N(Wz + b, σ²I), z ~ N(0, I): p(x) = N(b, WWᵀ + σ²I) and the posterior are closed-form.
W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -0.6]])
B = torch.tensor([0.1, -0.2, 0.3])
SIGMA = 0.8
X = torch.tensor([[0.7, -0.4, 1.1], [-1.0, 0.5, 0.0]])


def log_joint_of(x, w=W):  # x (R, 3); z (k·R, 2) sample-major → (k·R,)
    def log_joint(z):
        xs = x.repeat(z.shape[0] // x.shape[0], 1)
        resid = xs - (z @ w.T + B)
        return (-0.5 * resid.pow(2).sum(-1) / SIGMA ** 2 - 1.5 * math.log(2 * math.pi * SIGMA ** 2)
                - 0.5 * z.pow(2).sum(-1) - math.log(2 * math.pi))
    return log_joint


def exact_log_px(x, w=W):
    return torch.distributions.MultivariateNormal(B, w @ w.T + SIGMA ** 2 * torch.eye(3)).log_prob(x)


def true_posterior(x, w=W):
    cov = torch.linalg.inv(torch.eye(2) + w.T @ w / SIGMA ** 2)
    return (x - B) @ w @ cov / SIGMA ** 2, cov


def test_iw_with_the_true_posterior_is_exact():
    # Orthogonal columns of W make the posterior covariance diagonal, so the diagonal proposal can be it.
    w = torch.tensor([[1.0, 0.0], [0.0, 0.8], [0.0, 0.0]])
    mean, cov = true_posterior(X, w)
    assert torch.allclose(cov, torch.diag(cov.diagonal()))
    _, log_w = importance_log_weights(log_joint_of(X, w), mean, cov.diagonal().log().expand(2, 2), 50,
                                      torch.Generator().manual_seed(0))
    # Every weight is p(x, z)/p(z|x) = p(x): zero variance, the bound equals −log p(x) exactly.
    assert torch.allclose(log_w, exact_log_px(X, w).expand(50, 2), atol=1e-4)
    assert torch.allclose(iw_bound(log_w), exact_log_px(X, w), atol=1e-4)


def test_iw_with_the_gaussian_fitted_to_short_run_samples_is_a_valid_bound():
    # Per replicate: 16 short-run chains (the reference's 20 steps, noise ramping 0.05 → 0.2 — far
    # from exact samples), a Gaussian fitted to them, then K = 10 importance samples.
    reps, s, k = 400, 16, 10
    g = torch.Generator().manual_seed(0)
    x = X[:1].repeat(reps, 1)
    steps = [0.8 + (0.05 - 0.8) * i / 19 for i in range(20)]
    noise = [0.05 + (0.2 - 0.05) * i / 19 for i in range(20)]
    z = langevin_chain(log_joint_of(x.repeat(s, 1)), torch.randn(s * reps, 2, generator=g), steps, noise, g)
    mu, logvar = fit_gaussian(z.view(s, reps, 2))
    _, log_w = importance_log_weights(log_joint_of(x), mu, logvar, k, g)
    nll = -iw_bound(log_w)  # (reps,)
    exact = -exact_log_px(X[0]).item()
    # A valid bound in expectation: the mean over replicates is above the exact −log p(x) ...
    se = nll.std().item() / math.sqrt(reps)
    assert nll.mean().item() >= exact - 3 * se, (nll.mean().item(), exact, se)
    # ... because each weight is an unbiased estimate of p(x): E[w / p(x)] = 1.
    ratio = (log_w + exact).exp().flatten()
    assert abs(ratio.mean().item() - 1.0) < 4 * ratio.std().item() / math.sqrt(ratio.numel())
    # and it tightens with K while staying above.
    _, more = importance_log_weights(log_joint_of(x), mu, logvar, 200, g)
    tight = -iw_bound(more)
    assert exact - 3 * tight.std().item() / math.sqrt(reps) <= tight.mean().item() < nll.mean().item()


SENTENCES = ["the cat sat on the mat", "a dog ran far away", "the dog sat", "a cat ran home", "the mat was red"]


def tiny_model(inference="amortized", prior="gaussian") -> TextVAE:
    torch.manual_seed(0)
    tokenizer = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=50), SENTENCES)
    vocab = VocabSpec(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
    cfg = ModelConfig(latent_dim=3, inference=inference, prior=prior,
                      langevin=PosteriorLangevinConfig(steps=3, step_size=ChainScheduleConfig(start=0.2),
                                                       noise=ChainScheduleConfig(start=0.3), fit_samples=4),
                      ebm=EnergyPriorConfig(hidden_dims=[8], langevin=LangevinConfig(steps=4), log_z_samples=5000),
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=8), decoder=DecoderConfig(embed_dim=8, hidden_dim=8))
    model = TextVAE(cfg, vocab, tokenizer)
    if prior == "ebm":
        with torch.no_grad():
            for p in model.prior.parameters():
                p.normal_(0.0, 0.4)
    return model.eval()


def batches(model):
    collate = Collator(model.vocab.pad_id, model.vocab.bos_id, model.vocab.eos_id)
    ids = model.tokenizer.encode_batch(SENTENCES)
    return [collate([{"ids": x} for x in ids[:3]]), collate([{"ids": x} for x in ids[3:]])]


def test_log_z_enters_the_iw_nll_and_the_kl():
    model = tiny_model(prior="ebm")
    batch = batches(model)[0]
    a = iw_log_likelihood(model, batch.ids, batch.lengths, 20, generator=torch.Generator().manual_seed(0))
    b = iw_log_likelihood(model, batch.ids, batch.lengths, 20, generator=torch.Generator().manual_seed(0), log_z=0.7)
    assert torch.allclose(a["iw_ll"] - b["iw_ll"], torch.full((3,), 0.7), atol=1e-5)
    assert torch.allclose(b["kl"] - a["kl"], torch.full((3,), 0.7), atol=1e-5)


@pytest.mark.parametrize("inference,prior", [("langevin", "gaussian"), ("amortized+langevin", "ebm"),
                                             ("amortized", "ebm")])
def test_evaluate_reports_the_proposal_and_log_z(inference, prior):
    model = tiny_model(inference, prior)
    result = evaluate_model(model, batches(model), iw_samples=4, num_prior_samples=3, max_decode_length=8)
    for key in ("iw_nll", "neg_elbo", "kl", "mi", "mi_full", "au", "mmd", "bleu"):
        assert key in result and math.isfinite(result[key]), key
    assert ("proposal" in result) == (inference != "amortized")
    if inference != "amortized":
        assert "fitted to 4 short-run samples" in result["proposal"] and "kl, mi, mi_full, au" in result["proposal"]
    if prior == "ebm":
        expected = prior_log_z(model.prior, 5000, "cpu", torch.Generator().manual_seed(1))  # seed + 1
        assert (result["log_z"], result["log_z_se"]) == expected and result["log_z"] != 0.0
        assert 0 < result["log_z_se"] < 0.1 and result["log_z_samples"] == 5000
    else:
        assert "log_z" not in result
    assert len(result["prior_samples"]) == 3


def test_validation_of_an_energy_prior_model_includes_log_z():
    model = tiny_model("amortized", "ebm")
    metrics = validate(model, batches(model), ObjectiveConfig(preset="elbo"), torch.device("cpu"))
    expected = prior_log_z(model.prior, 5000, "cpu", torch.Generator().manual_seed(1235))
    assert (metrics["log_z"], metrics["log_z_se"]) == expected
    plain = validate(tiny_model(), batches(model), ObjectiveConfig(preset="elbo"), torch.device("cpu"))
    assert "log_z" not in plain and math.isfinite(metrics["neg_elbo"])
