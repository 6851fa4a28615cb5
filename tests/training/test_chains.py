"""Training with Langevin chains (short-run inference, the energy-based prior): the recipes run
through the CLI, resuming is exact (the chains' generator is checkpointed), and what is refused
stops with its message."""

import json
import math

import pytest
import torch

from textvae import TextVAE
from textvae.cli import main
from textvae.config import load_recipe
from textvae.errors import ConfigError
from textvae.training import train
from textvae.training.chains import refuse_data_parallel
from textvae.training.checkpoint import checkpoint_dirs, load_trainer_state
from textvae.training.distributed import Replicas

from tests.helpers import REPO, TINY

CHAIN_RECIPES = ["ptb/sri.yaml", "ptb/vae_langevin.yaml", "ptb/ebm_prior.yaml", "ptb/info_vae_ebm.yaml"]
# Short chains and few samples: seconds per run on one thread.
SHORT = ["model.langevin.steps=3", "model.langevin.fit_samples=2", "model.ebm.langevin.steps=5",
         "model.ebm.log_z_samples=500", "train.eval_batches=1"]


@pytest.mark.parametrize("recipe", CHAIN_RECIPES)
def test_recipe_trains_through_the_cli(tmp_path, capsys, recipe):
    out = tmp_path / "run"
    code = main(["train", str(REPO / "recipes" / recipe), *TINY, *SHORT, "train.max_steps=4", "train.eval_every=2",
                 "--output", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    model = TextVAE.from_pretrained(out / "model")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["split"] == "train"]
    valid = [r for r in rows if r["split"] == "valid"][-1]
    assert all(math.isfinite(r["loss"]) and r["rec"] > 0 for r in train_rows)
    for key in ("rec", "kl", "neg_elbo", "mi", "au", "mmd"):
        assert math.isfinite(valid[key]), key
    if model.config.prior == "ebm":
        assert "energy" in train_rows[-1] and math.isfinite(valid["log_z"]) and valid["log_z_se"] >= 0
    if model.config.inference == "langevin":
        assert model.encoder is None and all(r["kl"] == 0.0 for r in train_rows)  # no q(z|x), no KL in training
    if model.config.inference == "amortized+langevin":
        assert "rec_encoder" in train_rows[-1]


@pytest.fixture(scope="module")
def sri_and_ebm_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("chains")
    for name in ("sri", "ebm_prior"):
        r = load_recipe(REPO / "recipes" / "ptb" / f"{name}.yaml", TINY + SHORT + ["train.max_steps=2", "train.eval_every=2"])
        train(r, root / name, progress=False)
    return root


def test_latent_commands_work_unchanged(sri_and_ebm_runs, tmp_path, capsys):
    sri, ebm = sri_and_ebm_runs / "sri", sri_and_ebm_runs / "ebm_prior"
    data = tmp_path / "s.txt"
    data.write_text("the company said\nprices fell sharply\nhe declined to comment\n")
    for run in (sri, ebm):
        feats = tmp_path / f"{run.name}.npy"
        assert main(["encode", str(run), "--data", str(data), "--output", str(feats)]) == 0
        assert main(["reconstruct", str(run), "the company said"]) == 0
        assert main(["generate", str(run), "--num", "3", "--seed", "0"]) == 0
        assert main(["interpolate", str(run), "--steps", "3", "--seed", "0"]) == 0
    capsys.readouterr()
    # encode of a short-run model: the mean of its short-run samples, the same each time.
    model = TextVAE.from_pretrained(sri)
    a, b = model.encode(["the company said", "he said it"]), model.encode(["the company said", "he said it"])
    assert torch.equal(a, b) and a.shape == (2, 4)
    # generate from the energy-based prior: seeded, through its chain.
    model = TextVAE.from_pretrained(ebm)
    assert model.generate(3, seed=1) == model.generate(3, seed=1)
    from textvae import TextVAEFeaturizer

    feats = TextVAEFeaturizer(str(sri)).fit(["x"]).transform(["the company said", "he said it"])
    assert feats.shape == (2, 4)


@pytest.mark.parametrize("energy_lr", [3e-4, None])
def test_the_energy_trains_in_its_own_optimizer_group(tmp_path, tiny_recipe, energy_lr):
    r = tiny_recipe("ptb/ebm_prior.yaml", SHORT + ["train.max_steps=2", "train.eval_every=2", "train.lr=1e-3",
                                                    "train.lr_schedule=warmup_linear", "train.warmup_steps=4",
                                                    f"model.ebm.lr={energy_lr or 'null'}"])
    train(r, tmp_path / "run", progress=False)
    groups = load_trainer_state(checkpoint_dirs(tmp_path / "run")[-1])["optimizer"]["param_groups"]
    model = TextVAE.from_pretrained(tmp_path / "run" / "model")
    n_energy = len(list(model.prior.parameters()))
    n_all = len([p for p in model.parameters() if p.requires_grad])
    # After 2 of 4 warmup steps the schedule's multiplier is the same for both groups.
    multiplier = groups[0]["lr"] / 1e-3
    assert 0 < multiplier < 1
    if energy_lr is None:  # one group at train.lr
        assert len(groups) == 1 and len(groups[0]["params"]) == n_all
    else:
        assert [len(g["params"]) for g in groups] == [n_all - n_energy, n_energy] and n_energy == 6
        assert groups[1]["lr"] == pytest.approx(energy_lr * multiplier, rel=1e-9)


@pytest.mark.parametrize("recipe", ["ptb/sri.yaml", "ptb/vae_langevin.yaml", "ptb/ebm_prior.yaml"])
def test_resume_is_exact_with_langevin_chains(tmp_path, tiny_recipe, weights, recipe):
    """N steps straight == N/2 steps, a restart with --resume, N/2 more: the chains' stream included."""
    extra = SHORT + ["train.eval_every=4"]
    train(tiny_recipe(recipe, extra + ["train.max_steps=8"]), tmp_path / "straight", progress=False)
    train(tiny_recipe(recipe, extra + ["train.max_steps=4"]), tmp_path / "resumed", progress=False)
    state = load_trainer_state(checkpoint_dirs(tmp_path / "resumed")[-1])
    assert isinstance(state["chain_rng"], torch.Tensor)
    train(tiny_recipe(recipe, extra + ["train.max_steps=8"]), tmp_path / "resumed", resume=True, progress=False)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k

    def rows(run):  # everything logged but the wall clock
        return [{k: v for k, v in json.loads(x).items() if k != "elapsed"}
                for x in (run / "metrics.jsonl").read_text().splitlines()]

    assert rows(tmp_path / "straight") == rows(tmp_path / "resumed")


def test_a_diverging_chain_stops_training_with_its_step_size(tmp_path, capsys):
    # s = 1e38: the first update leaves z near 1e19·ε, the second overflows through the prior's −z.
    code = main(["train", str(REPO / "recipes/ptb/sri.yaml"), *TINY, *SHORT, "train.max_steps=2",
                 "model.langevin.step_size.start=1e38", "model.langevin.step_size.end=1e38",
                 "--output", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "model.langevin produced non-finite z at step" in err and "step size 1e+38" in err
    assert "the last finite step was" in err and "lower model.langevin.step_size" in err


@pytest.mark.parametrize("override", ["model.inference=langevin", "model.prior=ebm"])
def test_data_parallel_is_refused(tiny_recipe, override):
    recipe = tiny_recipe("ptb/vae.yaml", [override])
    with pytest.raises(ConfigError, match="not supported with --nproc > 1.*Train it in one process"):
        refuse_data_parallel(recipe, Replicas(world_size=2, rank=0, local_rank=0))
    refuse_data_parallel(recipe, Replicas())  # one process: fine


def test_chains_train_under_bf16_autocast(tmp_path, tiny_recipe, emulated_bf16_allowed):
    r = tiny_recipe("ptb/vae_langevin.yaml", SHORT + ["train.max_steps=2", "train.eval_every=2", "model.prior=ebm",
                                                      "train.precision=bf16"])
    result = train(r, tmp_path / "run", progress=False)
    assert all(math.isfinite(result.metrics[k]) for k in ("rec", "kl", "neg_elbo", "log_z"))
