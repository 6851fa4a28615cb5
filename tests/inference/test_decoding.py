from typing import Optional

import pytest
import torch

from textvae.inference.decoding import (DecodeConfig, beam_search, decode, decode_config, decode_tokens,
                                        filter_logits)
from textvae import TextVAE
from textvae.errors import ConfigError

from tests.helpers import DECODE_VOCAB, decode_latents, random_decoder_model

VOCAB = DECODE_VOCAB
latents = decode_latents
MAX_LEN = 10

DECODERS = {
    "lstm": {"embed_dim": 8, "hidden_dim": 12, "num_layers": 2},
    "lstm-init-only": {"embed_dim": 8, "hidden_dim": 12, "z_concat": False},
    "transformer-memory": {"kind": "transformer", "hidden_dim": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 2},
    "transformer-embedding": {"kind": "transformer", "hidden_dim": 16, "num_heads": 2, "ffn_dim": 32,
                              "injection": "embedding"},
    "transformer-prefix": {"kind": "transformer", "hidden_dim": 16, "num_heads": 2, "ffn_dim": 32,
                           "injection": "prefix", "num_prefix_tokens": 2},
}


def tiny(decoder: str, mode: str = "vae", eos: Optional[float] = None, seed: int = 0) -> TextVAE:
    """The random model of tests/helpers.py with decoder ``DECODERS[decoder]``; EOS at varied steps."""
    return random_decoder_model(DECODERS[decoder], mode=mode, eos=eos, seed=seed)


def full_prefix_logits(model: TextVAE, tokens: list[int], z: torch.Tensor) -> torch.Tensor:
    """Logits of every step computed in one pass over [BOS] + tokens (no state reuse)."""
    hidden, _ = model.decoder(torch.tensor([[VOCAB.bos_id] + tokens]), z.unsqueeze(0))
    return model.decoder.project(hidden)[0].float()


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("method", ["greedy", "sample"])
def test_incremental_decoding_equals_rerunning_the_prefix(decoder, method):
    model, z = tiny(decoder), latents()
    out = decode_tokens(model.decoder, z, 6, VOCAB, DecodeConfig(method=method), MAX_LEN,
                        torch.Generator().manual_seed(0), keep_logits=True)
    assert len({len(s) for s in out.sequences}) > 1  # rows end at different steps: finished rows drop out
    for i, seq in enumerate(out.sequences):
        steps = len(seq) + int(out.finished[i])
        full = full_prefix_logits(model, seq, z[i])[:steps]
        assert torch.allclose(out.logits[i, :steps], full, atol=1e-4), (decoder, i)
        targets = torch.tensor(seq + [VOCAB.eos_id] * int(out.finished[i]))
        logp = full.log_softmax(-1)[torch.arange(steps), targets]
        assert torch.allclose(out.token_log_probs[i, :steps], logp, atol=1e-4)
        assert out.log_probs[i].item() == pytest.approx(logp.sum().item(), abs=1e-3)
        if method == "greedy":
            allowed = full.index_fill(-1, torch.tensor([VOCAB.pad_id, VOCAB.bos_id]), float("-inf"))
            assert torch.equal(allowed.argmax(-1), targets)


@pytest.mark.parametrize("decoder", ["lstm", "transformer-memory"])
def test_each_row_stops_at_its_own_eos_and_batching_changes_nothing(decoder):
    model, z = tiny(decoder), latents(8)
    batched = decode_tokens(model.decoder, z, 8, VOCAB, DecodeConfig(), MAX_LEN)
    lengths = {len(s) for s in batched.sequences}
    assert len(lengths) > 1 and VOCAB.eos_id not in sum(batched.sequences, [])
    for i in range(8):
        alone = decode_tokens(model.decoder, z[i:i + 1], 1, VOCAB, DecodeConfig(), MAX_LEN)
        assert alone.sequences[0] == batched.sequences[i]
        assert alone.finished[0] == batched.finished[i]
        assert alone.finished[0] or len(alone.sequences[0]) == MAX_LEN


def test_max_length_and_forced_eos():
    never = decode_tokens(tiny("lstm", eos=-1e4).decoder, latents(3), 3, VOCAB, DecodeConfig(), 7)
    assert [len(s) for s in never.sequences] == [7, 7, 7] and not never.finished.any()
    always = decode_tokens(tiny("lstm", eos=1e4).decoder, latents(3), 3, VOCAB, DecodeConfig(), 7)
    assert always.sequences == [[], [], []] and always.finished.all()
    beams = beam_search(tiny("lstm", eos=-1e4).decoder, latents(2), 2, VOCAB, 3, 5)
    assert all(len(h.tokens) == 5 and not h.finished for hyps in beams for h in hyps)
    empty = torch.zeros(0, 4)
    assert decode(tiny("lstm").decoder, empty, 0, VOCAB, DecodeConfig(), 7) == []
    assert beam_search(tiny("lstm").decoder, empty, 0, VOCAB, 3, 7) == []


