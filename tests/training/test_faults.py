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
from textvae.errors import RunError, TextVAEError
from textvae import TextVAE
from textvae.training import Trainer, train
from textvae.training.checkpoint import checkpoint_dirs, clean_leftovers, load_checkpoint, load_trainer_state
from textvae.utils.metrics import MetricsLogger, read_metrics

from tests.helpers import REPO, TINY

RECIPE = REPO / "recipes" / "ptb" / "mmd_vae.yaml"
# Short runs: a checkpoint and a validation every 2 steps, a metrics row every step.
SHORT = ["train.eval_every=2", "train.save_every=2", "train.log_every=1", "train.keep_checkpoints=3"]
# Subprocess runs: long enough to be stopped mid-run, few validations.
LONG = ["train.max_steps=150", "train.eval_every=50", "train.save_every=5", "train.log_every=1",
        "train.keep_checkpoints=2"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cli_args(out: Path, *extra: str) -> list[str]:
    return ["train", str(RECIPE), *TINY, *extra, "--output", str(out), "--no-progress"]


def rows(run: Path) -> list[dict]:
    """Every metrics row but its wall clock."""
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in read_metrics(run)]


@pytest.fixture
def assert_same_run(weights):
    """``assert_same_run(run, straight)``: bit-identical final weights, and each metrics row exactly
    once, equal to the straight run's."""

    def assert_same_weights(run_a: Path, run_b: Path) -> None:
        a, b = weights(run_a), weights(run_b)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key

    def assert_same_run(run: Path, straight: Path) -> None:
        assert_same_weights(run, straight)
        got = rows(run)
        assert len({(r["step"], r["split"]) for r in got}) == len(got)
        assert got == rows(straight)

    return assert_same_run


@pytest.fixture(scope="module")
def straight8(tmp_path_factory, tiny_recipe) -> Path:
    out = tmp_path_factory.mktemp("straight8") / "run"
    train(tiny_recipe(extra=SHORT + ["train.max_steps=8"]), out, progress=False)
    return out


# Killed, resumed and straight runs all compute with the same threads: CPU kernels split their
# sums by thread, so a straight run with another count is another run (tested apart below).
THREADS = ["--threads", "2"]


@pytest.fixture(scope="module")
def straight_long(tmp_path_factory) -> Path:
    """The uninterrupted run the stopped ones must match: the same CLI, the same 2 threads."""
    out = tmp_path_factory.mktemp("straight_long") / "run"
    done = subprocess.run([sys.executable, "-m", "textvae", *cli_args(out, *LONG), *THREADS], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
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
def test_disk_full_inside_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, capsys, straight8,
                                                              assert_same_run, fail):
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


def test_leftovers_of_a_killed_write_are_ignored_then_cleaned(tmp_path, capsys, straight8, tiny_recipe,
                                                              assert_same_run):
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
    (tmp_path / "checkpoints" / ".step-00000002.deleting-12").mkdir(parents=True)  # a prune cut short
    assert clean_leftovers(tmp_path) == [tmp_path / ".best.old-12",
                                         tmp_path / "checkpoints" / ".step-00000002.deleting-12"]
    assert (tmp_path / "model" / "config.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["best", "checkpoints", "model"] and not os.listdir(tmp_path / "checkpoints")


# --------------------------------------------------------------------------- damaged checkpoints and --resume


def test_resume_falls_back_past_damaged_checkpoints(tmp_path, capsys, straight8, tiny_recipe, assert_same_run):
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
    assert re.search(r"warning: --resume: .*step-00000006 is damaged and was moved to .*damaged-step-00000006: "
                     r".*its SHA-256 differs .* Trying the checkpoint before it\.", printed), printed
    assert re.search(r"warning: --resume: .*step-00000004 is damaged .*truncated or altered", printed), printed
    # Resumed from step 2 and reached the same weights; the damaged ones are kept apart, not pruned.
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "damaged-step-00000004", "damaged-step-00000006", "step-00000004", "step-00000006", "step-00000008"]
    assert_same_run(out, straight8)


