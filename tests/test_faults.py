"""Faults: crashes inside a write, SIGKILL, SIGTERM, NaN, full or unwritable disks, damaged checkpoints.

What every test here checks, in one line: a fault costs at most the steps since the last
checkpoint, leaves every previous checkpoint readable, and reaches the user as one paragraph
that says what happened and what to do — never as a traceback.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from textvae.cli import main
from textvae.errors import TextVAEError
from textvae.modeling import TextVAE
from textvae.training import RunDirError, Trainer, TrainingError, train
from textvae.training.checkpoint import (CheckpointError, checkpoint_dirs, clean_leftovers, load_checkpoint,
                                         load_trainer_state)
from textvae.training.metrics import MetricsLogger, read_metrics

from conftest import REPO
from test_training import TINY, tiny_recipe, weights

RECIPE = REPO / "recipes" / "ptb" / "mmd_vae.yaml"
# Short runs: a checkpoint and a validation every 2 steps, a metrics row every step.
SHORT = ["train.eval_every=2", "train.save_every=2", "train.log_every=1", "train.keep_checkpoints=3"]
# Subprocess runs: long enough to be stopped mid-run, few validations.
LONG = ["train.max_steps=150", "train.eval_every=50", "train.save_every=5", "train.log_every=1",
        "train.keep_checkpoints=2"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cli_args(out: Path, *extra: str) -> list[str]:
    return ["train", str(RECIPE), *TINY, *extra, "--output", str(out), "--no-progress"]


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    a, b = weights(run_a), weights(run_b)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def rows(run: Path) -> list[dict]:
    """Every metrics row but its wall clock."""
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in read_metrics(run)]


def assert_same_run(run: Path, straight: Path) -> None:
    """Bit-identical final weights, and each metrics row exactly once, equal to the straight run's."""
    assert_same_weights(run, straight)
    got = rows(run)
    assert len({(r["step"], r["split"]) for r in got}) == len(got)
    assert got == rows(straight)


@pytest.fixture(scope="module")
def straight8(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight8") / "run"
    train(tiny_recipe(extra=SHORT + ["train.max_steps=8"]), out, progress=False)
    return out


@pytest.fixture(scope="module")
def straight_long(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight_long") / "run"
    train(tiny_recipe(extra=LONG), out, progress=False)
    return out


# --------------------------------------------------------------------------- crashes inside a write


def _fail_weights(monkeypatch, marker: str) -> None:
    """safetensors reports a full disk as SafetensorError("... (os error 28)") after a partial write."""
    import textvae.modeling.vae as vae

    real = vae.save_model

    def save_model(model, filename, metadata=None):
        if marker in filename:
            Path(filename).write_bytes(b"\0" * 100)
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(model, filename, metadata=metadata)

    monkeypatch.setattr(vae, "save_model", save_model)


def _fail_trainer_state(monkeypatch, marker: str) -> None:
    real = torch.save

    def save(obj, f, *args, **kwargs):
        if marker in str(getattr(f, "name", f)):
            f.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


@pytest.mark.parametrize("fail", [_fail_weights, _fail_trainer_state], ids=["weights", "trainer_state"])
def test_disk_full_inside_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys, straight8, fail):
    out = tmp_path / "run"
    fail(monkeypatch, "step-00000004")
    assert main(cli_args(out, *SHORT, "train.max_steps=8")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"could not write .*checkpoints at step 4: the disk is full \(No space left on device\)\. "
                     r"Nothing half-written was left in its place\. The newest complete checkpoint is "
                     r".*step-00000002\. Free some space .* then resume with: textvae train .*recipe\.yaml "
                     r"--output .* --resume\.", err), err
    # Nothing half-written: no step-4, no hidden temporary folder or file anywhere.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    assert not [p for p in out.rglob(".*")]
    load_checkpoint(out / "checkpoints" / "step-00000002")
    TextVAE.from_pretrained(out / "best")
    monkeypatch.undo()
    assert main(cli_args(out, *SHORT, "train.max_steps=8", "--resume")) == 0
    assert_same_run(out, straight8)


def test_leftovers_of_a_killed_write_are_ignored_then_cleaned(tmp_path, capsys, straight8):
    out = tmp_path / "run"
    train(tiny_recipe(extra=SHORT + ["train.max_steps=6"]), out, progress=False)
    ckpts = out / "checkpoints"
    # A SIGKILL while step 8 was being written: a complete-looking but hidden folder.
    partial = ckpts / ".step-00000008.tmp-999999"
    partial.mkdir()
    (partial / "trainer_state.pt").write_bytes((ckpts / "step-00000006" / "trainer_state.pt").read_bytes())
    (partial / "model.safetensors").write_bytes(b"\0" * 10)
    # A SIGKILL between write_model_dir's two renames: best/ moved aside, its successor unfinished.
    (out / "best").rename(out / ".best.old-999999")
    (out / ".best.tmp-999999").mkdir()
    (out / ".summary.json.k3j2h1.tmp").write_text("{")
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000002", "step-00000004", "step-00000006"]

    assert main(cli_args(out, *SHORT, "train.max_steps=8", "--resume")) == 0
    printed = capsys.readouterr().out
    assert "left over by an interrupted write" in printed and ".step-00000008.tmp-999999" in printed
    assert not [p for p in out.rglob(".*")]
    TextVAE.from_pretrained(out / "best")
    assert_same_run(out, straight8)


def test_clean_leftovers_puts_back_a_moved_aside_directory(tmp_path):
    (tmp_path / ".model.old-12").mkdir()
    (tmp_path / ".model.old-12" / "config.json").write_text("{}")
    (tmp_path / "best").mkdir()
    (tmp_path / ".best.old-12").mkdir()  # best/ exists: the rename finished, this is garbage
    assert clean_leftovers(tmp_path) == [tmp_path / ".best.old-12"]
    assert (tmp_path / "model" / "config.json").is_file() and sorted(os.listdir(tmp_path)) == ["best", "model"]


# --------------------------------------------------------------------------- damaged checkpoints and --resume


def test_resume_falls_back_past_damaged_checkpoints(tmp_path, capsys, straight8):
    out = tmp_path / "run"
    train(tiny_recipe(extra=SHORT + ["train.max_steps=6"]), out, progress=False)
    ckpts = out / "checkpoints"
    # step-6: one bit of the weights flipped — still valid safetensors, caught by the recorded SHA-256.
    flipped = ckpts / "step-00000006" / "model.safetensors"
    data = flipped.read_bytes()
    flipped.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    TextVAE.from_pretrained(ckpts / "step-00000006")  # from_pretrained alone cannot tell
    # step-4: weights cut in half.
    truncated = ckpts / "step-00000004" / "model.safetensors"
    truncated.write_bytes(truncated.read_bytes()[:300])

    assert main(cli_args(out, *SHORT, "train.max_steps=8", "--resume")) == 0
    printed = capsys.readouterr().out
    assert re.search(r"warning: --resume: .*step-00000006 is damaged and was moved to .*damaged-step-00000006 "
                     r"\(CheckpointError: .*its SHA-256 differs", printed), printed
    assert re.search(r"warning: --resume: .*step-00000004 is damaged .*truncated or altered", printed), printed
    # Resumed from step 2 and reached the same weights; the damaged ones are kept apart, not pruned.
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "damaged-step-00000004", "damaged-step-00000006", "step-00000004", "step-00000006", "step-00000008"]
    assert_same_run(out, straight8)


