"""The training recipe: setup → train (with validation and checkpoints) → final model.

Reads top to bottom like nanoGPT's train.py: data and tokenizer, model, optimizer and
schedules, then one loop that accumulates micro-batches, steps, logs, validates and saves.

Under torchrun (``textvae train --nproc N``) the same loop runs on every rank with
DistributedDataParallel: ``train.batch_size`` is the global batch, rank 0 logs and writes while
the others wait for it, and rank 0 alone validates (on the whole validation split, with the
global batch size, so the numbers are the single-process ones) and hands the result to the others.
"""

from __future__ import annotations

from textvae.errors import TextVAEError

import json
import math
import os
import random
import shutil
import signal
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Iterator, Optional

import numpy as np
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from textvae.config import ConfigError, Recipe, dump_recipe, read_yaml, recipe_from_dict
from textvae.data import (LengthBucketSampler, TextTokenizer, corpus_report, load_corpus, make_loader,
                          tokenize_corpus)
from textvae.evaluation.validation import validate
from textvae.modeling import TextVAE, VocabSpec
from textvae.objectives import infovae_loss, kl_beta
from textvae.training.collapse import collapse_warning
from textvae.training.checkpoint import (CHECKPOINTS_DIR, CheckpointError, checkpoint_dirs, clean_leftovers,
                                         first_sentence, load_checkpoint, load_trainer_state, rng_state,
                                         save_checkpoint, set_aside, set_rng_state, write_model_dir)
from textvae.training.distributed import (Replicas, all_gather_object, all_gather_with_grad, all_reduce_sum,
                                          destroy_process_group, gather_sizes, init_process_group,
                                          local_batch_size, on_main,
                                          replicas_from_env, weights_digest)
from textvae.training.metrics import MetricsLogger
from textvae.training.precision import flush_denormals, precision_note, resolve_device, resolve_precision
from textvae.training.schedules import lr_multiplier
from textvae.utils.cpu import cpu_capability, cpu_description, lstm_bf16_supported
from textvae.utils.io import DISK_FULL, atomic_write_json, atomic_write_text

RECIPE_NAME = "recipe.yaml"
MODEL_DIR = "model"
BEST_DIR = "best"
# Keys that may differ when resuming: extending a run is a normal thing to do.
RESUMABLE_CHANGES = {("train", "max_steps"), ("train", "patience"), ("train", "eval_every"),
                     ("train", "save_every"), ("train", "log_every"), ("train", "keep_checkpoints"),
                     ("train", "tensorboard"), ("train", "compile"), ("train", "flush_denormal")}


class TrainingError(RuntimeError, TextVAEError):
    """Training cannot go on; the message says why and what was kept."""


class RunDirError(ValueError, TextVAEError):
    """The output directory cannot be used as asked; the message says which flag to pass."""


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Optional[Path]
    """``run_dir/model``; None when the run was interrupted (its checkpoint is what it left)."""
    best_dir: Optional[Path]
    step: int
    metrics: dict[str, float]
    seconds: float
    interrupted: bool = False
    nonfinite_steps: int = 0
    data_stats: dict[str, Any] = field(default_factory=dict)
    stop_signal: Optional[str] = None
    """``SIGINT`` or ``SIGTERM`` when a signal interrupted the run."""


def numerics() -> dict[str, Any]:
    """What, besides the recipe and the seed, decides a CPU run's floating-point results: kernels
    split their sums by thread, and each instruction set has kernels of its own."""
    return {"threads": torch.get_num_threads(), "cpu_capability": cpu_capability()}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_run_dir(run_dir: Path, recipe: Recipe, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory unless told to resume or overwrite."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite contradict each other; pass one of them.")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"--output {run_dir} is a file, not a directory; choose another --output.")
    recipe_path = run_dir / RECIPE_NAME
    if resume:
        if not recipe_path.is_file() or not checkpoint_dirs(run_dir):
            raise RunDirError(f"--resume: {run_dir} holds no checkpoint to resume from "
                              f"(no {CHECKPOINTS_DIR}/step-*/). Drop --resume to start a new run there.")
        saved = recipe_from_dict(read_yaml(recipe_path)).to_dict()
        changed = _diff(saved, recipe.to_dict())
        blocking = [k for k in changed if tuple(k.split(".")[:2]) not in RESUMABLE_CHANGES]
        if blocking:
            raise RunDirError(
                f"--resume: the recipe differs from the one {run_dir} was trained with in "
                f"{', '.join(blocking)}; resuming would mix two experiments. Use the same recipe "
                "(only train.max_steps, patience and logging intervals may change) or a new --output.")
        _check_writable(run_dir)
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"{run_dir} already holds files (a previous run?). Pass --resume to continue it, "
                "--overwrite to replace it, or choose another --output.")
        if not (recipe_path.is_file() or (run_dir / CHECKPOINTS_DIR).is_dir()):
            raise RunDirError(f"--overwrite: {run_dir} is not empty and does not look like a textvae run "
                              "(no recipe.yaml); refusing to delete it. Choose another --output.")
        try:
            shutil.rmtree(run_dir)
        except OSError as err:
            raise RunDirError(f"--overwrite: could not delete the previous run in {run_dir} "
                              f"({err.strerror or err}: {err.filename}). Fix its permissions or choose "
                              "another --output.") from err
    _check_writable(run_dir)