def test_resume_with_no_readable_checkpoint_fails_clearly(tmp_path, capsys, tiny_recipe):
    out = tmp_path / "run"
    train(tiny_recipe(extra=SHORT + ["train.max_steps=2"]), out, progress=False)
    state = out / "checkpoints" / "step-00000002" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:50])
    with pytest.raises(RunError, match="trainer_state.pt cannot be read"):
        load_trainer_state(state.parent)
    assert main(cli_args(out, *SHORT, "train.max_steps=4", "--resume")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(r"--resume: no checkpoint in .*checkpoints can be read, so there is nothing to resume from "
                     r"\(step-00000002: .*trainer_state\.pt cannot be read \(RuntimeError: .*\); the file is missing, "
                     r"truncated or altered\.\)\. Each was moved to damaged-step-N\. Start the run again with "
                     r"--overwrite", err), err


# --------------------------------------------------------------------------- kill and signals


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "textvae", *cli_args(out, *LONG), *THREADS], cwd=REPO, env=ENV,
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


def test_sigkill_then_resume_is_bit_identical(tmp_path, straight_long, assert_same_run):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model").exists(), "the run finished before the kill: raise max_steps"
    last = int(checkpoint_dirs(out)[-1].name.split("-")[1])
    assert max(r["step"] for r in read_metrics(out)) >= last  # rows past the checkpoint get purged on resume

    # No --threads: resuming takes the count the run recorded, so it is exact without being told.
    resumed = subprocess.run([sys.executable, "-m", "textvae", *cli_args(out, *LONG), "--resume"], cwd=REPO,
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert re.search(r"device cpu \(.*, 2 threads\); precision fp32", resumed.stdout), resumed.stdout
    assert_same_run(out, straight_long)


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_checkpoint_exits_nonzero_and_resume_finishes(tmp_path, straight_long, assert_same_run,
                                                                       sig, status):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_checkpoint(proc, out)
    proc.send_signal(sig)
    printed, _ = proc.communicate(timeout=120)
    # Not 0: `textvae train … && textvae evaluate …` must not go on with a half-trained model.
    assert proc.returncode == status, printed
    found = re.search(rf"{sig.name} received: saved checkpoint at step (\d+)\. Resume with: textvae train "
                      r"(\S+recipe\.yaml) --output (\S+) --resume", printed)
    assert found, printed
    step = int(found[1])
    assert re.search(rf"interrupted at step {step} after [\d.]+ s: the checkpoint is saved and no model/ was "
                     r"written\. Finish the run with: textvae train \S+recipe\.yaml --output \S+ --resume",
                     printed), printed
    assert "Traceback" not in printed
    assert checkpoint_dirs(out)[-1].name == f"step-{step:08d}"
    assert not (out / "model").exists(), "an interrupted run must not look finished"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["step"] == step and summary["stop_signal"] == sig.name
    assert summary["threads"] == 2
    if sig is signal.SIGINT:
        return
    # The printed command works as printed (run in-process here, to save a start-up); it takes
    # the run's 2 threads and gives this process back its own.
    threads_before = torch.get_num_threads()
    assert main(["train", found[2], "--output", found[3], "--resume", "--no-progress"]) == 0
    assert torch.get_num_threads() == threads_before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is False and (out / "model" / "config.json").is_file()
    assert_same_run(out, straight_long)


def test_resume_with_other_threads_is_refused_unless_allowed(tmp_path, capsys):
    out = tmp_path / "run"
    args = cli_args(out, *SHORT, "train.max_steps=2")
    assert main([*args, "--threads", "1"]) == 0
    state = load_trainer_state(checkpoint_dirs(out)[-1])
    assert state["numerics"]["threads"] == 1 and state["numerics"]["precision"] == "fp32"
    assert state["numerics"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    capsys.readouterr()
    longer = cli_args(out, *SHORT, "train.max_steps=4")
    assert main([*longer, "--resume", "--threads", "2"]) == 2
    err = capsys.readouterr().err
    assert ("--resume: " + str(out) + " was trained with 1 thread(s) and --threads asks for 2. CPU kernels split "
            "their sums by thread, so the resumed run would differ from an uninterrupted one. Resume with "
            "--threads 1 (or without --threads, which uses the recorded count), or pass "
            "--allow-different-threads to accept a different result.") in " ".join(err.split()), err
    assert checkpoint_dirs(out)[-1].name == "step-00000002"  # nothing was trained or written
    assert main([*longer, "--resume", "--threads", "2", "--allow-different-threads"]) == 0
    printed = capsys.readouterr().out
    assert "warning: --resume with 2 thread(s), but the run was trained with 1: the result will differ" in printed
    assert load_trainer_state(checkpoint_dirs(out)[-1])["numerics"]["threads"] == 2
    assert torch.get_num_threads() == 1  # the test process keeps its own count


def test_threads_below_one_is_refused(tmp_path, capsys):
    assert main([*cli_args(tmp_path / "run", "train.max_steps=1"), "--threads", "0"]) == 2
    assert "--threads must be >= 1, got 0." in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


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
def test_nonfinite_steps_are_skipped_then_stop_the_run(tmp_path, monkeypatch, capsys, tiny_recipe, where):
    out = tmp_path / "run"
    _nan_from(monkeypatch, first=4, where=where)
    trainer = Trainer(tiny_recipe(extra=SHORT + ["train.max_steps=12", "train.max_nonfinite=3",
                                                 "train.save_every=4"]), out, progress=False)
    with pytest.raises(RunError) as info:
        trainer.fit()
    message = str(info.value)
    assert isinstance(info.value, TextVAEError)  # printed by the CLI without a traceback
    assert re.search(r"^training stopped at step 7: 3 steps in a row had a non-finite loss or gradient\. "
                     r"Likely causes: a learning rate too high \(train\.lr=.*\), no gradient clipping .* "
                     r"The last good checkpoint is .*step-00000004\. Change the recipe and train again into a new "
                     r"--output \(or with --overwrite\); --resume continues only the same recipe\.$", message), message
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


def test_a_few_nonfinite_steps_are_skipped_and_counted(tmp_path, monkeypatch, capsys, tiny_recipe):
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


# --------------------------------------------------------------------------- bad input, end to end
# tests/data/test_data.py checks each of these at load_corpus; here each goes through `textvae train` and
# must end with exit code 2 and one paragraph on stderr, never a traceback.


def _data_args(out: Path, train_file: Path, valid_file: Path | None = None, *extra: str) -> list[str]:
    return cli_args(out, "data.name=null", f"data.train_files={train_file}",
                    f"data.valid_files={valid_file or train_file}", "train.max_steps=1", "train.eval_every=1", *extra)


def _fails(args: list[str], capsys) -> str:
    """Run the CLI, expect exit code 2, and return its error: the last line of stderr (above it
    there may only be progress bars)."""
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n"), err
    last = err.rstrip("\n").split("\n")[-1]
    assert last.startswith("textvae train: error: "), err
    return last


LONG_LINE = " ".join(f"w{i}" for i in range(200))  # far longer than data.max_length=30 tokens
ENCODED = {
    # byte 3 of line 3 is é (0xE9): not UTF-8. cp1252's 0x92 is ’; in latin-1 0x85 is NEL, which
    # must stay inside its line.
    "cp1252": b"first line\n\ncaf\xe9 \x92quoted\x92\n   \n" + LONG_LINE.encode() + b"\nlast line\n",
    "latin-1": b"first line\n\ncaf\xe9\x85next\n   \n" + LONG_LINE.encode() + b"\nlast line\n",
}


@pytest.mark.parametrize("encoding", list(ENCODED))
def test_non_utf8_file_names_file_and_line_then_trains_with_data_encoding(tmp_path, capsys, encoding):
    path = tmp_path / "win.txt"
    path.write_bytes(ENCODED[encoding])
    err = _fails(_data_args(tmp_path / "a", path), capsys)
    assert re.search(r"win\.txt, line 3 \(column 4\): byte b'\\xe9.*' is not valid utf-8\. The file is in another "
                     r"encoding; .* data\.encoding=cp1252 \(or data\.encoding=latin-1", err), err

    out = tmp_path / "b"
    assert main(_data_args(out, path, None, f"data.encoding={encoding}")) == 0
    printed = capsys.readouterr().out
    # 4 sentences (NEL did not split one) after 2 blank lines were dropped; then the long one as too long.
    assert "train: 4 sentences; dropped on load 2 blank; tokens 6; dropped 1 too long" in printed, printed
    stats = json.loads((out / "data_stats.json").read_text())["train"]
    assert (stats["kept"], stats["filtered"], stats["dropped_on_load"]) == (3, 1, {"blank": 2})


def test_label_only_and_blank_lines_are_dropped_and_reported(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "sentence_classification"
    folder.mkdir()
    (folder / "stsa.binary.train").write_text("1 good film\n0\n\n0 bad film\n1 fine\n", encoding="utf-8")
    (folder / "stsa.binary.dev").write_text("1 ok then\n", encoding="utf-8")
    (folder / "stsa.binary.test").write_text("0 meh\n", encoding="utf-8")
    monkeypatch.setenv("TEXTVAE_DATA_DIR", str(tmp_path))
    out = tmp_path / "run"
    assert main(cli_args(out, "data.name=sst2", "train.max_steps=1", "train.eval_every=1")) == 0
    assert "train: 3 sentences; labels negative 1, positive 2; dropped on load 1 blank, 1 no_text" in \
        capsys.readouterr().out
    assert json.loads((out / "data_stats.json").read_text())["train"]["dropped_on_load"] == {"blank": 1, "no_text": 1}


BAD_FILES = {
    "ragged": ({"train.csv": "text,label\nfine,1\ntoo,many,fields,0\n"}, ["data.label_column=label"],
               r"train\.csv: line 3 has 4 fields but the header has 2 \(\['text', 'label'\]\)\. Quote fields"),
    "not_json": ({"train.jsonl": '{"text": "ok"}\n{"text": "no comma" "x": 1}\n'}, [],
                 r"train\.jsonl: line 2 is not valid JSON \(Expecting ',' delimiter\): .* Each line of a JSON "
                 r"Lines file must be one JSON object\."),
    "unseen_labels": ({"train.csv": "text,label\nthe cat,a\nthe dog,b\n", "valid.csv": "text,label\nthe cow,c\n"},
                      ["data.label_column=label"],
                      r"valid\.csv \(validation\) has labels \['c'\] that never occur in train \(train labels: "
                      r"\['a', 'b'\]\)\. .* fix the labels or add examples of them to train\."),
    "blank_split": ({"train.csv": "text\nthe cat\n", "valid.csv": 'text\n   \n""\n'}, [],
                    r"valid\.csv \(validation\) holds no sentences after dropping blank ones\."),
    "too_long_split": ({"train.txt": "the cat\n", "valid.txt": LONG_LINE + "\n" + LONG_LINE + "\n"}, [],
                       r"After tokenization the validation split has no sentences left: 2 of 2 are longer than "
                       r"data\.max_length=30 tokens \(the longest has 200\) .* Set a larger data\.max_length or "
                       r"data\.length_policy=truncate\."),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_data_files_through_the_cli(tmp_path, capsys, case):
    files, extra, match = BAD_FILES[case]
    paths = []
    for name, text in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text, encoding="utf-8")
    err = _fails(_data_args(tmp_path / "run", paths[0], paths[-1], *extra), capsys)
    assert re.search(match, err), err


BAD_RECIPES = {
    "unknown_key_in_yaml": ("train:\n  max_step: 5\n", [],
                            r"Unknown recipe key 'train\.max_step'\. Did you mean 'train\.max_steps'\?"),
    "wrong_type": (None, ["train.batch_size=big"], r"train\.batch_size must be of type int, got str 'big'\."),
    "negative_mmd_weight": (None, ["objective.preset=info_vae", "objective.alpha=0.0", "objective.lam=0.5"],
                            r"the MMD weight α\+λ−1 = 0\.0 \+ 0\.5 − 1 = -0\.5 is negative.* "
                            r"Choose λ >= 1−α"),
    "latent_dim_0": (None, ["model.latent_dim=0"], r"model\.latent_dim must be >= 1, got 0\."),
    "lm_with_vae_objective": (None, ["model.mode=lm"], r"a language-model baseline needs both model\.mode=lm and "
                                                       r"objective\.preset=lm\."),
    "fp16_on_cpu": (None, ["train.precision=fp16", "train.device=cpu"],
                    r"train\.precision=fp16 needs a CUDA device .* on CPU use train\.precision=bf16"),
}


@pytest.mark.parametrize("case", list(BAD_RECIPES))
def test_bad_recipes_through_the_cli(tmp_path, capsys, case):
    text, overrides, match = BAD_RECIPES[case]
    recipe = RECIPE
    if text is not None:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(text, encoding="utf-8")
    err = _fails(["train", str(recipe), *TINY, *overrides, "--output", str(tmp_path / "run")], capsys)
    assert re.search(match, err), err
    assert not (tmp_path / "run" / "checkpoints").exists()


# --------------------------------------------------------------------------- damaged model directories


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_recipe) -> Path:
    from textvae.config import TokenizerConfig
    from textvae.data import TextTokenizer
    from textvae.modeling import VocabSpec

    tok = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=50), ["the cat sat", "a dog ran far"])
    vocab = VocabSpec(tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id)
    recipe = tiny_recipe()
    directory = tmp_path_factory.mktemp("model") / "m"
    TextVAE(recipe.model, vocab, tok).save_pretrained(directory)
    return directory


