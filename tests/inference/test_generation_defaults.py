"""The default decoding limit comes from the training data: recorded by the trainer in
generation_config.json, read back by from_pretrained; a model directory without it keeps the
position limit."""

import json
import shutil

import pytest
import torch

from textvae import TextVAE
from textvae.errors import ModelError
from textvae.inference.generation_config import GenerationDefaults
from textvae.training import train
from textvae.utils.layout import looks_intact

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
LONGEST = 12  # words of the longest training sentence that data.max_length=30 keeps
TRAIN = ([" ".join(WORDS[i:i + 3 + i % 5]) for i in range(16)]
         + [" ".join(WORDS[:LONGEST]), " ".join((WORDS * 3)[:40])])  # the 40-word line is filtered out
VALID = [" ".join(WORDS[i:i + 4]) for i in range(6)]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_recipe):
    root = tmp_path_factory.mktemp("generation_defaults")
    (root / "train.txt").write_text("\n".join(TRAIN) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text("\n".join(VALID) + "\n", encoding="utf-8")
    recipe = tiny_recipe(extra=["data.name=null", f"data.train_files={root / 'train.txt'}",
                                f"data.valid_files={root / 'valid.txt'}", "train.max_steps=2", "train.eval_every=2"])
    assert recipe.data.max_length == 30 and recipe.model.max_positions == 256
    train(recipe, root / "run", progress=False)
    return root / "run"


def without_eos(model: TextVAE) -> TextVAE:
    """The same model, but EOS never wins: every sentence runs to the length limit."""
    with torch.no_grad():
        model.decoder.output.bias[model.vocab.eos_id] = -1e4
    return model


def test_the_trainer_records_the_longest_training_sentence(run):
    kept = [line.split() for line in TRAIN if len(line.split()) <= 30]
    assert max(map(len, kept)) == LONGEST < max(len(line.split()) for line in TRAIN)
    stats = json.loads((run / "data_stats.json").read_text())
    assert stats["train"]["longest"] == LONGEST and stats["train"]["filtered"] == 1
    model = TextVAE.from_pretrained(run)
    assert max(len(ids) for ids in model.tokenizer.encode_batch([" ".join(w) for w in kept])) == LONGEST
    for name in ("model", "best"):
        recorded = json.loads((run / name / "generation_config.json").read_text())
        assert recorded["max_new_tokens"] == LONGEST and "train split" in recorded["max_new_tokens_from"]
    checkpoint = sorted((run / "checkpoints").iterdir())[-1]
    assert json.loads((checkpoint / "generation_config.json").read_text())["max_new_tokens"] == LONGEST
    assert model.generation_defaults.max_new_tokens == model.default_max_new_tokens == LONGEST


@pytest.mark.parametrize("options", [{}, {"method": "sample"}, {"method": "beam", "beam_size": 2}])
def test_decoding_stops_at_the_data_derived_limit(run, options):
    model = TextVAE.from_pretrained(run)
    assert all(len(s.split()) <= LONGEST for s in model.generate(16, seed=0, **options))
    forced = without_eos(model)
    assert [len(s.split()) for s in forced.generate(4, seed=0, **options)] == [LONGEST] * 4
    assert [len(s.split()) for s in forced.reconstruct(VALID[:3], **options)] == [LONGEST] * 3
    # an explicit limit, under either name, wins over the recorded one
    assert [len(s.split()) for s in forced.generate(3, seed=0, max_new_tokens=5, **options)] == [5] * 3
    assert [len(s.split()) for s in forced.generate(3, seed=0, max_length=20, **options)] == [20] * 3


def test_the_default_limit_round_trips_through_save_and_load(run, tmp_path):
    model = TextVAE.from_pretrained(run)
    model.save_pretrained(tmp_path / "copy")
    again = TextVAE.from_pretrained(tmp_path / "copy")
    assert again.generation_defaults == model.generation_defaults == GenerationDefaults(
        LONGEST, again.generation_defaults.max_new_tokens_from)
    assert again.default_max_new_tokens == LONGEST
    model.generation_defaults = GenerationDefaults(7, "by hand")
    model.save_pretrained(tmp_path / "copy")
    assert TextVAE.from_pretrained(tmp_path / "copy").generation_defaults == GenerationDefaults(7, "by hand")


def test_a_model_saved_without_the_record_keeps_the_position_limit(run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run / "model", old)
    (old / "generation_config.json").unlink()
    model = TextVAE.from_pretrained(old)
    assert model.generation_defaults == GenerationDefaults()
    assert model.default_max_new_tokens == model.config.max_positions - 2 == 254
    assert [len(s.split()) for s in without_eos(model).generate(2, seed=0)] == [254, 254]
    # saving a model with nothing recorded leaves no stale record behind
    newer = tmp_path / "newer"
    shutil.copytree(run / "model", newer)
    model.save_pretrained(newer)
    assert not (newer / "generation_config.json").exists()


@pytest.mark.parametrize("content,match", [
    ("{", "is not valid JSON"),
    ('{"max_new_tokens": 0}', "max_new_tokens must be an integer >= 1 or null, got 0"),
    ('{"max_new_tokens": "12"}', "max_new_tokens must be an integer >= 1 or null, got '12'"),
])
def test_a_damaged_record_names_the_file(run, tmp_path, content, match):
    bad = tmp_path / "bad"
    shutil.copytree(run / "model", bad)
    (bad / "generation_config.json").write_text(content)
    with pytest.raises(ModelError, match=match) as err:
        TextVAE.from_pretrained(bad)
    assert str(bad / "generation_config.json") in str(err.value)
    assert looks_intact(bad) == (content != "{")  # a truncated record is a damaged model directory