def _check_writable(run_dir: Path) -> None:
    """Create ``run_dir`` and a file in it now, rather than fail at the first checkpoint."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", suffix=".tmp", dir=run_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise RunDirError(f"cannot write to the output directory {run_dir} ({err.strerror or err}"
                          f"{': ' + str(err.filename) if err.filename and Path(err.filename) != run_dir else ''}). "
                          "Choose another --output, or make that directory writable.") from err


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024 or unit == "GiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"  # pragma: no cover


def _disk_usage(path: Path) -> int:
    """Bytes used by the files under ``path`` (0 when it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            keys += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            keys.append(f"{prefix}{k}")
    return keys


class Trainer:
    """Trains one recipe into one run directory.

    Started by torchrun, it joins the process group its environment describes and trains one
    DistributedDataParallel replica (see :mod:`textvae.training.distributed`).

    Args:
        recipe: the validated recipe.
        run_dir: where recipe.yaml, metrics, checkpoints and the final model go.
        resume: continue from the newest checkpoint in ``run_dir``.
        overwrite: delete an existing run in ``run_dir`` first.
        progress: show a tqdm progress bar (rank 0 only).
    Raises:
        ConfigError: the number of processes does not divide ``train.batch_size``.
    """

    def __init__(self, recipe: Recipe, run_dir: str | Path, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, threads: Optional[int] = None,
                 allow_different_threads: bool = False):
        self.recipe, self.run_dir = recipe, Path(run_dir)
        if threads is not None and threads < 1:
            raise RunDirError(f"--threads must be >= 1, got {threads}.")
        self.threads_asked, self.allow_different_threads = threads, allow_different_threads
        # Checked before joining the process group: every rank stops with this message at once.
        self.replicas = replicas_from_env()
        self.local_batch = local_batch_size(recipe.train.batch_size, self.replicas.world_size)
        self.device = init_process_group(self.replicas, resolve_device(recipe.train.device))
        self.resume, self.progress = resume, progress and self.replicas.is_main
        on_main(self.replicas, lambda: prepare_run_dir(self.run_dir, recipe, resume, overwrite))
        self.recipe_text = dump_recipe(recipe)
        self._stop_signal: Optional[str] = None
        self._warned_collapse = False

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        r, cfg = self.recipe, self.recipe.train
        # Each rank its own stream (dropout, z noise); rank 0's is the single-process one, so it
        # builds the same initial model, which DDP then copies to every rank.
        seed_everything(cfg.seed + self.replicas.rank)
        # Threads first: the denormal flush reaches only the worker threads started after it.
        self._set_threads(self._recorded_numerics() if self.resume else {})
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.flush_denormal:
            flush_denormals(self.device)
        self._say_numerics()
        for path in on_main(self.replicas, lambda: clean_leftovers(self.run_dir)):
            self._say(f"removed {path}, left over by an interrupted write.")
        self.checkpoint, restored = self._find_checkpoint() if self.resume else (None, None)

        corpus = load_corpus(r.data, seed=cfg.seed)
        if restored is not None:  # the exact tokenizer the run started with
            self.tokenizer = restored[1].tokenizer
        else:  # trained once, on rank 0, and handed to the others: all ranks must number tokens alike
            self.tokenizer = on_main(self.replicas, lambda: TextTokenizer.train(r.tokenizer, corpus["train"]["text"]))
        self.corpus, self.data_stats = tokenize_corpus(corpus, self.tokenizer, r.data)
        # What loading and tokenization dropped (blank lines, label-only lines, too long), said
        # once on the console and kept in data_stats.json.
        self._say(corpus_report(corpus, self.data_stats))
        for split, dropped in corpus.dropped.items():
            if split in self.data_stats:
                self.data_stats[split]["dropped_on_load"] = dict(dropped)
        vocab = VocabSpec(self.tokenizer.vocab_size, self.tokenizer.pad_id, self.tokenizer.bos_id,
                          self.tokenizer.eos_id, self.tokenizer.unk_id)

        self.model = TextVAE(r.model, vocab, self.tokenizer).to(self.device)
        self.optimizer = self._optimizer()
        on_main(self.replicas, self._check_free_space)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_multiplier(cfg))
        self.scaler = self.precision.grad_scaler()
        # Each rank takes every world_size-th batch of one shared batch list (LengthBucketSampler),
        # of batch_size / world_size sentences: a global batch of batch_size per step.
        pin = self.device.type == "cuda"  # page-locked host batches: asynchronous copies to the GPU
        self.train_loader = make_loader(self.corpus["train"], self.tokenizer, self.local_batch, shuffle=True,
                                        seed=cfg.seed, bucket=cfg.bucket, num_workers=cfg.num_workers,
                                        num_replicas=self.replicas.world_size, rank=self.replicas.rank,
                                        pin_memory=pin)
        # A DataLoader draws a base seed from the global RNG each time it starts a pass; a private
        # generator keeps that draw out of the training RNG stream, so resuming mid-epoch is exact.
        self.train_loader.generator = torch.Generator().manual_seed(cfg.seed)
        self.valid_loader = make_loader(self.corpus["validation"], self.tokenizer, cfg.batch_size,
                                        shuffle=False, seed=cfg.seed, bucket=cfg.bucket,
                                        num_workers=cfg.num_workers, pin_memory=pin)
        self.valid_loader.generator = torch.Generator().manual_seed(cfg.seed)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_loss, self.bad_evals, self.nonfinite_total, self.overflow_total = math.inf, 0, 0, 0
        if restored is not None:
            self._restore(*restored)
        else:
            def write_run_files() -> None:
                with self._writing(self.run_dir / RECIPE_NAME):
                    atomic_write_text(self.run_dir / RECIPE_NAME, self.recipe_text)
                    atomic_write_json(self.run_dir / "data_stats.json", self.data_stats)

            on_main(self.replicas, write_run_files)
        # The module the loop calls: compiled and/or DDP-wrapped. It shares its parameters with
        # self.model, which is what gets validated and saved.
        self.train_model: torch.nn.Module = self.model
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        if self.replicas.enabled:
            self.train_model = DistributedDataParallel(
                self.train_model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def _recorded_numerics(self) -> dict[str, Any]:
        """The thread count, precision and CPU the newest readable checkpoint was trained with
        ({} before this was recorded, or when no checkpoint reads: the search then says why)."""
        for checkpoint in reversed(checkpoint_dirs(self.run_dir)):
            try:
                return load_trainer_state(checkpoint).get("numerics", {})
            except Exception:  # noqa: BLE001 - _search_checkpoints reports and sets it aside
                continue
        return {}

    def _set_threads(self, recorded: dict[str, Any]) -> None:
        """Use ``--threads``, else on resume the recorded count (so that resuming is exact), else
        torch's default. Resuming with another count than recorded is refused unless allowed."""
        asked, saved = self.threads_asked, recorded.get("threads")
        if saved is not None and asked is not None and asked != saved:
            if not self.allow_different_threads:
                raise RunDirError(
                    f"--resume: {self.run_dir} was trained with {saved} thread(s) and --threads asks for {asked}. "
                    "CPU kernels split their sums by thread, so the resumed run would differ from an "
                    f"uninterrupted one. Resume with --threads {saved} (or without --threads, which uses the "
                    "recorded count), or pass --allow-different-threads to accept a different result.")
            self._say(f"warning: --resume with {asked} thread(s), but the run was trained with {saved}: "
                      "the result will differ from an uninterrupted run (--allow-different-threads).")
        threads = asked if asked is not None else saved
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.recorded_numerics = recorded

    def _say_numerics(self) -> None:
        """Where and how this run computes, said at the start; on resume, what differs from before."""
        threads = torch.get_num_threads()
        where = (f"cpu ({cpu_description(threads)})" if self.device.type == "cpu" else
                 f"{self.device} ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda"
                 else str(self.device))
        asked = self.recipe.train.precision
        self._say(f"device {where}; precision {self.precision.name}"
                  + (" (train.precision=auto)" if asked == "auto" else ""))
        note = precision_note(self.precision)
        if note:
            self._say(note)
        recorded = getattr(self, "recorded_numerics", {})
        before = {k: recorded[k] for k in ("precision", "cpu_capability") if k in recorded}
        now = {"precision": self._precision_used(), "cpu_capability": cpu_capability()}
        changed = [f"{k} {before[k]} then, {now[k]} now" for k in before if before[k] != now[k]]
        if changed:
            self._say(f"warning: --resume: the run was trained with other numerics ({'; '.join(changed)}), "
                      "so the result will differ from an uninterrupted run.")

    def _precision_used(self) -> str:
        """The precision as computed: bf16 with the LSTM in fp32 is a numerics of its own."""
        name = self.precision.name
        if (self.device.type == "cpu" and self.precision.dtype == torch.bfloat16 and not lstm_bf16_supported()
                and "lstm" in (self.recipe.model.encoder.kind, self.recipe.model.decoder.kind)):
            return f"{name} (LSTM fp32)"
        return name

    def _find_checkpoint(self) -> tuple[Path, tuple[dict[str, Any], TextVAE]]:
        """The newest checkpoint that reads back whole, and its (trainer state, model).

        Rank 0 searches (setting damaged checkpoints aside); the other ranks read the one it chose.
        """
        found: dict[str, Any] = {}

        def search() -> Path:
            found["path"], found["loaded"] = self._search_checkpoints()
            return found["path"]

        path = on_main(self.replicas, search)
        return path, found.get("loaded") or load_checkpoint(path, device=self.device)

    def _search_checkpoints(self) -> tuple[Path, tuple[dict[str, Any], TextVAE]]:
        """Newest first, the first checkpoint that reads back whole.

        A damaged checkpoint (truncated or altered weights, unreadable trainer state) is renamed
        ``damaged-step-N`` with a warning and the one before it is tried: resuming from an older
        checkpoint costs some steps, stopping costs the whole run.
        """
        problems = []
        for checkpoint in reversed(checkpoint_dirs(self.run_dir)):
            try:
                return checkpoint, load_checkpoint(checkpoint, device=self.device)
            except Exception as err:  # noqa: BLE001 - any failure to read it makes it unusable
                moved = set_aside(checkpoint)
                why = (" ".join(str(err).split()) if isinstance(err, TextVAEError)
                       else f"{type(err).__name__}: {first_sentence(err)}")
                problems.append(f"{checkpoint.name}: {why}")
                self._say(f"warning: --resume: {checkpoint} is damaged and was moved to {moved}: {why} "
                          "Trying the checkpoint before it.")
        raise CheckpointError(
            f"--resume: no checkpoint in {self.run_dir / CHECKPOINTS_DIR} can be read, so there is nothing to "
            f"resume from ({'; '.join(problems)}). Each was moved to damaged-step-N. Start the run again "
            "with --overwrite, or with a new --output.")

    def _check_free_space(self) -> None:
        """Stop before training when the disk clearly cannot hold the checkpoints this run writes.

        Rough size: weights W (float32 on disk), optimizer state (AdamW: 2·W of the trainable ones),
        ``keep_checkpoints`` checkpoints plus the one being written, and model/ + best/ (+ a copy
        of best/ being replaced). What the run directory already holds is written over.
        """
        cfg = self.recipe.train
        weights = sum(t.numel() * 4 for t in self.model.state_dict().values())
        trainable = sum(p.numel() * 4 for p in self.model.parameters() if p.requires_grad)
        moments = 2 if cfg.optimizer == "adamw" else (1 if cfg.momentum else 0)
        checkpoint = weights + moments * trainable
        needed = (cfg.keep_checkpoints + 1) * checkpoint + 3 * weights
        needed -= sum(_disk_usage(self.run_dir / name) for name in (CHECKPOINTS_DIR, MODEL_DIR, BEST_DIR))
        free = shutil.disk_usage(self.run_dir).free
        if free < needed:
            raise RunDirError(
                f"the disk holding {self.run_dir} has {_size(free)} free, but this run needs about "
                f"{_size(needed)} more: {cfg.keep_checkpoints} checkpoint(s) of {_size(checkpoint)} "
                f"(train.keep_checkpoints), one being written, and model/ and best/. Free some space, lower "
                "train.keep_checkpoints, or choose an --output on another disk.")

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.recipe.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        # Fused: one kernel over all parameters instead of a loop of small ops per tensor (on the
        # PTB model, AdamW takes 35 → 11 ms a step on one CPU thread).
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)

    def _state(self) -> dict[str, Any]:
        """The trainer state of a checkpoint. Collective under DDP: every rank's RNG state is kept."""
        state = {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                 "best_loss": self.best_loss, "bad_evals": self.bad_evals,
                 "nonfinite_total": self.nonfinite_total, "overflow_total": self.overflow_total,
                 "world_size": self.replicas.world_size,
                 "numerics": {**numerics(), "precision": self._precision_used()},
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(), "rng": rng_state()}
        if self.replicas.enabled:
            state["rng_by_rank"] = all_gather_object(state["rng"], self.replicas)
        return state

    def _restore(self, state: dict[str, Any], restored: TextVAE) -> None:
        saved_world = state.get("world_size", 1)
        if saved_world != self.replicas.world_size:
            raise RunDirError(
                f"--resume: {self.run_dir} was trained by {saved_world} process(es), and this run has "
                f"{self.replicas.world_size}. Resume with the same number (textvae train --nproc {saved_world} … "
                "--resume): which sentences each process reads and each process's random stream depend on it. "
                "To change it, start a new run (--output elsewhere, or --overwrite).")
        self.model.load_state_dict(restored.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        for key in ("step", "epoch", "batch_in_epoch", "best_loss", "bad_evals", "nonfinite_total"):
            setattr(self, key, state[key])
        self.overflow_total = state.get("overflow_total", 0)
        set_rng_state(state.get("rng_by_rank", [state["rng"]])[self.replicas.rank])

    # ------------------------------------------------------------------ data position

    def _batches(self) -> Iterator[Any]:
        """Training batches forever, epoch after epoch, from the saved position on."""
        sampler: LengthBucketSampler = self.train_loader.batch_sampler
        while True:
            sampler.set_position(self.epoch, self.batch_in_epoch)
            for batch in self.train_loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0

    # ------------------------------------------------------------------ loop

    def fit(self) -> TrainResult:
        """Run setup (if not done) and train to ``train.max_steps`` or early stop.

        SIGINT (Ctrl-C) or SIGTERM ends the current step, saves a checkpoint and returns with
        ``interrupted=True``, without writing model/ (the checkpoint is what the run leaves, and
        ``--resume`` finishes it; ``textvae train`` exits 130 or 143, as the shell does for those
        signals); a second signal stops at once (KeyboardInterrupt) and keeps the last checkpoint.

        With fp16 (GradScaler), a step whose gradient overflows while the loss is finite is the
        scaler's normal business: it is skipped, the loss scale halves, and it is counted apart
        (``overflow_total``); only at a loss scale below 1, where fp16 range is no longer the
        explanation, does it count as non-finite.

        Raises:
            TrainingError: ``train.max_nonfinite`` steps in a row had a non-finite loss or
                gradient, or a write failed (full disk); the newest checkpoint is left intact.
        """
        if not hasattr(self, "model"):
            self.setup()
        r, cfg = self.recipe, self.recipe.train
        logger: Optional[MetricsLogger] = None
        if self.replicas.is_main:
            with self._writing(self.run_dir / "metrics.jsonl"):
                logger = MetricsLogger(self.run_dir, tensorboard=cfg.tensorboard, purge_step=self.step or None)
        save_every = cfg.save_every or cfg.eval_every
        start_time, start_step = time.perf_counter(), self.step
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not self.progress, desc="train",
                   dynamic_ncols=True)
        batches = self._batches()
        window = _Window()
        nonfinite_run, metrics = 0, {}
        interrupted: Optional[str] = None  # the stop signal's name
        previous_handlers = self._install_signal_handlers()
        self.model.train()
        world = self.replicas.world_size
        try:
            while self.step < cfg.max_steps:
                beta = kl_beta(r.objective.kl_schedule, self.step, cfg.max_steps)
                micro = [next(batches).to(self.device, non_blocking=True) for _ in range(cfg.grad_accum)]
                # (world, grad_accum): every rank's micro-batch sizes. The MMD gathers z by them, and
                # the step's sentence count is their total (global under DDP).
                sizes = gather_sizes([b.ids.shape[0] for b in micro], self.replicas, self.device)
                total_sentences = sum(map(sum, sizes))
                step_terms = []
                for i, batch in enumerate(micro):
                    with self._grad_sync(last=i == len(micro) - 1):
                        with self.precision.autocast():
                            out = self.train_model(batch.ids, batch.lengths, word_dropout=r.objective.word_dropout)
                        mmd_z, prior_z = self._global_mmd_samples(out.z, [row[i] for row in sizes])
                        terms = infovae_loss(out.rec, out.n_tokens, out.mu, out.logvar, out.z, r.objective, beta,
                                             prior_z=prior_z, mmd_z=mmd_z)
                        # Divide by the step's sentence count last: the gradient is the mean over
                        # every sentence of the step, whatever the micro-batch sizes. Under DDP the
                        # count is the global one and × world undoes DDP's average over ranks, so the
                        # ranks' gradients add up to the single-process gradient of the global batch
                        # (for the MMD term, which each rank counts globally, see infovae_loss).
                        self.scaler.scale(terms.loss * world / total_sentences).backward()
                    step_terms.append(terms)
                self.scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), cfg.clip_norm if cfg.clip_norm else float("inf"))
                # Summed over ranks, so all take the same decision (gradients are already all-reduced).
                loss_sum = all_reduce_sum(sum(t.loss.detach() for t in step_terms), self.replicas)
                loss_finite = bool(torch.isfinite(loss_sum))
                finite = loss_finite and bool(torch.isfinite(grad_norm))
                # fp16: an overflowing gradient of a finite loss is what the scaler is for, as long as
                # the scale is >= 1; below that, fp16 range does not explain it.
                overflow = (not finite and loss_finite and self.precision.use_scaler
                            and self.scaler.get_scale() >= 1.0)
                if finite:
                    self.scaler.step(self.optimizer)
                self.scaler.update()  # fp16: after an inf/NaN gradient (seen by unscale_) the scale halves
                self.optimizer.zero_grad(set_to_none=True)
                if finite:
                    nonfinite_run = 0
                    window.add(step_terms)
                elif overflow:
                    self.overflow_total += 1
                    self._say(f"step {self.step + 1}: fp16 gradient overflow; step skipped, loss scale lowered "
                              f"to {self.scaler.get_scale():g}.")
                else:
                    nonfinite_run += 1
                    self.nonfinite_total += 1
                    self._say(f"warning: step {self.step + 1}: non-finite loss or gradient "
                              f"(loss {loss_sum.item():.4g}, grad norm {grad_norm.item():.4g}); step skipped.")
                    if nonfinite_run >= cfg.max_nonfinite:
                        raise TrainingError(self._nonfinite_message(nonfinite_run))
                with warnings.catch_warnings():
                    # The schedule counts steps, taken or skipped; torch warns when the first was skipped.
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
                    self.scheduler.step()
                self.step += 1
                bar.update(1)

                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    row = window.flush(time.perf_counter() - start_time, self.replicas, r.objective.mmd_weight)
                    row.update(lr=self.scheduler.get_last_lr()[0], kl_beta=beta,
                               grad_norm=float(grad_norm), nonfinite_total=self.nonfinite_total)
                    if self.precision.use_scaler:
                        row.update(loss_scale=self.scaler.get_scale(), overflow_total=self.overflow_total)
                    if logger is not None:
                        with self._writing(logger.path):
                            logger.log(self.step, "train", row)
                    bar.set_postfix(loss=f"{row.get('loss', math.nan):.2f}", rec=f"{row.get('rec', math.nan):.2f}",
                                    kl=f"{row.get('kl', math.nan):.2f}", mmd=f"{row.get('mmd', math.nan):.4f}")
                stop_early = False
                if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                    metrics = self._validate()
                    self._say_validation(metrics)
                    if logger is not None:
                        with self._writing(logger.path):
                            logger.log(self.step, "valid", metrics)
                    stop_early = self._track_best(metrics)
                stop_signal = self._agreed_stop_signal()
                if self.step % save_every == 0 or stop_early or stop_signal:
                    self._save_checkpoint()
                if stop_early:
                    self._say(f"early stop at step {self.step}: no better validation loss in "
                              f"{cfg.patience} evaluations.")
                    break
                if stop_signal:
                    interrupted = stop_signal
                    self._say(f"{stop_signal} received: saved checkpoint at step {self.step}. "
                              f"Resume with: textvae train {self.run_dir / RECIPE_NAME} "
                              f"--output {self.run_dir} --resume")
                    break
        except KeyboardInterrupt:  # a second signal, or Ctrl-C outside the handlers' reach
            last = checkpoint_dirs(self.run_dir)
            self._say(f"stopped at once after step {self.step}, without saving it. " + (
                f"The newest checkpoint is {last[-1]}; resume with: textvae train {self.run_dir / RECIPE_NAME} "
                f"--output {self.run_dir} --resume" if last else "No checkpoint had been written yet."))
            raise
        finally:
            bar.close()
            if logger is not None:
                logger.close()
            self._restore_signal_handlers(previous_handlers)

        def write_model() -> Path:
            with self._writing(self.run_dir / MODEL_DIR):
                return write_model_dir(self.model, self.run_dir / MODEL_DIR, recipe_text=self.recipe_text)

        # An interrupted run leaves its checkpoint, not a model/ that looks finished.
        model_dir = None if interrupted else on_main(self.replicas, write_model)
        if not metrics and not interrupted:
            metrics = self._validate()
        seconds = time.perf_counter() - start_time
        best = self.run_dir / BEST_DIR
        summary = {"step": self.step, "seconds": seconds, "steps_this_session": self.step - start_step,
                   "interrupted": bool(interrupted), "nonfinite_steps": self.nonfinite_total,
                   "world_size": world, **numerics(), "precision": self._precision_used(),
                   "device": str(self.device), "valid": metrics, "data": self.data_stats}
        if interrupted:
            summary["stop_signal"] = interrupted
        if self.precision.use_scaler:
            summary["overflow_steps"] = self.overflow_total
        if self.replicas.enabled:
            summary["replicas"] = self._compare_replicas()

        def write_summary() -> None:
            from textvae.evaluation.report import write_report  # it reads training logs: imported late

            with self._writing(self.run_dir / "summary.json"):
                atomic_write_json(self.run_dir / "summary.json", summary)
                write_report([self.run_dir])

        on_main(self.replicas, write_summary)
        return TrainResult(self.run_dir, model_dir, best if best.is_dir() else None, self.step, metrics,
                           seconds, bool(interrupted), self.nonfinite_total, self.data_stats,
                           stop_signal=interrupted or None)

    # ------------------------------------------------------------------ ranks

    def _say(self, message: str) -> None:
        """Print on rank 0 only (what every rank knows, every rank would print)."""
        if self.replicas.is_main:
            tqdm.write(message)

    def _grad_sync(self, last: bool) -> ContextManager:
        """DDP all-reduces gradients in the backward of a step's last micro-batch only."""
        if self.replicas.enabled and not last:
            return self.train_model.no_sync()
        return nullcontext()

    def _global_mmd_samples(self, z: Optional[Tensor], sizes: list[int]) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """Under DDP, the MMD's samples for the global batch: every rank's z (this rank's with its
        graph) and as many prior samples, in one gather.

        Each rank draws the prior samples for its own rows from its own stream, so the estimator
        is the single-process one of the global batch whatever the number of processes. In one
        process: (None, None), and infovae_loss uses z and draws the prior itself.
        """
        if z is None or not self.replicas.enabled:
            return None, None
        prior = torch.randn(z.shape, device=z.device)
        both = all_gather_with_grad(torch.cat([z.float(), prior], dim=1), sizes)  # (N, 2D)
        return both[:, :z.shape[1]], both[:, z.shape[1]:]

    def _agreed_stop_signal(self) -> Optional[str]:
        """The stop signal this process received, if any; under DDP, if any rank received one, so
        that all stop after the same step."""
        if not self.replicas.enabled:
            return self._stop_signal
        flag = torch.tensor([float(self._stop_signal is not None)], device=self.device)
        if all_reduce_sum(flag, self.replicas).item() == 0:
            return None
        return self._stop_signal or "a stop signal (to another process)"

    def _save_checkpoint(self) -> None:
        state = self._state()  # collective under DDP: gathers every rank's RNG state

        def write() -> None:
            with self._writing(self.run_dir / CHECKPOINTS_DIR):
                save_checkpoint(self.model, state, self.run_dir, self.step, self.recipe.train.keep_checkpoints,
                                self.recipe_text)

        on_main(self.replicas, write)

    def _compare_replicas(self) -> dict[str, Any]:
        """Every rank's weights digest: DDP keeps replicas bitwise identical, and this checks it."""
        digests = all_gather_object(weights_digest(self.model), self.replicas)
        identical = len(set(digests)) == 1
        if not identical:
            self._say(f"warning: the {len(digests)} processes ended with different weights (SHA-256 "
                      f"{', '.join(d[:12] for d in digests)}); model/ holds rank 0's. Please report this.")
        return {"world_size": len(digests), "weights_sha256": digests, "identical": identical}

    # ------------------------------------------------------------------ validation and best model

    def _validate(self) -> dict[str, float]:
        """Rank 0 validates on the whole split (with the global batch size: the single-process
        numbers, AU and MI included) and hands the result to the others, which wait."""
        return on_main(self.replicas, lambda: validate(
            self.model, self.valid_loader, self.recipe.objective, self.device, self.precision.autocast(),
            self.recipe.train.eval_batches, seed=self.recipe.train.seed))

    def _say_validation(self, metrics: dict[str, float]) -> None:
        """One line per validation; the collapse warning the first time the latent is seen collapsed."""
        shown = [f"{k} {metrics[k]:.3f}" for k in ("loss", "rec", "kl", "mmd", "mi") if k in metrics]
        if "au" in metrics:
            shown.append(f"au {metrics['au']}")
        self._say(f"step {self.step} validation: " + "  ".join(shown))
        warning = collapse_warning(metrics, self.recipe)
        if warning and not self._warned_collapse:
            self._warned_collapse = True
            self._say(warning)

    def _track_best(self, metrics: dict[str, float]) -> bool:
        """Keep the best model by validation loss; True when patience has run out."""
        if metrics["loss"] < self.best_loss:
            self.best_loss, self.bad_evals = metrics["loss"], 0

            def write_best() -> None:
                with self._writing(self.run_dir / BEST_DIR):
                    write_model_dir(self.model, self.run_dir / BEST_DIR, recipe_text=self.recipe_text)

            on_main(self.replicas, write_best)
            return False
        self.bad_evals += 1
        patience = self.recipe.train.patience
        return patience is not None and self.bad_evals >= patience

    @contextmanager
    def _writing(self, target: Path) -> Iterator[None]:
        """Turn a failed write of ``target`` (full disk, no permission) into a TrainingError that
        says what was kept and how to go on."""
        try:
            yield
        except OSError as err:
            raise TrainingError(self._write_failed(target, err)) from err

    def _write_failed(self, target: Path, err: OSError) -> str:
        last = checkpoint_dirs(self.run_dir)
        if err.errno in DISK_FULL:
            why = f"the disk is full ({err.strerror})"
            fix = "Free some space (or lower train.keep_checkpoints, or move the run to a bigger disk)"
        else:
            why = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
            fix = "Fix that"
        if last:
            kept = f"The newest complete checkpoint is {last[-1]}."
            then = (f"then resume with: textvae train {self.run_dir / RECIPE_NAME} --output {self.run_dir} "
                    "--resume")
        else:
            kept = "No checkpoint had been written yet."
            then = "then start again with --overwrite"
        step = getattr(self, "step", 0)
        return (f"could not write {target} at step {step}: {why}. Nothing half-written was left in "
                f"its place. {kept} {fix}, {then}.")

    def _nonfinite_message(self, count: int) -> str:
        last = checkpoint_dirs(self.run_dir)
        kept = f"The last good checkpoint is {last[-1]}." if last else "No checkpoint had been written yet."
        return (f"training stopped at step {self.step + 1}: {count} steps in a row had a non-finite loss or "
                f"gradient. Likely causes: a learning rate too high (train.lr={self.recipe.train.lr}), no "
                "gradient clipping (train.clip_norm), fp16 overflow (try bf16), or an objective weight that "
                f"explodes (objective.lam). {kept} Change the recipe and train again into a new --output (or "
                "with --overwrite); --resume continues only the same recipe.")

    # ------------------------------------------------------------------ signals

    def _install_signal_handlers(self) -> dict[int, Any]:
        def handler(signum: int, frame: Any) -> None:
            # No printing here: a handler can run in the middle of another write to stdout.
            if self._stop_signal:  # a second signal: the user does not want to wait for the step
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Window:
    """Sums of the loss terms since the last log line; read (synced, and summed over ranks) only
    when logging."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.sentences = 0
        self.steps = 0

    def add(self, terms_list: list[Any]) -> None:
        for t in terms_list:
            for key in ("loss", "rec", "kl", "mmd"):
                value = getattr(t, key).detach()
                self.sums[key] = self.sums[key] + value if key in self.sums else value
            self.sums["tokens"] = self.sums.get("tokens", 0) + t.n_tokens
            self.sentences += t.n_sentences
        self.steps += 1

    def flush(self, elapsed: float, replicas: Replicas = Replicas(), mmd_weight: float = 0.0) -> dict[str, float]:
        """The window's means per sentence (and PPL per token) over every rank; collective under DDP.

        Args:
            mmd_weight: the objective's α+λ−1. Each rank's loss counts the gathered MMD for the
                whole global batch (see infovae_loss), so summed over W ranks it holds that term W
                times; the logged loss counts it once.
        """
        row: dict[str, float] = {"elapsed": elapsed}
        if self.sentences:  # the same on every rank: skipped steps are skipped everywhere
            keys = ("loss", "rec", "kl", "mmd", "tokens")
            device = self.sums["rec"].device
            local = torch.stack([torch.as_tensor(self.sums[k], device=device).to(torch.float64) for k in keys]
                                + [torch.tensor(float(self.sentences), dtype=torch.float64, device=device)])
            sums = dict(zip(keys + ("sentences",), all_reduce_sum(local, replicas).tolist()))
            sums["loss"] -= (replicas.world_size - 1) * mmd_weight * sums["mmd"]
            n = sums["sentences"]
            row.update({k: sums[k] / n for k in ("loss", "rec", "kl", "mmd")})
            row["tokens"] = int(sums["tokens"])
            row["ppl_rec"] = math.exp(min(sums["rec"] / max(row["tokens"], 1), 50.0))
        self.reset()
        return row


def train(recipe: Recipe, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
          progress: bool = True, threads: Optional[int] = None,
          allow_different_threads: bool = False) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` and return where the model is and its validation metrics.

    Args:
        threads: torch threads for this run (default: torch's, or on resume the run's recorded
            count, which keeps resuming bit-exact); the caller's count is restored afterwards.
        allow_different_threads: resume with ``threads`` other than the recorded count (the
            result then differs from an uninterrupted run).

    Under torchrun, every rank calls this; the process group is left when it returns.
    """
    threads_before = torch.get_num_threads()
    try:
        return Trainer(recipe, run_dir, resume=resume, overwrite=overwrite, progress=progress, threads=threads,
                       allow_different_threads=allow_different_threads).fit()
    finally:
        destroy_process_group()
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
