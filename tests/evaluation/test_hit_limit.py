"""``hit_limit``: the share of greedy reconstructions that the length limit cut before their EOS."""

import pytest

from textvae.data import Collator
from textvae.evaluation.evaluate import format_table, evaluate_model
from textvae.inference.generation_config import GenerationDefaults

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn"]  # 6, 6 and 4 words


@pytest.fixture(scope="module")
def model_and_batch(train_autoencoder):
    model = train_autoencoder(SENTENCES)
    vocab = model.vocab
    batch = Collator(vocab.pad_id, vocab.bos_id, vocab.eos_id)([{"ids": x} for x in
                                                                model.tokenizer.encode_batch(SENTENCES)])
    return model, batch


def test_hit_limit_counts_the_reconstructions_cut_by_the_limit(model_and_batch):
    model, batch = model_and_batch
    full = evaluate_model(model, [batch], iw_samples=2, num_prior_samples=0)
    # nothing recorded (a model saved before the record): the evaluation's earlier limit
    assert (full["exact_match"], full["hit_limit"], full["decode_limit"]) == (1.0, 0.0, 60)
    # 5 tokens: the 6-word sentences are cut; the 4-word one still ends with its EOS
    cut = evaluate_model(model, [batch], iw_samples=2, num_prior_samples=0, max_decode_length=5)
    assert (cut["hit_limit"], cut["decode_limit"]) == (pytest.approx(2 / 3), 5)
    # 4 tokens: no room left for any EOS
    assert evaluate_model(model, [batch], iw_samples=2, num_prior_samples=0, max_decode_length=4)["hit_limit"] == 1.0
    assert "| hit_limit |" in format_table({"m": cut}) and "| 0.667 |" in format_table({"m": cut})


def test_the_recorded_limit_is_the_evaluation_default(model_and_batch):
    model, batch = model_and_batch
    before = model.generation_defaults
    try:
        model.generation_defaults = GenerationDefaults(5)
        result = evaluate_model(model, [batch], iw_samples=2, num_prior_samples=0)
    finally:
        model.generation_defaults = before
    assert (result["hit_limit"], result["decode_limit"]) == (pytest.approx(2 / 3), 5)
