"""BN-VAE (``model.posterior_batchnorm``): batch normalisation of μ with a fixed scale γ keeps the
batch-mean KL of every dimension at least γ²/2 (Zhu et al. 2020)."""

import pytest
import torch

from textvae import TextVAE
from textvae.cli import main
from textvae.config import DecoderConfig, EncoderConfig, ModelConfig, load_recipe
from textvae.errors import ConfigError
from textvae.modeling import VocabSpec
from textvae.modeling.posterior import GaussianHead
from textvae.objectives import gaussian_kl

from tests.helpers import REPO, TINY

VOCAB = VocabSpec(vocab_size=30, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
RECIPE = REPO / "recipes" / "ptb" / "bn_vae.yaml"


def head(gamma: float, in_dim: int = 16, latent_dim: int = 6, seed: int = 0) -> GaussianHead:
    torch.manual_seed(seed)
    return GaussianHead(in_dim, latent_dim, batchnorm_scale=gamma)


def features(rows: int, in_dim: int = 16, seed: int = 1, scale: float = 3.0) -> torch.Tensor:
    # Off-centre and wide, so that the raw μ is far from what BN makes of it.
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(rows, in_dim, generator=g) + 2.0


def tiny_model(gamma: float = 0.5) -> TextVAE:
    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=4, posterior_batchnorm=gamma,
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=12),
                      decoder=DecoderConfig(embed_dim=8, hidden_dim=12))
    return TextVAE(cfg, VOCAB)


def batch():
    ids = torch.tensor([[1, 5, 6, 7, 8, 2], [1, 9, 10, 2, 0, 0], [1, 11, 2, 0, 0, 0], [1, 12, 13, 14, 2, 0]])
    return ids, torch.tensor([6, 4, 3, 5])


@pytest.mark.parametrize("gamma", [0.3, 0.7])
@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_training_batch_keeps_every_dimension_kl_above_the_floor(gamma, shift):
    h = head(gamma).train()
    with torch.no_grad():
        h.mu_norm.shift.copy_(shift * torch.randn(6))
    mu, logvar = h(features(64))
    mu_part = (mu.pow(2) / 2).mean(0)  # (D,): the μ part of the closed-form KL, batch mean
    floor = gamma ** 2 / 2
    # BN's ε = 1e-5 beside a raw batch variance of order 1 costs ~1e-5 of the floor.
    assert (mu_part >= floor * (1 - 1e-4)).all(), (mu_part, floor)
    # exactly γ² + β² per dimension (biased batch variance γ², batch mean β)
    expected = (gamma ** 2 + h.mu_norm.shift.detach() ** 2) / 2
    assert torch.allclose(mu_part, expected, rtol=1e-4)
    assert (gaussian_kl(mu, logvar).mean(0) >= floor * (1 - 1e-4)).all()  # the σ part only adds
    # without BN the same features give no such floor
    plain = GaussianHead(16, 6)
    with torch.no_grad():
        plain.proj.weight.mul_(1e-3)
        plain.proj.bias.zero_()
    assert ((plain(features(64))[0].pow(2) / 2).mean(0) < floor).all()


def test_eval_uses_running_statistics_and_train_uses_the_batch():
    h = head(0.5).train()
    for seed in range(5):  # move the running statistics away from (0, 1)
        h(features(32, seed=seed))
    assert not torch.allclose(h.mu_norm.norm.running_mean, torch.zeros(6))
    a, b = features(8, seed=10), features(5, seed=11)
    b[0] = a[0]  # one shared row in two otherwise different batches
    h.eval()
    stats = h.mu_norm.norm.running_mean.clone(), h.mu_norm.norm.running_var.clone()
    mu_a, mu_b = h(a)[0], h(b)[0]
    assert torch.equal(mu_a[0], mu_b[0])
    assert torch.equal(h.mu_norm.norm.running_mean, stats[0]) and torch.equal(h.mu_norm.norm.running_var, stats[1])
    # eval: γ·(μ − running mean)/√(running var + ε) + β
    raw = h.proj(a).chunk(2, -1)[0]
    manual = 0.5 * (raw - stats[0]) / (stats[1] + 1e-5).sqrt() + h.mu_norm.shift
    assert torch.allclose(mu_a, manual, atol=1e-5)
    h.train()
    mu_a, mu_b = h(a)[0], h(b)[0]
    assert not torch.allclose(mu_a[0], mu_b[0], atol=1e-3)


def test_batch_of_one_in_training_uses_running_statistics():
    h = head(0.5).train()
    for seed in range(3):
        h(features(32, seed=seed))
    stats = h.mu_norm.norm.running_mean.clone(), h.mu_norm.norm.running_var.clone()
    x = features(1, seed=20)
    mu, logvar = h(x)  # BatchNorm1d alone raises "Expected more than 1 value per channel"
    assert mu.shape == logvar.shape == (1, 6) and torch.isfinite(mu).all()
    assert torch.equal(h.mu_norm.norm.running_mean, stats[0]) and torch.equal(h.mu_norm.norm.running_var, stats[1])
    h.eval()
    assert torch.equal(mu, h(x)[0])
    # and through the whole model, a one-sentence training step runs and back-propagates
    model = tiny_model().train()
    ids, lengths = batch()
    out = model(ids[:1], lengths[:1])
    out.rec.sum().backward()
    assert model.head.proj.weight.grad.abs().sum() > 0


