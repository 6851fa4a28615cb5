"""The priors: N(0, I) and the latent energy-based prior — log Z by importance sampling, the prior
chain's samples, a fresh energy being N(0, I), and save/load."""

import math

import pytest
import torch
from torch import nn

from textvae import TextVAE
from textvae.config import DecoderConfig, EncoderConfig, EnergyPriorConfig, ModelConfig, TokenizerConfig
from textvae.data import TextTokenizer
from textvae.modeling import VocabSpec
from textvae.modeling.langevin import langevin_chain
from textvae.modeling.posterior import standard_normal_log_prob
from textvae.modeling.prior import EnergyPrior, GaussianPrior, estimate_log_z, prior_log_z

SENTENCES = ["the cat sat", "a dog ran far", "the dog sat", "a cat ran"]


def test_log_z_of_a_tilted_gaussian_is_within_its_standard_error():
    # f(z) = a·z: Z = E_N[exp(a·z)] = exp(‖a‖²/2).
    a = torch.tensor([0.5, -0.3, 0.2])
    exact = float(a.pow(2).sum() / 2)
    log_z, se = estimate_log_z(lambda z: z @ a, 3, 20000, generator=torch.Generator().manual_seed(0))
    assert 0 < se < 0.02
    assert abs(log_z - exact) <= 3 * se, (log_z, exact, se)
    # The reported error is the real spread of the estimate: 40 independent estimates of 2,000 draws.
    g = torch.Generator().manual_seed(1)
    runs = [estimate_log_z(lambda z: z @ a, 3, 2000, generator=g) for _ in range(40)]
    spread = torch.tensor([r[0] for r in runs]).std().item()
    mean_se = sum(r[1] for r in runs) / len(runs)
    assert 0.6 < spread / mean_se < 1.5, (spread, mean_se)


def test_gaussian_prior_is_normalised_and_draws_randn():
    prior = GaussianPrior(4)
    z = torch.randn(5, 4)
    assert torch.equal(prior.log_density(z), standard_normal_log_prob(z))
    assert torch.equal(prior.tilt(z), torch.zeros(5))
    assert prior_log_z(prior, 10, "cpu") == (0.0, 0.0)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(prior.sample(3, "cpu", g1), torch.randn(3, 4, generator=g2))


def test_fresh_energy_prior_is_the_standard_normal():
    prior = EnergyPrior(4, EnergyPriorConfig(hidden_dims=[16, 16]))
    z = torch.randn(6, 4)
    assert torch.equal(prior.tilt(z), torch.zeros(6))
    assert torch.equal(prior.log_density(z), standard_normal_log_prob(z))
    log_z, se = prior_log_z(prior, 1000, "cpu", torch.Generator().manual_seed(0))
    assert log_z == 0.0 and se == 0.0


def test_prior_chain_samples_a_tilted_gaussian():
    # With f(z) = a·z the energy-based prior is N(a, I): the default 60-step chain (s = 0.16, τ = 1)
    # from N(0, I) must land there.
    prior = EnergyPrior(2, EnergyPriorConfig())
    a = torch.tensor([1.0, -0.5])
    prior.net = nn.Linear(2, 1)
    with torch.no_grad():
        prior.net.weight.copy_(a.unsqueeze(0))
        prior.net.bias.zero_()
    z = prior.sample(4000, "cpu", torch.Generator().manual_seed(0))
    assert z.shape == (4000, 2) and not z.requires_grad
    assert torch.allclose(z.mean(0), a, atol=0.06)
    assert torch.allclose(z.var(0), torch.ones(2), rtol=0.1)  # ULA at s = 0.16: 1/(1 − s/4) ≈ 1.04
    log_z, se = prior_log_z(prior, 20000, "cpu", torch.Generator().manual_seed(0))
    assert abs(log_z - 0.625) <= 3 * se


@pytest.mark.parametrize("activation", ["gelu", "silu", "leaky_relu"])
def test_the_prior_chain_score_is_autograds_gradient(activation):
    # The chain uses a hand-written ∇_z log p_α(z): it must be autograd's, for every activation.
    torch.manual_seed(0)
    prior = EnergyPrior(5, EnergyPriorConfig(hidden_dims=[16, 12], activation=activation))
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0.0, 0.7)  # a tilted prior: a fresh one's last layer is zero
    z = 2.0 * torch.randn(64, 5)
    z.requires_grad_(True)
    expected, = torch.autograd.grad(prior.log_density(z).sum(), z)
    got = prior.score(z.detach())
    assert got.shape == (64, 5) and not got.requires_grad
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert (expected + z).abs().max() > 0.5  # the tilt's part is not negligible
    assert all(p.grad is None for p in prior.parameters())


def test_the_prior_chain_is_the_autograd_chain():
    torch.manual_seed(0)
    prior = EnergyPrior(4, EnergyPriorConfig(hidden_dims=[16, 16]))
    with torch.no_grad():
        for p in prior.parameters():
            p.normal_(0.0, 0.5)
    z0 = torch.randn(32, 4)
    fast = langevin_chain(prior.log_density, z0, prior.step_sizes, prior.noise_scales,
                          torch.Generator().manual_seed(3), score=prior.score)
    slow = langevin_chain(prior.log_density, z0, prior.step_sizes, prior.noise_scales,
                          torch.Generator().manual_seed(3))
    assert torch.allclose(fast, slow, atol=1e-4) and (fast - z0).abs().mean() > 0.5  # the same 60 moves


def _ebm_model() -> TextVAE:
    torch.manual_seed(0)
    tokenizer = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=50), SENTENCES)
    vocab = VocabSpec(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
    cfg = ModelConfig(latent_dim=3, prior="ebm", ebm=EnergyPriorConfig(hidden_dims=[8]),
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=8), decoder=DecoderConfig(embed_dim=8, hidden_dim=8))
    model = TextVAE(cfg, vocab, tokenizer)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.normal_(0.0, 0.5)  # a tilted prior, not the N(0, I) a fresh one is
    return model.eval()


def test_save_load_round_trip_with_the_energy_prior(tmp_path):
    model = _ebm_model()
    model.save_pretrained(tmp_path / "m")
    loaded = TextVAE.from_pretrained(tmp_path / "m").eval()
    assert loaded.config.prior == "ebm" and loaded.config.ebm.hidden_dims == [8]
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and any(k.startswith("prior.net.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    z = torch.randn(7, 3)
    assert torch.equal(model.prior.tilt(z), loaded.prior.tilt(z)) and model.prior.tilt(z).abs().sum() > 0
    # Generation samples the energy-based prior by its chain, seeded alike in both.
    assert torch.equal(model.sample_prior(5, torch.Generator().manual_seed(2)),
                       loaded.sample_prior(5, torch.Generator().manual_seed(2)))
    assert model.generate(4, seed=3) == loaded.generate(4, seed=3)


def test_a_gaussian_prior_model_saves_the_same_weights_as_before():
    torch.manual_seed(0)
    vocab = VocabSpec(30, 0, 1, 2, 3)
    cfg = ModelConfig(latent_dim=3, encoder=EncoderConfig(embed_dim=8, hidden_dim=8),
                      decoder=DecoderConfig(embed_dim=8, hidden_dim=8))
    assert not any(k.startswith("prior") for k in TextVAE(cfg, vocab).state_dict())
    assert math.isclose(0.0, prior_log_z(GaussianPrior(3), 5, "cpu")[0])
