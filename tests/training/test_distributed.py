"""Data parallelism on CPU: two gloo processes through torchrun, and the gathered MMD.

What is checked: the replicas end bitwise identical; two processes on the global batch train
the same model as one process; the MMD of z gathered across processes, and its gradient, are
those of one process on the concatenated z; resume works with the same number of processes and
is refused with another; a number of processes that does not divide the batch is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from textvae.cli import main
from textvae.config import ObjectiveConfig
from textvae.objectives import infovae_loss
from textvae.training import Trainer, train
from textvae.training.checkpoint import checkpoint_dirs, load_trainer_state
from textvae.training.distributed import all_gather_with_grad, local_batch_size
from textvae.utils.metrics import read_metrics
from textvae.errors import ConfigError, RunError

from tests.helpers import REPO, TINY

# One thread per process: two processes on two cores, and the numbers do not depend on threading.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
STEPS = ["train.max_steps=6", "train.eval_every=6", "train.save_every=4", "train.log_every=2"]
# Same sentences per step in one and two processes: without bucketing, rank r takes batches r, r+2, …
# of 8, whose union at step k is the single process's k-th batch of 16. The LM with no dropout
# has no randomness, so only the order of floating-point sums differs.
SAME_BATCHES = ["train.bucket=false", "model.decoder.dropout=0.0"]


def torchrun(recipe: str, out: Path, *extra: str, nproc: int = 2) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "textvae", "train", str(REPO / "recipes" / recipe), *TINY, *extra, "--output", str(out),
               "--no-progress"]
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def replicas(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())["replicas"]


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory, tiny_recipe) -> tuple[Path, Path]:
    """The LM trained 6 steps by two processes and by one, on the same global batches."""
    root = tmp_path_factory.mktemp("lm")
    torchrun("ptb/lm.yaml", root / "two", *STEPS, *SAME_BATCHES)
    train(tiny_recipe("ptb/lm.yaml", STEPS + SAME_BATCHES), root / "one", progress=False)
    return root / "two", root / "one"


@pytest.fixture(scope="module")
def vae_two(tmp_path_factory) -> Path:
    """An MMD-VAE trained 6 steps by two processes, started by `textvae train --nproc 2`."""
    out = tmp_path_factory.mktemp("vae") / "run"
    command = [sys.executable, "-m", "textvae", "train", str(REPO / "recipes/ptb/mmd_vae.yaml"), *TINY, *STEPS,
               "--output", str(out), "--no-progress", "--nproc", "2"]
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("trained 6 steps") == 1  # rank 0 speaks for both
    return out


def test_replicas_stay_identical(lm_runs, vae_two):
    for run in (lm_runs[0], vae_two):
        info = replicas(run)
        assert info["world_size"] == 2 and info["identical"], info
        assert len(set(info["weights_sha256"])) == 1


def test_two_processes_train_the_single_process_model(lm_runs, weights):
    two, one = lm_runs
    a, b = weights(two), weights(one)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    # The logged sums are reduced over both ranks: same sentences, tokens and losses as one process.
    for row_two, row_one in zip(read_metrics(two), read_metrics(one), strict=True):
        assert (row_two["step"], row_two["split"]) == (row_one["step"], row_one["split"])
        for key in ("loss", "rec", "tokens", "n_sentences"):
            if key in row_one:
                assert row_two[key] == pytest.approx(row_one[key], rel=1e-4), (row_one["step"], key)


def test_logged_vae_loss_counts_the_gathered_mmd_once(vae_two):
    cfg = ObjectiveConfig(preset="mmd_vae", lam=100.0)
    for row in read_metrics(vae_two):
        if row["split"] == "train":
            assert row["loss"] == pytest.approx(row["rec"] + cfg.mmd_weight * row["mmd"], rel=1e-5)


def test_resume_with_the_same_number_of_processes_is_exact(tmp_path, vae_two, weights):
    out = tmp_path / "run"
    shutil.copytree(vae_two, out)
    shutil.rmtree(out / "model")  # resume from the step-4 checkpoint, as after a crash
    assert [p.name for p in checkpoint_dirs(out)] == ["step-00000004"]
    assert load_trainer_state(checkpoint_dirs(out)[-1])["world_size"] == 2
    torchrun("ptb/mmd_vae.yaml", out, *STEPS, "--resume")
    a, b = weights(out), weights(vae_two)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = lambda run: [{k: v for k, v in r.items() if k != "elapsed"} for r in read_metrics(run)]  # noqa: E731
    assert strip(out) == strip(vae_two)


def test_resume_with_another_number_of_processes_is_refused(tmp_path, vae_two, capsys, tiny_recipe):
    out = tmp_path / "run"
    shutil.copytree(vae_two, out)
    args = ["train", str(REPO / "recipes/ptb/mmd_vae.yaml"), *TINY, *STEPS, "train.max_steps=8",
            "--output", str(out), "--resume", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "was trained by 2 process(es), and this run has 1. Resume with the same number " \
           "(textvae train --nproc 2 … --resume)" in err, err
    with pytest.raises(RunError, match=r"trained by 2 process\(es\)"):
        train(tiny_recipe(extra=STEPS), out, resume=True, progress=False)


def test_a_number_of_processes_that_does_not_divide_the_batch_is_refused(tmp_path, monkeypatch, capsys,
                                                                         tiny_recipe):
    with pytest.raises(ConfigError, match=r"train\.batch_size=16 is the global batch, split evenly over the 3 "
                                          r"processes.* Choose train\.batch_size=15 or 18"):
        local_batch_size(16, 3)
    assert local_batch_size(16, 4) == 4
    # Through the launcher: refused before any process starts.
    args = ["train", str(REPO / "recipes/ptb/mmd_vae.yaml"), *TINY, "--output", str(tmp_path / "a"), "--nproc", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "3 does not divide it" in err and not (tmp_path / "a").exists()
    # Under torchrun (its environment, faked): every rank refuses before joining the process group.
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match="3 does not divide it"):
        Trainer(tiny_recipe(), tmp_path / "b")


# --------------------------------------------------------------------------- the gathered MMD


def _gathered_mmd_worker(rank: int, world: int, init_file: str, sizes: list[int], out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        z_all, prior_all = _mmd_inputs(sum(sizes))
        start = sum(sizes[:rank])
        z = z_all[start:start + sizes[rank]].clone().requires_grad_()
        prior = prior_all[start:start + sizes[rank]]
        both = all_gather_with_grad(torch.cat([z, prior], dim=1), sizes)
        d = z.shape[1]
        terms = _terms(z, mmd_z=both[:, :d], prior_z=both[:, d:])
        terms.loss.backward()
        torch.save({"grad": z.grad, "mmd": terms.mmd.detach(), "loss": terms.loss.detach()},
                   Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _mmd_inputs(n: int, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * 0.7 + 0.3, torch.randn(n, d, generator=g,
                                                                                       dtype=torch.float64)


def _terms(z: torch.Tensor, mmd_z=None, prior_z=None):
    cfg = ObjectiveConfig(preset="mmd_vae", lam=10.0)  # loss = rec + 10·MMD·count, no KL term
    n = z.shape[0]
    rec = torch.zeros(n, dtype=torch.float64)
    return infovae_loss(rec, torch.tensor(n), z, torch.zeros_like(z), z, cfg, prior_z=prior_z, mmd_z=mmd_z)


def test_gathered_mmd_and_its_gradient_match_one_process(tmp_path):
    sizes = [5, 3]  # ranks may hold different counts (the short last batch of an epoch)
    # Forked, not spawned: the children start with everything imported (a spawn re-imports textvae).
    mp.start_processes(_gathered_mmd_worker, args=(2, str(tmp_path / "rendezvous"), sizes, str(tmp_path)),
                       nprocs=2, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    z_all, prior_all = _mmd_inputs(sum(sizes))
    z_all.requires_grad_()
    single = _terms(z_all, prior_z=prior_all)
    single.loss.backward()
    # Each rank's MMD share sums to the single-process MMD × N ...
    torch.testing.assert_close(ranks[0]["mmd"] + ranks[1]["mmd"], single.mmd.detach())
    # ... each rank backpropagates the MMD counted for the whole global batch ...
    for r in ranks:
        torch.testing.assert_close(r["loss"], single.loss.detach())
    # ... and the gradient each rank gets for its own rows is the single-process one for those rows.
    torch.testing.assert_close(torch.cat([r["grad"] for r in ranks]), z_all.grad)
