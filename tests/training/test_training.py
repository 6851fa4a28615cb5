import json
import math

import pytest
import torch

from textvae.cli import main
from textvae import TextVAE
from textvae.training import Trainer, train
from textvae.training.checkpoint import checkpoint_dirs
from textvae.data.shipped import SHIPPED_CORPORA
from textvae.errors import RunError

from tests.helpers import REPO, TINY


def test_quickstart_runs_through_the_cli(tmp_path, capsys):
    out = tmp_path / "qs"
    code = main(["train", str(REPO / "recipes/quickstart.yaml"), *TINY, "train.max_steps=6", "train.eval_every=3",
                 "--output", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "model:" in printed and str(out / "model") in printed
    # It ends with what the model says: 3 samples, a 5-point interpolation, then what to try next.
    shown = printed.split("samples (z ~ p(z), top-p 0.9, seed 0):\n")[1]
    a, b = SHIPPED_CORPORA["yelp"].examples  # the quickstart's data: a negative and a positive test sentence
    samples, rest = shown.split(f'interpolation between "{a}" and "{b}" (greedy, no repeated 3-gram):\n')
    assert len(samples.splitlines()) == 3 and all(line.startswith("  ") for line in samples.splitlines())
    path, commands = rest.split("next:\n")
    assert [line.split()[0] for line in path.splitlines()] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    assert f"textvae generate {out / 'model'} -n 10" in commands and f"textvae evaluate {out} --split test" in commands
    assert f"textvae reconstruct {out / 'model'} '{a}'" in commands
    assert f"textvae interpolate {out / 'model'} '{a}' '{b}' --steps 6" in commands
    model_for_check = TextVAE.from_pretrained(out / "model")
    assert samples.splitlines() == [f"  {s}" for s in model_for_check.generate(3, seed=0, method="sample", top_p=0.9)]
    path_sentences = [line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else "" for line in path.splitlines()]
    assert path_sentences == [s.strip() for s in model_for_check.interpolate(a, b, steps=5, no_repeat_ngram_size=3)]
    model = TextVAE.from_pretrained(out / "model")
    assert model.latent_dim == 4 and model.tokenizer is not None
    from textvae.config import load_recipe

    shipped = load_recipe(REPO / "recipes/quickstart.yaml")  # the first run picks bf16 where the CPU has it
    assert shipped.train.precision == "auto" and shipped.model.posterior_batchnorm == 0.7
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6]
    for key in ("rec", "kl", "mmd", "mi", "au", "neg_elbo"):
        assert key in valid[-1] and math.isfinite(valid[-1][key])
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [2, 4, 6] and all(r["rec"] > 0 for r in train_rows)
    for name in ("recipe.yaml", "data_stats.json", "summary.json", "report.md", "curves.png"):
        assert (out / name).is_file(), name
    assert (out / "model" / "training_recipe.yaml").is_file()


def test_training_reduces_the_loss(tmp_path, tiny_recipe):
    r = tiny_recipe(extra=["train.max_steps=40", "train.eval_every=40", "train.log_every=10", "train.lr=0.01"])
    train(r, tmp_path / "run", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ppl = [row["ppl_rec"] for row in rows if row["split"] == "train"]  # per token: batches differ in length
    assert len(ppl) == 4 and ppl[-1] < 0.7 * ppl[0]


@pytest.mark.parametrize("recipe,extra", [
    ("ptb/mmd_vae.yaml", []),
    ("ptb/vae_anneal_wd.yaml", ["train.grad_accum=2"]),
    ("ptb/lm.yaml", []),
])
def test_resume_is_exact(tmp_path, tiny_recipe, weights, recipe, extra):
    """N steps straight == N/2 steps, a fresh process-like restart with --resume, N/2 more."""
    r = tiny_recipe(recipe, extra + ["train.max_steps=8", "train.eval_every=4"])
    train(r, tmp_path / "straight", progress=False)
    half = tiny_recipe(recipe, extra + ["train.max_steps=4", "train.eval_every=4"])
    train(half, tmp_path / "resumed", progress=False)
    train(r, tmp_path / "resumed", resume=True, progress=False)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    def rows(run):  # everything logged but the wall clock
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "elapsed"} for x in lines]

    assert rows(tmp_path / "straight") == rows(tmp_path / "resumed")


def test_checkpoints_are_pruned_and_best_kept(tmp_path, tiny_recipe):
    r = tiny_recipe(extra=["train.max_steps=6", "train.eval_every=2", "train.keep_checkpoints=2"])
    result = train(r, tmp_path / "run", progress=False)
    assert [p.name for p in checkpoint_dirs(tmp_path / "run")] == ["step-00000004", "step-00000006"]
    assert result.best_dir == tmp_path / "run" / "best" and (result.best_dir / "model.safetensors").is_file()
    assert not any(p.name.startswith(".") for p in (tmp_path / "run").iterdir())  # no temp leftovers


