"""The Hugging Face generate options: max_new_tokens, min_length, repetition_penalty and
no_repeat_ngram_size, for greedy, sampling and beam decoding, batched."""

import pytest
import torch

from textvae import TextVAE
from textvae.cli import main
from textvae.errors import ConfigError
from textvae.inference.decoding import DecodeConfig, beam_search, decode, decode_config, decode_tokens
from textvae.inference.logits_processing import StepRules, apply_repetition_penalty, repeated_ngram_mask

from tests.helpers import DECODE_VOCAB, decode_latents, random_decoder_model

VOCAB = DECODE_VOCAB
latents = decode_latents
INF = float("-inf")
DECODERS = {
    "lstm": {"embed_dim": 8, "hidden_dim": 12, "num_layers": 2},
    "transformer": {"kind": "transformer", "hidden_dim": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 2},
}
# Memorised by the autoencoder: each repeats word pairs and triples.
REPETITIVE = ["one two three one two three one two", "red fish blue fish red fish blue fish",
              "we go and go and go home now"]


def random_model(decoder: str = "lstm", eos: float = 0.0, seed: int = 0) -> TextVAE:
    """The random model of tests/helpers.py with decoder ``DECODERS[decoder]``; ``eos`` is added to
    the EOS logit (−1e4: sentences run to the limit; 1e4: EOS always wins)."""
    return random_decoder_model(DECODERS[decoder], eos=eos, seed=seed, max_positions=32)


def repeats(tokens: list, n: int) -> bool:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.fixture(scope="module")
def memorised(train_autoencoder) -> TextVAE:
    return train_autoencoder(REPETITIVE)


# --------------------------------------------------------------------------- the rules on hand-built tensors


def test_repetition_penalty_follows_the_ctrl_rule():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0, 4.0, 0.0],
                           [1.0, 1.0, 1.0, 1.0, 8.0, -2.0]])
    history = torch.tensor([[1, 3, 3], [4, 5, 0]])  # a token held twice is penalized once
    assert apply_repetition_penalty(logits, history, 2.0).tolist() == [[2.0, -2.0, 0.5, -6.0, 4.0, 0.0],
                                                                       [0.5, 1.0, 1.0, 1.0, 4.0, -4.0]]
    # < 1 favours repeats, by the same rule
    assert apply_repetition_penalty(logits, history, 0.5).tolist() == [[2.0, -0.5, 0.5, -1.5, 4.0, 0.0],
                                                                       [2.0, 1.0, 1.0, 1.0, 16.0, -1.0]]
    assert apply_repetition_penalty(logits, history, 1.0) is logits
    assert apply_repetition_penalty(logits, history[:, :0], 2.0) is logits


def test_repeated_ngram_mask_bans_the_tokens_that_would_repeat():
    history = torch.tensor([[5, 6, 7, 5, 6], [5, 6, 7, 8, 9]])

    def banned(n):
        mask = repeated_ngram_mask(history, n, 10)
        return None if mask is None else [row.nonzero().flatten().tolist() for row in mask]

    assert banned(3) == [[7], []]  # "5 6" was followed by 7: "5 6 7" would repeat
    assert banned(2) == [[7], []]  # after 6, only 7 repeats a pair ("6 7")
    assert banned(1) == [[5, 6, 7], [5, 6, 7, 8, 9]]
    assert banned(0) is None and banned(6) is None  # off / no n-gram yet
    assert repeated_ngram_mask(torch.tensor([[4, 4, 4]]), 2, 10).nonzero().tolist() == [[0, 4]]


def test_step_rules_ban_pad_bos_early_eos_and_repeats_but_never_everything():
    rules = StepRules.build(VOCAB, torch.device("cpu"), min_length=2, no_repeat_ngram_size=1)
    logits = torch.zeros(1, VOCAB.vocab_size)
    early = rules.scores(logits, 1, torch.tensor([[7]]))
    assert early[0].isinf().nonzero().flatten().tolist() == [0, 1, 2, 7]  # PAD, BOS, EOS (t < 2), 7
    assert rules.scores(logits, 2, torch.tensor([[7, 8]]))[0].isinf().nonzero().flatten().tolist() == [0, 1, 7, 8]
    # Every word used once already: only EOS is left, even before min_length
    every = torch.arange(3, VOCAB.vocab_size).unsqueeze(0)
    assert rules.scores(logits, 1, every)[0].isfinite().nonzero().flatten().tolist() == [VOCAB.eos_id]


