"""TextVAEModel with short-run inference and an energy-based prior: what trains on what, what
eval() returns, and f ≡ 0 being exactly the Gaussian-prior model."""

import pytest
import torch

from textvae.config import (ChainScheduleConfig, DecoderConfig, EncoderConfig, EnergyPriorConfig, LangevinConfig,
                            ModelConfig, ObjectiveConfig, PosteriorLangevinConfig)
from textvae.modeling import TextVAEModel, VocabSpec
from textvae.modeling.langevin import fit_gaussian
from textvae.objectives import infovae_loss

VOCAB = VocabSpec(vocab_size=30, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
CHAIN = PosteriorLangevinConfig(steps=4, step_size=ChainScheduleConfig(start=0.3, end=0.1),
                                noise=ChainScheduleConfig(start=0.5), fit_samples=3)
PRIOR_CHAIN = LangevinConfig(steps=5)


def model(inference="amortized", prior="gaussian", seed=0) -> TextVAEModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(latent_dim=3, inference=inference, prior=prior, langevin=CHAIN,
                      ebm=EnergyPriorConfig(hidden_dims=[8, 8], langevin=PRIOR_CHAIN),
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=8), decoder=DecoderConfig(embed_dim=8, hidden_dim=8))
    return TextVAEModel(cfg, VOCAB)


def batch():
    ids = torch.tensor([[1, 5, 6, 7, 8, 2], [1, 9, 10, 2, 0, 0], [1, 11, 2, 0, 0, 0], [1, 12, 13, 14, 2, 0]])
    return ids, torch.tensor([6, 4, 3, 5])


def loss_of(m, out, cfg):
    return infovae_loss(out.rec, out.n_tokens, out.mu, out.logvar, out.z, cfg, 1.0, prior_z=out.prior_z,
                        generator=torch.Generator().manual_seed(9), tilt=out.tilt, energy_data=out.energy_data,
                        energy_prior=out.energy_prior, rec_encoder=out.rec_encoder)


@pytest.mark.parametrize("preset", ["elbo", "beta"])
def test_zero_energy_reproduces_the_gaussian_prior_model_exactly(preset):
    # A fresh energy's last layer is zero: f ≡ 0, p_α = N(0, I). Same weights, same draws → same loss
    # and the same gradients for every shared parameter (the MMD has weight 0 in these presets).
    cfg = ObjectiveConfig(preset=preset, word_dropout=0.2)
    ids, lengths = batch()
    results = {}
    for prior in ("gaussian", "ebm"):
        m = model(prior=prior).train()
        out = m(ids, lengths, word_dropout=0.2, generator=torch.Generator().manual_seed(1))
        terms = loss_of(m, out, cfg)
        terms.loss.backward()
        results[prior] = (terms, {k: p.grad.clone() for k, p in m.named_parameters() if not k.startswith("prior")})
    (g_terms, g_grads), (e_terms, e_grads) = results["gaussian"], results["ebm"]
    for key in ("loss", "rec", "kl"):
        assert torch.equal(getattr(g_terms, key), getattr(e_terms, key)), key
    assert e_terms.energy.item() == 0.0
    assert g_grads.keys() == e_grads.keys()
    for k in g_grads:
        assert torch.equal(g_grads[k], e_grads[k]), k


def test_energy_trains_by_ml_and_encoder_sees_the_tilt_only_through_z():
    m = model(prior="ebm").train()
    with torch.no_grad():
        for p in m.prior.parameters():
            p.normal_(0.0, 0.3)
    ids, lengths = batch()
    out = m(ids, lengths, generator=torch.Generator().manual_seed(0), chain_generator=torch.Generator().manual_seed(1))
    assert out.prior_z.shape == (4, 3) and not out.prior_z.requires_grad
    assert torch.allclose(out.tilt, m.prior.tilt(out.z.detach()))
    terms = loss_of(m, out, ObjectiveConfig(preset="elbo"))
    energy_grads = torch.autograd.grad(terms.loss, list(m.prior.parameters()), retain_graph=True)
    # ∂loss/∂α comes from the ML term alone: n·(mean f(z⁻) − mean f(z⁺)).
    ml = 4 * (m.prior.tilt(out.prior_z).mean() - m.prior.tilt(out.z.detach()).mean())
    for got, want in zip(energy_grads, torch.autograd.grad(ml, list(m.prior.parameters()))):
        assert torch.allclose(got, want, atol=1e-6)
    # and the encoder's gradient includes −f(z) through z.
    enc = list(m.head.parameters())
    with_tilt = torch.autograd.grad(terms.loss, enc, retain_graph=True)
    without = torch.autograd.grad(terms.loss + out.tilt.sum(), enc)
    assert any((a - b).abs().max() > 1e-6 for a, b in zip(with_tilt, without))