def test_output_dir_refuses_to_mix_runs(tmp_path, tiny_recipe):
    r = tiny_recipe(extra=["train.max_steps=2", "train.eval_every=2"])
    train(r, tmp_path / "run", progress=False)
    with pytest.raises(RunError, match="--resume to continue it, --overwrite to replace it"):
        Trainer(r, tmp_path / "run")
    other = tiny_recipe(extra=["train.max_steps=2", "train.eval_every=2", "model.latent_dim=5"])
    with pytest.raises(RunError, match="model.latent_dim"):
        Trainer(other, tmp_path / "run", resume=True)
    with pytest.raises(RunError, match="holds no checkpoint"):
        Trainer(r, tmp_path / "fresh", resume=True)
    # The stopping rule may change on resume, as a run is continued under a longer one.
    longer = tiny_recipe(extra=["train.max_steps=4", "train.eval_every=2", "train.patience=2", "train.lr_decay=0.5",
                                "train.restart_optimizer=reset"])
    assert Trainer(longer, tmp_path / "run", resume=True).recipe.train.restart_optimizer == "reset"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("precious")
    with pytest.raises(RunError, match="refusing to delete"):
        Trainer(r, stranger, overwrite=True)
    assert (stranger / "notes.txt").read_text() == "precious"
    train(r, tmp_path / "run", overwrite=True, progress=False)


def test_cli_prints_config_errors_without_traceback(tmp_path, capsys):
    code = main(["train", str(REPO / "recipes/quickstart.yaml"), "model.latnt_dim=3", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Did you mean 'model.latent_dim'" in err and "Traceback" not in err


def test_bf16_autocast_on_cpu_trains(tmp_path, tiny_recipe, weights, emulated_bf16_allowed):
    r = tiny_recipe(extra=["train.max_steps=3", "train.eval_every=3", "train.precision=bf16"])
    result = train(r, tmp_path / "run", progress=False)
    assert math.isfinite(result.metrics["rec"]) and result.metrics["rec"] > 0
    assert weights(tmp_path / "run")["decoder.output.weight"].dtype == torch.float32  # master weights stay fp32


def test_fp16_on_cpu_is_refused(tmp_path, tiny_recipe):
    from textvae.errors import ConfigError

    r = tiny_recipe(extra=["train.max_steps=1", "train.precision=fp16", "train.device=cpu"])
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        train(r, tmp_path / "run", progress=False)


@pytest.mark.parametrize("monitor, stops_at", [("neg_elbo", 3), ("loss", None)])
def test_patience_follows_the_monitored_figure(tmp_path, tiny_recipe, monitor, stops_at):
    # Validation loss (λ·MMD included) keeps improving while −ELBO gets worse: only the monitored
    # figure decides which model is best and when patience runs out.
    r = tiny_recipe(extra=["train.patience=2", f"train.monitor={monitor}"])
    trainer = Trainer(r, tmp_path / "run")
    written = []
    trainer._write_model = written.append  # best/ is written at each improvement
    stopped = []
    for i in range(1, 6):
        metrics = {"loss": 100.0 - i, "neg_elbo": 90.0 + i}
        if trainer._after_validation(metrics):
            stopped.append(i)
    first = {"loss": 99.0, "neg_elbo": 91.0}[monitor]
    if stops_at is None:
        assert stopped == [] and trainer.state.best_loss == 95.0
    else:
        assert stopped[0] == stops_at and trainer.state.best_loss == first
    assert written == ["best"] * (5 if stops_at is None else 1)


def test_monitor_names_the_figures_it_takes(tiny_recipe):
    with pytest.raises(Exception, match="monitor"):
        tiny_recipe(extra=["train.monitor=elbo"])


def test_patience_waits_for_the_kl_warm_up(tmp_path, tiny_recipe):
    # Under a linear KL warm-up the −ELBO may rise while β grows: those evaluations do not count.
    r = tiny_recipe(name="ptb/vae_anneal_wd.yaml",
                    extra=["train.patience=1", "train.monitor=neg_elbo", "objective.kl_schedule.warmup_steps=20"])
    trainer = Trainer(r, tmp_path / "run")
    trainer._write_model = lambda name: None
    trainer._after_validation({"loss": 1.0, "neg_elbo": 50.0})
    for step, expected in [(10, False), (19, False), (20, True)]:
        trainer.state.step = step
        assert trainer._after_validation({"loss": 1.0, "neg_elbo": 60.0}) is expected, step
    assert trainer.state.bad_evals == 1 and trainer.state.best_loss == 50.0


def test_plateau_rule_decays_then_stops():
    from textvae.config.schema import TrainConfig
    from textvae.training.plateau import decay_factor, plateau_action
    from textvae.training.state import TrainerState

    cfg = TrainConfig(patience=2, lr_decay=0.5, max_lr_decays=2)
    state, actions = TrainerState(), []
    for step, value in enumerate([10.0, 9.0, 9.5, 9.2, 8.0, 8.5, 8.1, 8.2, 8.3, 8.4], start=1):
        state.step = step
        actions.append(plateau_action(state, value, cfg, counts=True))
    assert actions == ["best", "best", "wait", "decay", "best", "wait", "decay", "wait", "stop", "stop"]
    assert (state.best_loss, state.best_step, state.lr_decays) == (8.0, 5, 2)
    assert decay_factor(cfg, state) == 0.25
    # Without lr_decay the first plateau stops; uncounted validations (a KL warm-up) never do.
    plain, state = TrainConfig(patience=1), TrainerState(best_loss=1.0)
    assert plateau_action(state, 2.0, plain, counts=False) == "wait" and state.bad_evals == 0
    assert plateau_action(state, 2.0, plain, counts=True) == "stop" and decay_factor(plain, state) == 1.0


@pytest.mark.parametrize("restart_optimizer", ["keep", "reset"])
def test_plateau_restarts_from_best_at_the_lower_rate(tmp_path, tiny_recipe, restart_optimizer):
    r = tiny_recipe(extra=["train.patience=1", "train.lr_decay=0.5", "train.max_lr_decays=1", "train.lr=0.002",
                           "train.monitor=neg_elbo", f"train.restart_optimizer={restart_optimizer}"])
    trainer = Trainer(r, tmp_path / "run")
    trainer.setup()
    assert trainer._after_validation({"loss": 1.0, "neg_elbo": 50.0}) is False  # writes best/
    best = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    batches = trainer._batches()
    trainer.train_step(batches, 1.0, None)
    trainer.scheduler.step()
    trainer.state.step = 1
    assert trainer.optimizer.state and not torch.equal(trainer.model.state_dict()["decoder.output.weight"],
                                                       best["decoder.output.weight"])
    moments = {id(p): {k: v.clone() for k, v in st.items()} for p, st in trainer.optimizer.state.items()}
    assert trainer._after_validation({"loss": 1.0, "neg_elbo": 60.0}) is False  # the plateau: a restart
    assert all(torch.equal(v, best[k]) for k, v in trainer.model.state_dict().items())
    assert trainer.state.lr_decays == 1 and trainer.state.bad_evals == 0
    if restart_optimizer == "reset":
        assert not trainer.optimizer.state
    else:  # the same moments and step counts, on the restored weights
        kept = {id(p): st for p, st in trainer.optimizer.state.items()}
        assert kept.keys() == moments.keys() and all(
            torch.equal(kept[i][k], v) for i, st in moments.items() for k, v in st.items())
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)
    trainer.scheduler.step()
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)  # the schedule keeps the decay
    assert trainer._after_validation({"loss": 1.0, "neg_elbo": 55.0}) is True  # no restart left: stop


