"""Aggressive inference-network training (He et al. 2019): objective.aggressive."""

import json
import math

import pytest
import torch

from textvae.cli import main
from textvae.config import AggressiveConfig, load_recipe
from textvae.errors import ConfigError
from textvae.training import Trainer, train
from textvae.training.aggressive import inner_loop_done, run_inner_loop, split_parameters
from textvae.training.checkpoint import checkpoint_dirs, load_trainer_state

from tests.helpers import REPO, TINY

RECIPE = "ptb/aggressive.yaml"
# Three encoder updates before every decoder update (the window never completes, so the bound stops them).
FAST = ["objective.aggressive.max_inner_steps=3"]


def rows(run, split="train"):
    """Everything logged for ``split`` but the wall clock."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in map(json.loads, lines) if row["split"] == split]


def fake_mi(monkeypatch, by_step):
    """Validation reports MI ``by_step[step]`` (the rest of its metrics are real)."""
    real = Trainer.validate

    def validate(self):
        metrics = real(self)
        metrics["mi"] = by_step[self.state.step]
        return metrics

    monkeypatch.setattr(Trainer, "validate", validate)


# ----------------------------------------------------------------------------- the stopping rule


def test_inner_loop_stops_at_max_inner_steps():
    cfg = AggressiveConfig(enabled=True, max_inner_steps=3, window=10)
    assert [inner_loop_done(n, [], cfg) for n in (1, 2, 3)] == [False, False, True]
    # Still improving at the bound: it stops there all the same.
    cfg = AggressiveConfig(enabled=True, max_inner_steps=4, window=1)
    assert inner_loop_done(4, [4.0, 3.0, 2.0, 1.0], cfg)


def test_inner_loop_stops_when_a_window_does_not_improve():
    cfg = AggressiveConfig(enabled=True, max_inner_steps=100, window=2)
    assert not inner_loop_done(2, [5.0], cfg)  # nothing to compare with yet
    assert not inner_loop_done(4, [5.0, 4.0], cfg)  # improved
    assert not inner_loop_done(5, [5.0, 4.0], cfg)  # mid-window: no check
    assert inner_loop_done(6, [5.0, 4.0, 4.0], cfg)  # equal is no improvement
    assert inner_loop_done(6, [5.0, 4.0, 4.5], cfg)
    assert inner_loop_done(4, [5.0, math.nan], cfg)  # a non-finite loss stops it


@pytest.mark.parametrize("per_token,max_inner_steps,expected", [
    ([5, 5, 4, 4, 4.5, 4.5, 1, 1], 100, 6),  # third window (4.5) is worse than the second (4)
    ([9, 8, 7, 6, 5, 4, 3, 2, 1], 7, 7),  # always improving: the bound
])
def test_run_inner_loop_counts_updates(per_token, max_inner_steps, expected):
    """Loss per token is summed over each window of 2 updates (10 tokens each) and compared."""
    losses = iter(per_token)
    calls = []

    def encoder_step():
        calls.append(1)
        return torch.tensor(10.0 * next(losses)), torch.tensor(10)

    cfg = AggressiveConfig(enabled=True, max_inner_steps=max_inner_steps, window=2)
    assert run_inner_loop(encoder_step, cfg) == expected == len(calls)


# ----------------------------------------------------------------------------- encoder-only updates


def snapshot(trainer, params):
    """Clones of the parameters and their AdamW state (moments and step count)."""
    return ([p.detach().clone() for p in params],
            [{k: v.clone() for k, v in trainer.optimizer.state[p].items()} for p in params])


def assert_same(before, after):
    for a, b in zip(before[0], after[0]):
        assert torch.equal(a, b)
    for a, b in zip(before[1], after[1]):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_inner_updates_change_only_the_encoder_and_decoder_updates_only_the_decoder(tmp_path, tiny_recipe):
    trainer = Trainer(tiny_recipe(RECIPE, FAST + ["train.weight_decay=0.1"]), tmp_path / "run", progress=False)
    trainer.setup()
    batches = trainer._batches()
    trainer.train_step(batches, 1.0)  # a joint step first: every parameter has AdamW state to keep
    encoder, decoder = split_parameters(trainer.model)
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    assert all(names[id(p)].startswith(("encoder.", "head.")) for p in encoder)
    assert all(names[id(p)].startswith("decoder.") for p in decoder)
    assert len(encoder) + len(decoder) == len(list(trainer.model.parameters()))

    dec_before, enc_before = snapshot(trainer, decoder), snapshot(trainer, encoder)
    position = trainer.state.batch_in_epoch
    inner = run_inner_loop(lambda: trainer._encoder_step(batches, 1.0, encoder), trainer.recipe.objective.aggressive)
    assert inner == 3 and trainer.state.batch_in_epoch == position + 3  # fresh batches, one per update
    # Decoder weights and AdamW state bit-identical (weight decay would have moved them otherwise).
    assert_same(dec_before, snapshot(trainer, decoder))
    enc_after = snapshot(trainer, encoder)
    assert all(not torch.equal(a, b) for a, b in zip(enc_before[0], enc_after[0]))
    assert all(int(a["step"]) + 3 == int(b["step"]) for a, b in zip(enc_before[1], enc_after[1]))
    assert all(p.grad is None for p in trainer.model.parameters())

    trainer.train_step(batches, 1.0, decoder)
    assert_same(enc_after, snapshot(trainer, encoder))
    dec_after = snapshot(trainer, decoder)
    assert all(int(a["step"]) + 1 == int(b["step"]) for a, b in zip(dec_before[1], dec_after[1]))
    assert not torch.equal(dec_before[0][0], dec_after[0][0])


# ----------------------------------------------------------------------------- ending, logging, resuming


def test_aggressive_ends_when_validation_mi_does_not_rise(tmp_path, tiny_recipe, monkeypatch, capsys):
    fake_mi(monkeypatch, {2: 1.0, 4: 2.0, 6: 1.5, 8: 3.0})
    trainer = Trainer(tiny_recipe(RECIPE, FAST + ["train.max_steps=8", "train.eval_every=2"]), tmp_path / "run",
                      progress=False)
    trainer.fit()
    printed = capsys.readouterr().out
    assert ("aggressive inference training ends at step 6: validation MI 2.0000 -> 1.5000 did not rise; "
            "encoder and decoder train together from here on.") in printed
    assert printed.count("aggressive inference training ends") == 1  # a later rise (8: 3.0) does not restart it
    s = trainer.state
    assert (s.aggressive_active, s.aggressive_end_step, s.previous_valid_mi) == (False, 6, 1.5)
    assert [(r["step"], r["inner_steps"]) for r in rows(tmp_path / "run")] == [(2, 3.0), (4, 3.0), (6, 3.0), (8, 0.0)]
    # 6 steps of 3 encoder updates + 1 decoder update, then 2 joint steps.
    assert s.epoch * len(trainer.train_loader) + s.batch_in_epoch == 6 * 4 + 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["aggressive_end_step"] == 6


@pytest.mark.parametrize("mi,extra", [
    (None, ["train.eval_every=4"]),  # the real MI
    ({2: 1.0, 4: 0.5, 6: 2.0, 8: 3.0}, ["train.eval_every=2", "train.grad_accum=2"]),  # ends before the save
    ({2: 1.0, 4: 2.0, 6: 1.5, 8: 3.0}, ["train.eval_every=2"]),  # ends after it: the previous MI is kept
])
def test_resume_is_exact_with_aggressive_training(tmp_path, tiny_recipe, weights, monkeypatch, mi, extra):
    """8 steps straight == 4 steps, then --resume for 4 more (see test_training.test_resume_is_exact)."""
    if mi is not None:
        fake_mi(monkeypatch, mi)
    train(tiny_recipe(RECIPE, FAST + extra + ["train.max_steps=8"]), tmp_path / "straight", progress=False)
    train(tiny_recipe(RECIPE, FAST + extra + ["train.max_steps=4"]), tmp_path / "resumed", progress=False)
    saved = load_trainer_state(checkpoint_dirs(tmp_path / "resumed")[-1])
    if mi is not None:
        assert saved["aggressive_active"] == (mi[4] > mi[2]) and saved["previous_valid_mi"] == mi[4]
    train(tiny_recipe(RECIPE, FAST + extra + ["train.max_steps=8"]), tmp_path / "resumed", resume=True,
          progress=False)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for split in ("train", "valid"):
        assert rows(tmp_path / "straight", split) == rows(tmp_path / "resumed", split)
    assert all("inner_steps" in r for r in rows(tmp_path / "straight"))


# ----------------------------------------------------------------------------- config, processes, recipe


@pytest.mark.parametrize("override,match", [
    ("objective.aggressive.max_inner_steps=0", "objective.aggressive.max_inner_steps must be >= 1, got 0"),
    ("objective.aggressive.window=-1", "objective.aggressive.window must be >= 1, got -1"),
    ("objective.aggressive.max_inner=5", "Did you mean 'objective.aggressive.max_inner_steps'"),
    ("objective.aggressive.enabled=maybe", "objective.aggressive.enabled must be of type bool"),
])
def test_bad_aggressive_config_names_the_key(override, match):
    with pytest.raises(ConfigError, match=match.replace(".", r"\.").replace("(", r"\(")):
        load_recipe(REPO / "recipes" / RECIPE, [override])


def test_a_language_model_cannot_train_aggressively():
    with pytest.raises(ConfigError, match="a language model .objective.preset=lm. has none"):
        load_recipe(REPO / "recipes/ptb/lm.yaml", ["objective.aggressive.enabled=true"])


def test_several_processes_are_refused_before_anything_starts(tmp_path, tiny_recipe, monkeypatch):
    for key, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=r"objective\.aggressive\.enabled=true is not supported with --nproc > 1 "
                                          r"\(.*\); train it in one process\."):
        Trainer(tiny_recipe(RECIPE), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_recipe_is_the_ptb_vae_with_aggressive_training_and_trains_through_the_cli(tmp_path):
    recipe, vae = load_recipe(REPO / "recipes" / RECIPE), load_recipe(REPO / "recipes/ptb/vae.yaml")
    assert recipe.model == vae.model and recipe.train == vae.train and recipe.data == vae.data
    assert recipe.objective.preset == "elbo"
    assert recipe.objective.aggressive == AggressiveConfig(enabled=True, max_inner_steps=100, window=10)
    assert "He et al. 2019" in (REPO / "recipes" / RECIPE).read_text()
    assert f"`{RECIPE}`" in (REPO / "recipes/README.md").read_text()

    out = tmp_path / "run"
    code = main(["train", str(REPO / "recipes" / RECIPE), *TINY, *FAST, "train.max_steps=2", "train.eval_every=2",
                 "--output", str(out), "--no-progress"])
    assert code == 0
    assert [(r["step"], r["inner_steps"]) for r in rows(out)] == [(2, 3.0)]
    assert math.isfinite(rows(out, "valid")[0]["mi"])