def test_langevin_model_has_no_encoder_and_trains_the_decoder_on_the_chain():
    m = model("langevin").train()
    assert m.encoder is None and m.head is None
    ids, lengths = batch()
    out = m(ids, lengths, chain_generator=torch.Generator().manual_seed(0))
    assert out.mu is None and out.z.shape == (4, 3) and not out.z.requires_grad  # no gradient through the chain
    assert all(p.grad is None for p in m.parameters())  # the chain's gradients are z's alone
    out.rec.sum().backward()
    assert m.decoder.embed.weight.grad.abs().sum() > 0
    # The same chain, run again from the same stream, gives the same z.
    again = m(ids, lengths, chain_generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.z, again.z)


def test_eval_returns_the_gaussian_fitted_to_short_run_samples():
    m = model("langevin").eval()
    ids, lengths = batch()
    mu, logvar = m.posterior(ids, lengths)
    assert torch.equal(mu, m.posterior(ids, lengths)[0])  # no generator: the same fixed seed each time
    samples = m.posterior_samples(ids, lengths, torch.Generator().manual_seed(5), copies=3)
    fit_mu, fit_logvar = fit_gaussian(samples.view(3, 4, 3), CHAIN.fit_min_variance)
    got = m.posterior(ids, lengths, torch.Generator().manual_seed(5))
    assert torch.equal(got[0], fit_mu) and torch.equal(got[1], fit_logvar)
    assert torch.allclose(fit_mu, samples.view(3, 4, 3).mean(0))  # encode's μ: the mean of the samples
    with torch.no_grad():
        out = m(ids, lengths, generator=torch.Generator().manual_seed(0))
    assert out.mu.shape == out.logvar.shape == out.z.shape == (4, 3) and (out.rec > 0).all()


def test_amortized_langevin_routes_each_gradient_to_its_part():
    m = model("amortized+langevin").train()
    ids, lengths = batch()
    cfg = ObjectiveConfig(preset="elbo")
    out = m(ids, lengths, generator=torch.Generator().manual_seed(0), chain_generator=torch.Generator().manual_seed(1))
    assert out.refined.shape == out.z.shape and not torch.equal(out.refined, out.z.detach())
    enc = list(m.encoder.parameters()) + list(m.head.parameters())
    dec = list(m.decoder.parameters())
    terms = loss_of(m, out, cfg)
    got_dec = torch.autograd.grad(terms.loss, dec, retain_graph=True)
    got_enc = torch.autograd.grad(terms.loss, enc, retain_graph=True)
    # The decoder trains on the refined z alone ...
    rec_refined, _ = m.reconstruction_nll(ids, lengths, out.refined)
    for a, b in zip(got_dec, torch.autograd.grad(rec_refined.sum(), dec)):
        assert torch.allclose(a, b, atol=1e-6)
    # ... and the encoder on its own ELBO at its sample, through the decoder.
    rec_q, _ = m.reconstruction_nll(ids, lengths, out.z)
    for a, b in zip(got_enc, torch.autograd.grad(rec_q.sum() + terms.kl, enc)):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(out.rec_encoder, rec_q.detach())


def test_chain_runs_in_fp32_under_autocast():
    m = model("amortized+langevin", "ebm").train()
    ids, lengths = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = m.posterior_samples(ids, lengths, torch.Generator().manual_seed(0))
        prior_z = m.sample_prior(4, torch.Generator().manual_seed(0))
        f = m.prior.tilt(prior_z)
    assert z.dtype == prior_z.dtype == f.dtype == torch.float32
    assert torch.isfinite(z).all() and torch.isfinite(prior_z).all()


@pytest.mark.parametrize("injection", ["embedding", "memory", "prefix"])
def test_chains_compose_with_a_transformer_decoder(injection):
    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=3, inference="langevin", prior="ebm", langevin=CHAIN, max_positions=12,
                      ebm=EnergyPriorConfig(hidden_dims=[8], langevin=PRIOR_CHAIN),
                      decoder=DecoderConfig(kind="transformer", embed_dim=8, hidden_dim=16, num_heads=2, ffn_dim=32,
                                            num_layers=1, injection=injection, num_prefix_tokens=2))
    m = TextVAEModel(cfg, VOCAB).train()
    ids, lengths = batch()
    out = m(ids, lengths, chain_generator=torch.Generator().manual_seed(0))
    terms = loss_of(m, out, ObjectiveConfig(preset="elbo"))
    terms.loss.backward()
    assert torch.isfinite(out.z).all() and out.prior_z.shape == (4, 3)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.decoder.parameters())
    with torch.no_grad():
        mu, _ = m.eval().posterior(ids, lengths)
    assert mu.shape == (4, 3) and torch.isfinite(mu).all()