def test_plateau_decay_resumes_exactly(tmp_path, tiny_recipe, weights):
    # A high rate and patience 1 make validations worsen within a few steps, so restarts happen
    # before and after the resume point; the resumed run must match the straight one bit for bit.
    rule = ["train.eval_every=2", "train.patience=1", "train.lr_decay=0.5", "train.max_lr_decays=3", "train.lr=0.2",
            "train.monitor=neg_elbo", "train.log_every=2"]
    r = tiny_recipe(extra=rule + ["train.max_steps=20"])
    straight = train(r, tmp_path / "straight", progress=False)
    train(tiny_recipe(extra=rule + ["train.max_steps=10"]), tmp_path / "resumed", progress=False)
    resumed = train(r, tmp_path / "resumed", resume=True, progress=False)
    summary = json.loads((tmp_path / "straight" / "summary.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    lrs = [(row["step"], row["lr"]) for row in rows if row["split"] == "train"]
    # a restart at step s shows as a lower rate from the next logged step on
    restarts = [prev_step for (prev_step, prev), (_, lr) in zip(lrs, lrs[1:]) if lr < prev]
    assert summary["lr_decays"] == len(restarts) >= 2 and summary["best_step"] is not None
    assert min(restarts) < 10 <= max(restarts), restarts  # one before the resume point, one after
    assert straight.step == resumed.step
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert lrs[0][1] == pytest.approx(0.2) and lrs[-1][1] == pytest.approx(0.2 * 0.5 ** summary["lr_decays"])


@pytest.mark.parametrize("extra, message", [
    (["train.lr_decay=0.5"], "train.patience is not"),
    (["train.lr_decay=1.5", "train.patience=2"], r"train.lr_decay must be in \(0, 1\)"),
    (["train.lr_decay=0.5", "train.patience=2", "train.max_lr_decays=0"], "max_lr_decays must be >= 1"),
    (["train.restart_optimizer=fresh"], r"train.restart_optimizer must be one of \['keep', 'reset'\]"),
])
def test_lr_decay_bad_settings(tiny_recipe, extra, message):
    with pytest.raises(Exception, match=message):
        tiny_recipe(extra=extra)