def test_resume_with_no_readable_checkpoint_fails_clearly(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_recipe(extra=SHORT + ["train.max_steps=2"]), out, progress=False)
    state = out / "checkpoints" / "step-00000002" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="trainer_state.pt cannot be read"):
        load_trainer_state(state.parent)
    assert main(cli_args(out, *SHORT, "train.max_steps=4", "--resume")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"--resume: no checkpoint in .*checkpoints can be read; each was moved to damaged-step-\*: "
                     r"step-00000002: .*trainer_state\.pt cannot be read .* Start the run again with --overwrite",
                     err), err


# --------------------------------------------------------------------------- kill and signals


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "textvae", *cli_args(out, *LONG)], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, out: Path, timeout: float = 120.0) -> None:
    """Until the run has a checkpoint and has logged a step or two past it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended before it could be stopped:\n{proc.communicate()[0]}"
        found = checkpoint_dirs(out)
        if found:
            logged = [r["step"] for r in read_metrics(out)]
            if logged and logged[-1] % 5 in (2, 3):
                return
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


def test_sigkill_then_resume_is_bit_identical(tmp_path, straight_long):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model").exists(), "the run finished before the kill: raise max_steps"
    last = int(checkpoint_dirs(out)[-1].name.split("-")[1])
    assert max(r["step"] for r in read_metrics(out)) >= last  # rows past the checkpoint get purged on resume

    resumed = subprocess.run([sys.executable, "-m", "textvae", *cli_args(out, *LONG), "--resume"], cwd=REPO,
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(out, straight_long)


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, straight_long):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGTERM)
    printed, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, printed
    found = re.search(r"SIGTERM received: saved checkpoint at step (\d+)\. Resume with: textvae train "
                      r"(\S+recipe\.yaml) --output (\S+) --resume", printed)
    assert found, printed
    step = int(found[1])
    assert "(interrupted: resume with --resume)" in printed and "Traceback" not in printed
    assert checkpoint_dirs(out)[-1].name == f"step-{step:08d}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["step"] == step
    # The printed command works as printed (run in-process here, to save a start-up).
    assert main(["train", found[2], "--output", found[3], "--resume", "--no-progress"]) == 0
    assert_same_run(out, straight_long)


def test_purge_drops_rows_past_the_checkpoint_and_a_partial_line(tmp_path):
    lines = [json.dumps({"step": s, "split": "train", "loss": 1.0}) for s in (1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 5, "spl')
    assert read_metrics(tmp_path)[-1]["step"] == 4  # a partial last line is no row
    logger = MetricsLogger(tmp_path, tensorboard=False, purge_step=2)
    logger.log(3, "train", {"loss": 0.5})
    logger.close()
    assert [(r["step"], r.get("loss")) for r in read_metrics(tmp_path)] == [(1, 1.0), (2, 1.0), (3, 0.5)]


# --------------------------------------------------------------------------- non-finite steps


def _nan_from(monkeypatch, first: int, last: float = math.inf, where: str = "loss") -> None:
    """From the ``first``-th training step (0-based) to ``last``, the loss or gradient is NaN."""
    import textvae.training.trainer as trainer_module

    real = trainer_module.infovae_loss
    calls = iter(range(10**6))

    def infovae_loss(*args, **kwargs):
        terms = real(*args, **kwargs)
        if first <= next(calls) <= last:
            if where == "loss":
                return dataclasses.replace(terms, loss=terms.loss * math.nan)
            terms.loss.register_hook(lambda grad: grad * math.inf)  # finite loss, infinite gradient
        return terms

    monkeypatch.setattr(trainer_module, "infovae_loss", infovae_loss)


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_nonfinite_steps_are_skipped_then_stop_the_run(tmp_path, monkeypatch, capsys, where):
    out = tmp_path / "run"
    _nan_from(monkeypatch, first=4, where=where)
    trainer = Trainer(tiny_recipe(extra=SHORT + ["train.max_steps=12", "train.max_nonfinite=3",
                                                 "train.save_every=4"]), out, progress=False)
    with pytest.raises(TrainingError) as info:
        trainer.fit()
    message = str(info.value)
    assert isinstance(info.value, TextVAEError)  # printed by the CLI without a traceback
    assert re.search(r"^training stopped at step 7: 3 steps in a row had a non-finite loss or gradient\. "
                     r"Likely causes: a learning rate too high \(train\.lr=.*\), no gradient clipping .* "
                     r"The last good checkpoint is .*step-00000004\.$", message), message
    printed = capsys.readouterr().out
    assert [int(s) for s in re.findall(r"warning: step (\d+): non-finite loss or gradient", printed)] == [5, 6, 7]
    # Skipped steps left the weights (and the checkpoint written before them) untouched.
    state, saved = load_checkpoint(out / "checkpoints" / "step-00000004")
    for key, value in saved.state_dict().items():
        assert torch.equal(value, trainer.model.state_dict()[key]), key
    train_rows = {r["step"]: r for r in read_metrics(out) if r["split"] == "train"}
    assert [train_rows[s]["nonfinite_total"] for s in (4, 5, 6)] == [0, 1, 2]
    assert "loss" not in train_rows[5] and math.isfinite(train_rows[4]["loss"])
    assert state["step"] == 4 and not (out / "model").exists()


def test_a_few_nonfinite_steps_are_skipped_and_counted(tmp_path, monkeypatch, capsys):
    _nan_from(monkeypatch, first=2, last=3)
    result = train(tiny_recipe(extra=SHORT + ["train.max_steps=6", "train.max_nonfinite=3"]), tmp_path / "run",
                   progress=False)
    assert result.step == 6 and result.nonfinite_steps == 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["nonfinite_steps"] == 2
    assert capsys.readouterr().out.count("step skipped") == 2
    assert math.isfinite(result.metrics["loss"])


# --------------------------------------------------------------------------- unusable output directories


def test_output_that_cannot_be_created_is_refused_before_training(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(cli_args(a_file / "run")) == 2
    err = capsys.readouterr().err
    assert re.search(r"cannot write to the output directory .*notes\.txt/run \(Not a directory\)\. "
                     r"Choose another --output", err), err
    assert main(cli_args(a_file)) == 2
    assert "notes.txt is a file, not a directory; choose another --output" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(cli_args(locked / "run")) == 2
    finally:
        locked.chmod(0o700)
    assert re.search(r"cannot write to the output directory .*locked/run \(Permission denied",
                     capsys.readouterr().err)


def test_too_little_free_space_is_refused_before_training(tmp_path, monkeypatch, capsys):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("shutil.disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    out = tmp_path / "run"
    assert main(cli_args(out, "train.max_steps=2")) == 2
    err = capsys.readouterr().err
    assert re.search(r"the disk holding .*run has 4\.9 KiB free, but this run needs about [\d.]+ [KM]iB more: "
                     r"2 checkpoint\(s\) of [\d.]+ [KM]iB \(train\.keep_checkpoints\), one being written, and model/ "
                     r"and best/\. Free some space, lower train\.keep_checkpoints, or choose an --output", err), err
    assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()


def test_disk_full_at_the_final_model_keeps_the_checkpoints(tmp_path, monkeypatch, capsys):
    _fail_weights(monkeypatch, f"{os.sep}.model.tmp-")
    out = tmp_path / "run"
    assert main(cli_args(out, *SHORT, "train.max_steps=2")) == 2
    err = capsys.readouterr().err
    assert re.search(r"could not write .*run/model at step 2: the disk is full", err) and "Traceback" not in err
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000002"] and not (out / "model").exists()
    assert not [p for p in out.rglob(".*")]