def _weights_with(directory: Path, change: str) -> bytes:
    from safetensors.torch import load_file, save

    tensors = load_file(str(directory / "model.safetensors"))
    key = sorted(tensors)[0]
    if change == "shape":
        tensors[key] = torch.zeros(3, 3)
    elif change == "missing":
        del tensors[key]
    return save(tensors)


def _pickled_state(directory: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(TextVAE.from_pretrained(directory).state_dict(), buffer)
    return buffer.getvalue()


DAMAGED_MODELS = {
    # (what replaces a file, the file, the message) — a truncated model.safetensors, a config.json that
    # is not JSON and format_version 99 are in tests/modeling/test_modeling.py::test_from_pretrained_errors.
    "weights_empty": (lambda d: b"", "model.safetensors",
                      r"cannot be read as safetensors weights .*header too small.* The file is truncated or "
                      r"altered; use another checkpoint"),
    "weights_pickle": (_pickled_state, "model.safetensors", r"cannot be read as safetensors weights .* The file is "
                                                            r"truncated or altered"),
    "weights_wrong_shape": (lambda d: _weights_with(d, "shape"), "model.safetensors", r"size mismatch"),
    "weights_missing_tensor": (lambda d: _weights_with(d, "missing"), "model.safetensors",
                               r"model\.safetensors does not match .*config\.json: missing \['\w+.*The files come "
                               r"from different models\."),
    "config_newer_version": (lambda d: _config_with(d, format_version=2), "config.json",
                             r"config\.json has format_version 2; this textvae reads version 1\. Upgrade textvae"),
    "config_no_version": (lambda d: _config_with(d, format_version=None), "config.json",
                          r"config\.json has format_version None; this textvae reads version 1"),
    "config_unknown_key": (lambda d: _config_with(d, model_key=("future_option", 1)), "config.json",
                           r"config\.json does not describe a textvae model: Unknown recipe key "
                           r"'model\.future_option'"),
    "tokenizer_mismatch": (None, "tokenizer", r"the tokenizer in .*tokenizer has \d+ tokens but the model was built "
                                              r"for \d+; the directory mixes files of two runs\. Copy the tokenizer/ "
                                              r"folder of the run that wrote these weights\."),
}


def _config_with(directory: Path, format_version: object = 1, model_key: tuple | None = None) -> bytes:
    meta = json.loads((directory / "config.json").read_text())
    meta["format_version"] = format_version
    if model_key:
        meta["model"][model_key[0]] = model_key[1]
    return json.dumps(meta).encode()


@pytest.mark.parametrize("case", list(DAMAGED_MODELS))
def test_damaged_model_directory_is_refused_by_name(tmp_path, model_dir, case):
    import shutil

    from textvae.errors import ModelError

    make, name, match = DAMAGED_MODELS[case]
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    if name == "tokenizer":  # the tokenizer of another run, with another vocabulary
        from textvae.config import TokenizerConfig
        from textvae.data import TextTokenizer

        shutil.rmtree(copy / "tokenizer")
        TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=50), ["one two three four five six"]).save(
            copy / "tokenizer")
    else:
        (copy / name).write_bytes(make(model_dir))
    with pytest.raises(ModelError, match=match) as info:
        TextVAE.from_pretrained(copy)
    assert isinstance(info.value, TextVAEError) and str(copy) in str(info.value)


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    import textvae.training.trainer as trainer_module

    real, calls = trainer_module.infovae_loss, iter(range(10**6))

    def impatient(*args, **kwargs):
        if next(calls) == 3:  # during step 4: Ctrl-C, then Ctrl-C again before the step ends
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "infovae_loss", impatient)
    # What the handler was before: Python's default in a terminal, SIG_IGN where the suite was started in
    # the background (a shell's `&` ignores SIGINT for its children), and either way the trainer must give it back.
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    assert main(cli_args(out, *SHORT, "train.max_steps=8")) == 130
    captured = capsys.readouterr()
    assert "textvae train: interrupted." in captured.err and "Traceback" not in captured.err
    assert re.search(r"stopped at once after step 3, without saving it\. The newest checkpoint is "
                     r".*step-00000002; resume with: textvae train .*recipe\.yaml --output .* --resume",
                     captured.out), captured.out
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000002"] and not [p for p in out.rglob(".*")]
    assert signal.getsignal(signal.SIGINT) is before  # handlers given back
