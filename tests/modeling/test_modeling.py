import json

import pytest
import torch

from textvae.config import DecoderConfig, EncoderConfig, ModelConfig
from textvae import TextVAE
from textvae.modeling import VocabSpec
from textvae.modeling.posterior import gaussian_log_prob, standard_normal_log_prob
from textvae.errors import ModelError

VOCAB = VocabSpec(vocab_size=30, pad_id=0, bos_id=1, eos_id=2, unk_id=3)


def tiny(mode="vae", **decoder) -> TextVAE:
    torch.manual_seed(0)
    cfg = ModelConfig(mode=mode, latent_dim=4,
                      encoder=EncoderConfig(embed_dim=8, hidden_dim=12, bidirectional=True, num_layers=2),
                      decoder=DecoderConfig(**{"embed_dim": 8, "hidden_dim": 12, "num_layers": 2, **decoder}))
    return TextVAE(cfg, VOCAB)


def batch():
    ids = torch.tensor([[1, 5, 6, 7, 8, 2], [1, 9, 10, 2, 0, 0], [1, 11, 2, 0, 0, 0]])
    return ids, torch.tensor([6, 4, 3])


@pytest.mark.parametrize("decoder", [{}, {"z_to_init": False}, {"z_concat": False}, {"tie_embeddings": True, "embed_dim": 12}])
def test_shapes_and_gradients_reach_encoder_and_decoder(decoder):
    model = tiny(**decoder)
    ids, lengths = batch()
    out = model(ids, lengths)
    assert out.rec.shape == (3,) and out.rec.dtype == torch.float32 and (out.rec > 0).all()
    assert out.mu.shape == out.logvar.shape == out.z.shape == (3, 4)
    assert out.n_tokens.item() == 5 + 3 + 2  # tokens + EOS per sentence
    out.rec.sum().backward()
    assert model.encoder.embed.weight.grad.abs().sum() > 0
    assert model.head.proj.weight.grad.abs().sum() > 0
    assert model.decoder.embed.weight.grad.abs().sum() > 0


def test_rec_equals_manual_log_softmax_and_ignores_padding():
    model = tiny().eval()
    ids, lengths = batch()
    mu, _ = model.posterior(ids, lengths)
    rec, _ = model.reconstruction_nll(ids, lengths, mu)
    # the short sentence alone, unpadded, scores the same
    alone, _ = model.reconstruction_nll(ids[2:, :3], lengths[2:], mu[2:])
    assert rec[2].item() == pytest.approx(alone.item(), rel=1e-5)
    hidden, _ = model.decoder(ids[:1, :-1], mu[:1])
    logp = torch.log_softmax(model.decoder.project(hidden), -1)[0]
    manual = -logp[torch.arange(5), ids[0, 1:]].sum()
    assert rec[0].item() == pytest.approx(manual.item(), rel=1e-5)
    # and the encoder ignores padding too
    mu_alone, _ = model.posterior(ids[2:, :3], lengths[2:])
    assert torch.allclose(mu[2:], mu_alone, atol=1e-6)


def test_z_changes_the_decoder_output():
    model = tiny().eval()
    ids, lengths = batch()
    a, _ = model.reconstruction_nll(ids, lengths, torch.zeros(3, 4))
    b, _ = model.reconstruction_nll(ids, lengths, torch.full((3, 4), 2.0))
    assert not torch.allclose(a, b)


def test_word_dropout_rate_and_positions():
    model = tiny()
    inputs = torch.randint(4, 30, (200, 50))
    inputs[:, 0] = VOCAB.bos_id
    lengths = torch.full((200,), 40)
    out = model.drop_words(inputs, lengths, 0.3, torch.Generator().manual_seed(0))
    dropped = out == VOCAB.unk_id
    assert not dropped[:, 0].any() and not dropped[:, 40:].any()  # BOS and padding untouched
    assert dropped[:, 1:40].float().mean().item() == pytest.approx(0.3, abs=0.02)
    assert torch.equal(out[~dropped], inputs[~dropped])


def test_lm_mode_has_no_latent():
    model = tiny(mode="lm")
    ids, lengths = batch()
    out = model(ids, lengths)
    assert out.mu is None and out.z is None and out.rec.shape == (3,)
    assert model.encoder is None
    with pytest.raises(ValueError, match="no posterior"):
        model.posterior(ids, lengths)


def test_min_logvar_floor():
    model = tiny()
    model.config.min_logvar = model.head.min_logvar = -1.0
    with torch.no_grad():
        model.head.proj.bias.fill_(-20.0)
    _, logvar = model.posterior(*batch())
    assert logvar.min().item() == pytest.approx(-1.0)


def test_log_densities():
    z = torch.tensor([[0.3, -0.2]])
    mu, logvar = torch.tensor([[0.1, 0.0]]), torch.tensor([[0.2, -0.3]])
    ref = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(gaussian_log_prob(z, mu, logvar), ref)
    assert torch.allclose(standard_normal_log_prob(z), torch.distributions.Normal(0, 1).log_prob(z).sum(-1))


@pytest.mark.parametrize("mode,decoder", [("vae", {}), ("vae", {"tie_embeddings": True, "embed_dim": 12}), ("lm", {})])
def test_save_pretrained_round_trip_gives_identical_outputs(tmp_path, mode, decoder):
    model = tiny(mode, **decoder).eval()
    ids, lengths = batch()
    model.save_pretrained(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors"}
    again = TextVAE.from_pretrained(tmp_path / "m").eval()
    assert again.config == model.config and again.vocab == model.vocab
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = model(ids, lengths, generator=g1), again(ids, lengths, generator=g2)
    assert torch.equal(a.rec, b.rec)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(ModelError, match="not a textvae model directory"):
        TextVAE.from_pretrained(tmp_path)
    model = tiny()
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or altered"):
        TextVAE.from_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="format_version 99"):
        TextVAE.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        TextVAE.from_pretrained(tmp_path / "m")


def test_unknown_decoder_kind_lists_registered():
    with pytest.raises(ValueError, match="registered kinds: lstm"):
        TextVAE(ModelConfig(decoder=DecoderConfig(kind="gru")), VOCAB)


def test_unidirectional_encoder_reads_the_packed_final_state():
    # The unidirectional LSTM runs over the padded block (fast path); its features must equal
    # the final state of a packed run, which never sees the padding.
    from torch.nn.utils.rnn import pack_padded_sequence

    from textvae.modeling.lstm import LSTMEncoder

    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=4, encoder=EncoderConfig(embed_dim=8, hidden_dim=12, num_layers=2))
    encoder = LSTMEncoder(cfg.encoder, cfg, VOCAB).eval()
    ids, lengths = batch()
    features = encoder(ids, lengths)
    packed = pack_padded_sequence(encoder.embed(ids), lengths, batch_first=True, enforce_sorted=False)
    _, (h, _) = encoder.lstm(packed)
    assert features.shape == (3, 12)
    torch.testing.assert_close(features, h[-1])
    # and padding values are irrelevant
    torch.testing.assert_close(encoder(ids.masked_fill(ids == 0, 7), lengths), features)
