"""An interrupted evaluation continues where it stopped and ends with the uninterrupted numbers:
through the API (stop after a batch, save, load, resume) and through the CLI (a real SIGINT,
then ``--resume``), with the refusals that keep a saved progress from being lost or misused."""

from __future__ import annotations

import json
import re
import signal

import pytest

import textvae.evaluation.evaluate as evaluate_module
from textvae.cli import main
from textvae.errors import ConfigError
from textvae.evaluation.evaluate import EvaluationStopped, evaluate_model
from textvae.evaluation.progress import EvalProgress, progress_path

from tests.helpers import REPO, TINY, run_test_loader

EVAL = ["--split", "test", "--iw-samples", "3", "--max-sentences", "20", "--batch-size", "4", "--prior-samples", "4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", str(REPO / "recipes/ptb/vae.yaml"), *TINY, "train.max_steps=4", "train.eval_every=4",
                 "--output", str(out), "--no-progress"]) == 0
    return out


def without_time(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "seconds"}


def test_api_resume_after_a_stop_gives_the_uninterrupted_result(run, tmp_path):
    model, loader = run_test_loader(run, 20, 4)
    whole = evaluate_model(model, loader, iw_samples=3, num_prior_samples=4)

    with pytest.raises(EvaluationStopped) as stopped:
        evaluate_model(model, loader, iw_samples=3, num_prior_samples=4, after_batch=lambda p: p.batches == 2)
    progress = stopped.value.progress
    assert progress.batches == 2 and sum(len(m) for m in progress.mus) == 8 and len(progress.hyps) == 8
    progress.identity = {"k": 3}
    path = tmp_path / "eval.json.partial"
    progress.save(path)
    loaded = EvalProgress.load(path, {"k": 3})
    assert loaded.batches == 2 and loaded.sums.totals() == progress.sums.totals()
    assert loaded.hyps == progress.hyps and (loaded.generator_state == progress.generator_state).all()

    resumed = evaluate_model(model, loader, iw_samples=3, num_prior_samples=4, resume=loaded)
    assert without_time(resumed) == without_time(whole)  # bit for bit: every metric, BLEU, prior samples
    assert resumed["seconds"] >= progress.seconds

    with pytest.raises(ConfigError, match=r"belongs to another evaluation \(k: 3 then, 5 now\)"):
        EvalProgress.load(path, {"k": 5})
    path.write_bytes(b"not a progress file")
    with pytest.raises(ConfigError, match="not a readable textvae evaluation progress file"):
        EvalProgress.load(path, {"k": 3})


def test_cli_sigint_saves_progress_and_resume_finishes_it(run, tmp_path, capsys, monkeypatch):
    reference = tmp_path / "whole.json"
    assert main(["evaluate", str(run), *EVAL, "--output", str(reference)]) == 0
    output = tmp_path / "eval.json"
    partial = progress_path(output)

    real = evaluate_module.iw_log_likelihood
    calls = {"n": 0}

    def interrupted_after_two_batches(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C in the middle of batch 2
        return real(*a, **k)

    monkeypatch.setattr(evaluate_module, "iw_log_likelihood", interrupted_after_two_batches)
    capsys.readouterr()
    assert main(["evaluate", str(run), *EVAL, "--output", str(output)]) == 130
    out = capsys.readouterr().out
    batches = int(re.search(r"after batch 2 of (\d+) in ", out).group(1))
    assert batches >= 3 and f"SIGINT received: saved the evaluation's progress after batch 2 of {batches} in {partial}" in out
    assert "same command and --resume" in out
    assert partial.is_file() and not output.exists()
    monkeypatch.setattr(evaluate_module, "iw_log_likelihood", real)

    # the saved progress is not overwritten by a fresh start, nor continued under other settings
    assert main(["evaluate", str(run), *EVAL, "--output", str(output)]) == 2
    assert "holds the progress of an interrupted evaluation; continue it with the same command and --resume" \
        in capsys.readouterr().err
    assert main(["evaluate", str(run), *EVAL[:-2], "--prior-samples", "5", "--output", str(output), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "belongs to another evaluation (prior_samples: 4 then, 5 now)" in err and "Traceback" not in err
    assert partial.is_file()

    assert main(["evaluate", str(run), *EVAL, "--output", str(output), "--resume"]) == 0
    assert f"continuing from batch 2 of {batches}" in capsys.readouterr().out
    assert not partial.exists()
    assert without_time(json.loads(output.read_text())) == without_time(json.loads(reference.read_text()))


def test_cli_resume_refusals(run, tmp_path, capsys):
    assert main(["evaluate", str(run), *EVAL, "--output", str(tmp_path / "e.json"), "--resume"]) == 2
    assert "there is no interrupted evaluation to continue" in capsys.readouterr().err
    assert main(["evaluate", str(run / "model"), *EVAL, "--resume"]) == 2
    assert "--resume needs the output file whose progress it continues" in capsys.readouterr().err