# --------------------------------------------------------------------------- in the decoding loops


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize("penalty", [3.0, 0.5])
def test_greedy_chooses_by_the_penalized_logits_and_reports_the_model_log_probs(decoder, penalty):
    model, z = random_model(decoder, eos=-1e4), latents()
    cfg = DecodeConfig(repetition_penalty=penalty)
    out = decode_tokens(model.decoder, z, 6, VOCAB, cfg, 10, keep_logits=True)
    for i, seq in enumerate(out.sequences):
        assert len(seq) == 10
        for t, token in enumerate(seq):
            raw = out.logits[i, t:t + 1]
            expected = apply_repetition_penalty(raw, torch.tensor([seq[:t]]), penalty).clone()
            expected[:, [VOCAB.pad_id, VOCAB.bos_id]] = INF
            assert token == expected.argmax().item(), (i, t)
            assert out.token_log_probs[i, t].item() == pytest.approx(raw.log_softmax(-1)[0, token].item(), abs=1e-5)
    plain = decode_tokens(model.decoder, z, 6, VOCAB, DecodeConfig(), 10).sequences
    assert plain != out.sequences
    # > 1 discourages repeats, < 1 encourages them
    distinct = [len(set(s)) for s in out.sequences]
    assert (sum(distinct) > sum(map(len, map(set, plain)))) == (penalty > 1)


def test_beam_size_one_with_the_rules_equals_greedy():
    model, z = random_model("lstm"), latents()
    rules = {"min_length": 3, "repetition_penalty": 1.7, "no_repeat_ngram_size": 2}
    greedy = decode_tokens(model.decoder, z, 6, VOCAB, DecodeConfig(**rules), 12)
    beams = beam_search(model.decoder, z, 6, VOCAB, 1, 12, **rules)
    assert [b[0].tokens for b in beams] == greedy.sequences
    assert [b[0].finished for b in beams] == greedy.finished.tolist()
    # log_prob stays the model's (the score is the penalized one)
    assert [b[0].log_prob for b in beams] == pytest.approx(greedy.log_probs.tolist(), abs=1e-4)
    assert any(abs(b[0].score - b[0].log_prob / (len(b[0].tokens) + b[0].finished)) > 1e-3 for b in beams)


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_size_holds_on_a_random_decoder(method, n):
    model, z = random_model("lstm", eos=-1e4), latents(8)
    options = {"beam_size": 3} if method == "beam" else {}

    def run(**rules):
        return decode(model.decoder, z, 8, VOCAB, DecodeConfig(method=method, **options, **rules), 12,
                      torch.Generator().manual_seed(0))

    if not (method == "sample" and n == 3):  # the random decoder repeats itself (a sampled trigram rarely)
        assert any(repeats(s, n) for s in run())
    constrained = run(no_repeat_ngram_size=n)
    assert all(len(s) == 12 and not repeats(s, n) for s in constrained)
    # per row: a batch decodes as its rows alone
    if method != "sample":  # sampling draws from one stream for the whole batch
        alone = [decode(model.decoder, z[i:i + 1], 1, VOCAB, DecodeConfig(method=method, no_repeat_ngram_size=n,
                                                                          **options), 12)[0] for i in range(8)]
        assert alone == constrained


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_no_repeat_ngram_size_stops_a_memorised_repetition(memorised, method):
    assert memorised.reconstruct(REPETITIVE, method=method) == REPETITIVE  # they repeat without the option
    for n in (1, 2, 3):
        assert all(repeats(s.split(), n) for s in REPETITIVE)
        out = memorised.reconstruct(REPETITIVE, method=method, no_repeat_ngram_size=n)
        assert not any(repeats(s.split(), n) for s in out), (n, out)
        assert all(o != s for o, s in zip(out, REPETITIVE))
    if method == "greedy":  # the memorised sentence is kept up to the first token that would repeat a trigram
        first = memorised.reconstruct(REPETITIVE[0], no_repeat_ngram_size=3)[0].split()
        assert first[:5] == "one two three one two".split() and first[5:6] != ["three"]


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_min_length_forbids_eos_before_it(method):
    model, z = random_model("lstm", eos=1e4), latents(5)  # EOS wins whenever it is allowed
    for min_length in (0, 4, 9):
        cfg = DecodeConfig(method=method, min_length=min_length)
        out = decode(model.decoder, z, 5, VOCAB, cfg, 9, torch.Generator().manual_seed(0))
        assert [len(s) for s in out] == [min_length] * 5
        assert VOCAB.eos_id not in sum(out, [])
    finished = decode_tokens(model.decoder, z, 5, VOCAB, DecodeConfig(method="greedy", min_length=4), 9).finished
    assert finished.all()  # ended by EOS, at step 4, not by the limit
    beams = beam_search(model.decoder, z, 5, VOCAB, 3, 9, min_length=4)
    assert all(h.finished and len(h.tokens) >= 4 for hyps in beams for h in hyps)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_min_length_through_the_api(memorised, method):
    out = memorised.reconstruct(REPETITIVE, method=method, min_length=11)
    assert all(len(s.split()) >= 11 for s in out)
    if method == "greedy":  # the same choices until EOS would have come: the sentence, then more
        assert [s.split()[:8] for s in out] == [s.split() for s in REPETITIVE]


