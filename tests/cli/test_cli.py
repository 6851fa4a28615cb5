"""The ``textvae`` command line as a user meets it: version, mistyped commands, where overrides
may stand, recipes that say nothing, output paths checked before the work, and what a run says
while it trains (validation lines, posterior collapse)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from textvae import __version__
from textvae.cli import main

from tests.helpers import REPO, TINY

RECIPE = REPO / "recipes" / "ptb" / "mmd_vae.yaml"
FAST = [*TINY, "train.max_steps=2", "train.eval_every=2", "--no-progress"]


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_version_and_a_mistyped_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"textvae {__version__}"
    assert main(["trian", "recipes/quickstart.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textvae: error: 'trian' is not a textvae command. Did you mean 'train'? The commands "
                          "are: train, evaluate, report,"), err
    assert main(["frobnicate"]) == 2
    assert "Did you mean" not in capsys.readouterr().err


def test_train_without_arguments_asks_only_for_the_recipe():
    done = subprocess.run([sys.executable, "-m", "textvae", "train"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert "the following arguments are required: recipe\n" in done.stderr, done.stderr
    assert "key=value" not in done.stderr.splitlines()[-1]  # the overrides are optional
    assert "Traceback" not in done.stderr


def test_overrides_may_follow_the_flags(tmp_path, capsys):
    out = tmp_path / "run"
    # Overrides before, between and after the flags, as torchtune's `tune run` takes them.
    assert main(["train", str(RECIPE), TINY[0], "--output", str(out), *TINY[1:], "--no-progress",
                 "train.max_steps=2", "train.eval_every=2"]) == 0
    saved = (out / "recipe.yaml").read_text()
    assert "max_steps: 2" in saved and "vocab_size: 400" in saved and "max_train_examples: 300" in saved
    assert json.loads((out / "summary.json").read_text())["step"] == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(RECIPE), "--output", str(tmp_path / "b"), "--frob", "train.max_steps=2"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "textvae train: error: unrecognized arguments: --frob" in err and not (tmp_path / "b").exists()


def test_an_empty_recipe_is_refused(tmp_path, capsys):
    for name, text in (("empty.yaml", ""), ("comments.yaml", "# nothing but a comment\n")):
        (tmp_path / name).write_text(text)
        assert main(["train", str(tmp_path / name), "--output", str(tmp_path / "run")]) == 2
        err = one_line(capsys.readouterr().err)
        assert (f"Recipe file {tmp_path / name} is empty. A recipe is a YAML mapping with the sections data, "
                "tokenizer, model, objective, train (each optional, at least one present); start from "
                "recipes/quickstart.yaml or see recipes/README.md.") in err, err
    (tmp_path / "typo.yaml").write_text("trian:\n  max_steps: 3\n")
    assert main(["train", str(tmp_path / "typo.yaml"), "--output", str(tmp_path / "run")]) == 2
    assert "Unknown recipe key 'trian'. Did you mean 'train'?" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", str(RECIPE), *FAST, "--output", str(out)]) == 0
    return out


@pytest.mark.parametrize("where", ["directory", "missing parent", "parent is a file"])
def test_evaluate_checks_its_output_before_evaluating(tiny_run, tmp_path, capsys, monkeypatch, where):
    import textvae.evaluation.evaluate as evaluate_module

    def never(*args, **kwargs):  # the check must come first: an evaluation can take an hour
        raise AssertionError("evaluated before checking --output")

    monkeypatch.setattr(evaluate_module, "evaluate_model", never)
    (tmp_path / "file").write_text("keep me")
    output = {"directory": tmp_path, "missing parent": tmp_path / "nope" / "eval.json",
              "parent is a file": tmp_path / "file" / "eval.json"}[where]
    assert main(["evaluate", str(tiny_run), "--iw-samples", "2", "--output", str(output)]) == 2
    err = one_line(capsys.readouterr().err)
    expected = {"directory": f"--output {tmp_path} is a directory; give a file name, e.g. --output "
                             f"{tmp_path / 'eval.json'}.",
                "missing parent": f"--output {output}: the folder {output.parent} does not exist; create it or "
                                  "choose another path.",
                "parent is a file": f"--output {output}: the folder {output.parent} does not exist (it is a "
                                    "file); create it or choose another path."}[where]
    assert expected in err and "Traceback" not in err, err
    assert (tmp_path / "file").read_text() == "keep me"


def test_training_prints_each_validation_and_warns_of_collapse(tmp_path, capsys):
    # An ELBO model a few steps old: its posterior sits on the prior (no active unit, MI ≈ 0).
    out = tmp_path / "run"
    assert main(["train", str(REPO / "recipes/ptb/vae.yaml"), *TINY, "train.max_steps=4", "train.eval_every=2",
                 "train.monitor=neg_elbo", "--no-progress", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = re.findall(r"step (\d+) validation: loss [\d.]+ +rec [\d.]+ +kl [\d.]+ +mmd [-\d.]+ +mi [-\d.]+ +au (\d+)"
                       r" +neg_elbo ([\d.]+)", printed)
    assert [step for step, _, _ in lines] == ["2", "4"], printed
    # The monitored figure is shown as it was validated (the one that picks best/).
    last = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["split"] == "valid" and float(lines[-1][2]) == pytest.approx(last["neg_elbo"], abs=6e-4)
    warning = ("warning: posterior collapse: at validation 0 of 4 latent units are active (AU) and the mutual "
               "information is")
    assert one_line(printed).count(warning) == 2  # at the first collapsed validation, and in the final summary
    assert "Recipe keys that help: objective.preset=mmd_vae or info_vae" in printed
    # The latent-using MMD-VAE of the quick runs gets no such warning.
    assert main(["train", str(RECIPE), *FAST, "model.init_logvar=-4", "--output", str(tmp_path / "mmd")]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "mmd" / "summary.json").read_text())["valid"]
    assert ("posterior collapse" in printed) == (metrics["au"] == 0 and metrics["mi"] < 0.1)


def test_a_language_model_is_not_warned_of_collapse(tmp_path, capsys):
    # An LM has no latent: its validation line is its NLL, with no KL/MI/AU zeros and no collapse warning.
    assert main(["train", str(REPO / "recipes/ptb/lm.yaml"), *TINY, "train.max_steps=4", "train.eval_every=2",
                 "--no-progress", "--output", str(tmp_path / "lm")]) == 0
    printed = capsys.readouterr().out
    assert re.findall(r"step (\d+) validation: loss [\d.]+\n", printed) == ["2", "4"], printed
    assert "posterior collapse" not in printed and " au " not in printed


def test_evaluate_refuses_emulated_bf16_before_evaluating(tiny_run, monkeypatch, capsys):
    import textvae.utils.precision as precision_module

    monkeypatch.delenv("TEXTVAE_ALLOW_EMULATED_BF16", raising=False)
    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: False)
    before = sorted(p.name for p in tiny_run.iterdir())
    assert main(["evaluate", str(tiny_run), "--iw-samples", "2", "--precision", "bf16"]) == 2
    err = one_line(capsys.readouterr().err)
    assert "textvae evaluate: error: --precision bf16: this CPU (" in err and "Use --precision fp32, or auto" in err
    assert sorted(p.name for p in tiny_run.iterdir()) == before  # no eval.json written


def test_no_progress_silences_the_tokenizing_bars_too(tmp_path, capsys):
    # A corpus never tokenized before, so that datasets draws its bar unless told not to: datasets'
    # cache is keyed by content and outlives the test, so each run's text carries a fresh word.
    import uuid

    from datasets.utils import logging as datasets_logging

    fresh = uuid.uuid4().hex

    def train(name: str, *flags: str) -> str:
        corpus = tmp_path / f"{name}.txt"
        corpus.write_text("".join(f"{fresh} {name} sentence {i} is here .\n" for i in range(40)))
        args = ["train", str(RECIPE), *TINY, "data.name=null", f"data.train_files={corpus}",
                f"data.valid_files={corpus}", "train.max_steps=1", "train.eval_every=1", "--output",
                str(tmp_path / name), *flags]
        assert main(args) == 0
        return capsys.readouterr().err

    assert "tokenizing train" in train("shown")
    quiet = train("quiet", "--no-progress")
    assert "tokenizing" not in quiet and "\r" not in quiet, quiet
    assert datasets_logging.is_progress_bar_enabled()  # the global switch is put back after the command