def test_pad_and_bos_are_never_generated():
    model = tiny("lstm")
    with torch.no_grad():
        model.decoder.output.bias[[VOCAB.pad_id, VOCAB.bos_id]] = 1e4
    out = decode_tokens(model.decoder, latents(), 6, VOCAB, DecodeConfig(method="sample"), MAX_LEN)
    assert not {VOCAB.pad_id, VOCAB.bos_id} & set(sum(out.sequences, []))


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_beam_size_one_equals_greedy(decoder):
    model, z = tiny(decoder), latents()
    greedy = decode_tokens(model.decoder, z, 6, VOCAB, DecodeConfig(), MAX_LEN)
    beams = beam_search(model.decoder, z, 6, VOCAB, 1, MAX_LEN)
    assert [b[0].tokens for b in beams] == greedy.sequences
    assert [b[0].finished for b in beams] == greedy.finished.tolist()
    assert [b[0].log_prob for b in beams] == pytest.approx(greedy.log_probs.tolist(), abs=1e-4)


@pytest.mark.parametrize("decoder", ["lstm", "transformer-prefix"])
@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_hypotheses_are_sorted_and_scored_by_the_model(decoder, length_penalty):
    model, z = tiny(decoder), latents(4)
    beams = beam_search(model.decoder, z, 4, VOCAB, 4, MAX_LEN, length_penalty)
    for i, hyps in enumerate(beams):
        assert len(hyps) == 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == 4  # no duplicates
        for h in hyps:
            targets = h.tokens + [VOCAB.eos_id] * h.finished
            logits = full_prefix_logits(model, h.tokens, z[i])[:len(targets)]
            lp = logits.log_softmax(-1)[torch.arange(len(targets)), torch.tensor(targets)].sum().item()
            assert h.log_prob == pytest.approx(lp, abs=1e-3)
            assert h.score == pytest.approx(lp / max(len(targets), 1) ** length_penalty, abs=1e-3)
    # the best beam is at least as likely as the greedy path when scores are raw log-probabilities
    if length_penalty == 0.0:
        greedy = decode_tokens(model.decoder, z, 4, VOCAB, DecodeConfig(), MAX_LEN)
        for hyps, lp in zip(beams, greedy.log_probs.tolist()):
            assert hyps[0].log_prob >= lp - 1e-4


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model, z = tiny("lstm"), latents(8)
    cfg = DecodeConfig(method="sample", top_p=0.95)

    def run(seed):
        return decode(model.decoder, z, 8, VOCAB, cfg, MAX_LEN, torch.Generator().manual_seed(seed))

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_top_k_one_sampling_is_greedy():
    model, z = tiny("transformer-memory"), latents()
    greedy = decode(model.decoder, z, 6, VOCAB, DecodeConfig(), MAX_LEN)
    assert decode(model.decoder, z, 6, VOCAB, DecodeConfig(method="sample", top_k=1), MAX_LEN,
                  torch.Generator().manual_seed(3)) == greedy


def test_lm_decodes_without_z():
    model = tiny("lstm", mode="lm")
    out = decode(model.decoder, None, 3, VOCAB, DecodeConfig(method="beam", beam_size=2), MAX_LEN)
    assert len(out) == 3


def test_filter_logits():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    inf = float("-inf")
    assert filter_logits(logits, top_k=2).tolist() == [[inf, 4.0, 3.0, inf]]
    probs = logits.softmax(-1)[0]  # ≈ [0.032, 0.644, 0.237, 0.087]
    assert filter_logits(logits, top_p=0.5).tolist() == [[inf, 4.0, inf, inf]]  # the top token alone has 0.64
    p = (probs[1] + probs[2]).item()
    assert filter_logits(logits, top_p=p + 1e-3).tolist() == [[inf, 4.0, 3.0, 2.0]]
    assert filter_logits(logits, top_p=p - 1e-3).tolist() == [[inf, 4.0, 3.0, inf]]
    assert torch.equal(filter_logits(logits, top_k=0, top_p=1.0), logits)


@pytest.mark.parametrize("options,match", [
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"top_p": 0.9}, "only apply to method 'sample'"),
    ({"method": "beam", "beam_size": 0}, "beam_size must be >= 1"),
    ({"method": "sample", "top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"method": "nucleus"}, "unknown decoding method"),
    ({"max_length": 0}, "max_length must be >= 1"),
    ({"beam": 3}, "Did you mean 'beam_size'"),
])
def test_bad_decoding_options_are_clear_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        decode_config(**options)