# --------------------------------------------------------------------------- options and errors


def test_max_length_and_max_new_tokens_are_one_limit():
    assert DecodeConfig(max_new_tokens=4).max_length == 4 and DecodeConfig(max_length=4).max_new_tokens == 4
    assert DecodeConfig(max_length=4, max_new_tokens=4).max_new_tokens == 4
    base = DecodeConfig(max_length=5, min_length=2)
    assert decode_config(base, max_new_tokens=7).max_length == 7
    assert decode_config(base, max_length=3).max_new_tokens == 3
    assert decode_config(base, method="beam").max_new_tokens == 5


@pytest.mark.parametrize("options,match", [
    ({"max_new_tokens": 0}, r"max_new_tokens must be >= 1, got 0 \(it counts the tokens"),
    ({"max_length": 5, "max_new_tokens": 6}, "max_length=5 and max_new_tokens=6 disagree: .* give only one of them"),
    ({"max_new_tokens": 2.5}, "max_new_tokens must be a whole number of tokens, got 2.5"),
    ({"min_length": -1}, r"min_length must be >= 0 \(0: off\), got -1"),
    ({"min_length": 6, "max_new_tokens": 5}, "min_length=6 is more than the length limit max_new_tokens=5, so no "
                                             "sentence could end with EOS; lower min_length or raise max_new_tokens"),
    ({"repetition_penalty": 0.0}, r"repetition_penalty must be a number > 0 \(1: off; 1.2 .*\), got 0.0"),
    ({"repetition_penalty": -1.2}, "repetition_penalty must be a number > 0"),
    ({"repetition_penalty": float("inf")}, "repetition_penalty must be a number > 0"),
    ({"no_repeat_ngram_size": -1}, r"no_repeat_ngram_size must be >= 0 \(0: off; 3 forbids"),
    ({"no_repeat_ngram_size": True}, "no_repeat_ngram_size must be a whole number of tokens, got True"),
    ({"no_repeat_ngrams": 2}, "Did you mean 'no_repeat_ngram_size'"),
])
def test_bad_values_are_clear_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        decode_config(**options)


def test_min_length_above_the_model_default_is_an_error(memorised):
    assert memorised.default_max_new_tokens == memorised.config.max_positions - 2 == 14  # nothing recorded
    with pytest.raises(ConfigError, match="min_length=15 is more than the length limit 14 .*default_max_new_tokens"):
        memorised.reconstruct(REPETITIVE, min_length=15)
    assert all(len(s.split()) == 14 for s in memorised.reconstruct(REPETITIVE, min_length=14))


def test_cli_flags(memorised, tmp_path, capsys):
    model_dir = str(memorised.save_pretrained(tmp_path / "model"))
    assert main(["reconstruct", model_dir, *REPETITIVE, "--no-repeat-ngram-size", "2", "--decode", "beam"]) == 0
    outputs = [line[2:].split() for line in capsys.readouterr().out.splitlines()[1::2]]
    assert len(outputs) == 3 and not any(repeats(s, 2) for s in outputs)
    assert main(["generate", model_dir, "--num", "3", "--min-length", "5", "--max-new-tokens", "6",
                 "--repetition-penalty", "1.3"]) == 0
    assert [5 <= len(s.split()) <= 6 for s in capsys.readouterr().out.splitlines()] == [True] * 3
    # reconstruct: --max-new-tokens sets the outputs, --max-length then truncates the inputs only
    assert main(["reconstruct", model_dir, REPETITIVE[0], "--max-length", "3", "--max-new-tokens", "12",
                 "--min-length", "10"]) == 0
    captured = capsys.readouterr()
    assert "longer than 3 tokens" in captured.err and len(captured.out.splitlines()[1][2:].split()) >= 10
    for flags, message in [(["--repetition-penalty", "0"], "repetition_penalty must be a number > 0"),
                           (["--max-length", "5", "--max-new-tokens", "6"], "max_length=5 and max_new_tokens=6"),
                           (["--min-length", "20"], "min_length=20 is more than the length limit 14")]:
        assert main(["generate", model_dir, "--num", "1", *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