def test_gradients_reach_shift_but_not_the_fixed_scale():
    h = head(0.5).train()
    names = {name for name, _ in h.named_parameters()}
    assert "mu_norm.shift" in names and not any("scale" in n for n in names)
    assert all(p is not h.mu_norm.scale for p in h.parameters())
    assert not h.mu_norm.scale.requires_grad and h.mu_norm.scale.item() == pytest.approx(0.5)
    w = torch.randn(32, 6, generator=torch.Generator().manual_seed(5))
    mu, _ = h(features(32))
    (mu * w).sum().backward()
    assert torch.allclose(h.mu_norm.shift.grad, w.sum(0), atol=1e-5)  # ∂(γ·n + β)/∂β = 1
    assert h.proj.weight.grad.abs().sum() > 0
    assert h.mu_norm.scale.grad is None
    # an optimizer step moves β and leaves γ alone
    optimizer = torch.optim.SGD(h.parameters(), lr=0.1)
    optimizer.step()
    assert h.mu_norm.scale.item() == pytest.approx(0.5) and h.mu_norm.shift.abs().sum() > 0


def test_batchnorm_runs_in_fp32_under_autocast():
    h = head(0.5).train()
    x = features(32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, logvar = h(x)
    assert mu.dtype == torch.float32 and logvar.dtype == torch.bfloat16
    floor = 0.5 ** 2 / 2
    assert ((mu.pow(2) / 2).mean(0) >= floor * (1 - 1e-3)).all()  # the floor holds under bf16 matmuls too


def test_save_pretrained_round_trip_keeps_running_statistics(tmp_path):
    model = tiny_model(0.5).train()
    ids, lengths = batch()
    with torch.no_grad():
        for _ in range(3):
            model.posterior(ids, lengths)
        model.head.mu_norm.shift.add_(0.3)
    norm = model.head.mu_norm.norm
    assert not torch.allclose(norm.running_mean, torch.zeros(4)) and int(norm.num_batches_tracked) == 3
    model.eval()
    model.save_pretrained(tmp_path / "m")
    again = TextVAE.from_pretrained(tmp_path / "m").eval()
    assert again.config == model.config and again.config.posterior_batchnorm == 0.5
    assert again.head.mu_norm.scale.item() == pytest.approx(0.5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(again.head.mu_norm.norm, name), getattr(norm, name))
    full = again.posterior(ids, lengths)[0]
    assert torch.equal(model.posterior(ids, lengths)[0], full)
    # In eval mode a sentence's μ does not depend on the rest of its batch (running statistics, not
    # the batch's). Close rather than equal: a smaller batch may take another matmul blocking, which
    # changes the last bits on some CPUs (AVX2); batch statistics would move μ by far more than this.
    torch.testing.assert_close(model.posterior(ids[1:3], lengths[1:3])[0], full[1:3], rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # train mode (no dropout here) normalises by the sub-batch's own statistics
        batch_stats = model.train().posterior(ids[1:3], lengths[1:3])[0]
    assert (batch_stats - full[1:3]).abs().max() > 1e-2  # so the check above can fail
    # a model without BN-VAE has none of it
    plain = TextVAE(ModelConfig(latent_dim=4, encoder=EncoderConfig(embed_dim=8, hidden_dim=12),
                                decoder=DecoderConfig(embed_dim=8, hidden_dim=12)), VOCAB)
    assert plain.head.mu_norm is None and not any("mu_norm" in k for k in plain.state_dict())


GAMMA_MESSAGE = ("model.posterior_batchnorm must be a number > 0 (the fixed BN scale γ; BN-VAE uses 0.3-0.7 on "
                 "Yahoo/Yelp), got {}; or null to turn it off.")


@pytest.mark.parametrize("value,got", [(0.0, "0.0"), (-0.5, "-0.5"), (float("inf"), "inf"),
                                       ("0.5", "str '0.5'"), (True, "bool True")])
def test_bad_scale_is_refused_with_the_fix(value, got):
    with pytest.raises(ConfigError) as err:
        ModelConfig(posterior_batchnorm=value)
    assert str(err.value) == GAMMA_MESSAGE.format(got)


@pytest.mark.parametrize("override,message", [
    ("model.posterior_batchnorm=0", GAMMA_MESSAGE.format("0.0")),
    ("model.posterior_batchnorm=-0.3", GAMMA_MESSAGE.format("-0.3")),
    ("model.posterior_batchnorm=abc", "model.posterior_batchnorm must be of type float, got str 'abc'."),
    ("model.posterior_batchnorm=true", "model.posterior_batchnorm must be of type float, got bool True."),
])
def test_bad_scale_in_a_recipe_names_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_recipe(RECIPE, [override])
    assert str(err.value) == message


def test_recipe_sets_the_scale_and_null_turns_it_off():
    assert load_recipe(RECIPE).model.posterior_batchnorm == 0.7
    assert load_recipe(RECIPE, ["model.posterior_batchnorm=null"]).model.posterior_batchnorm is None
    with pytest.raises(ConfigError, match="a language model \\(model.mode=lm\\) has none"):
        ModelConfig(mode="lm", posterior_batchnorm=0.5)


def test_recipe_trains_through_the_cli(tmp_path, weights):
    out = tmp_path / "run"
    assert main(["train", str(RECIPE), *TINY, "train.max_steps=2", "train.eval_every=2", "--no-progress",
                 "--output", str(out)]) == 0
    tensors = weights(out)
    assert tensors["head.mu_norm.shift"].abs().sum() > 0  # β trained
    assert int(tensors["head.mu_norm.norm.num_batches_tracked"]) >= 2  # BN saw the training batches
    assert "head.mu_norm.scale" not in tensors  # γ lives in config.json
    model = TextVAE.from_pretrained(out).eval()
    assert model.config.posterior_batchnorm == 0.7
