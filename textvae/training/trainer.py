"""The training recipe: setup → train (with validation and checkpoints) → final model.

Reads top to bottom like nanoGPT's train.py: data and tokenizer, model, optimizer and
schedules, then one loop that accumulates micro-batches, steps, logs, validates and saves.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from textvae.config import ConfigError, Recipe, dump_recipe, read_yaml, recipe_from_dict
from textvae.data import (LengthBucketSampler, TextTokenizer, corpus_report, load_corpus, make_loader,
                          tokenize_corpus)
from textvae.evaluation.validation import validate
from textvae.modeling import TextVAE, VocabSpec
from textvae.objectives import infovae_loss, kl_beta
from textvae.training.checkpoint import (CHECKPOINTS_DIR, CheckpointError, checkpoint_dirs, clean_leftovers,
                                         first_sentence, load_checkpoint, rng_state, save_checkpoint, set_aside,
                                         set_rng_state, write_model_dir)
from textvae.training.metrics import MetricsLogger
from textvae.training.precision import resolve_device, resolve_precision
from textvae.training.schedules import lr_multiplier
from textvae.utils.io import DISK_FULL, atomic_write_json, atomic_write_text

RECIPE_NAME = "recipe.yaml"
MODEL_DIR = "model"
BEST_DIR = "best"
# Keys that may differ when resuming: extending a run is a normal thing to do.
RESUMABLE_CHANGES = {("train", "max_steps"), ("train", "patience"), ("train", "eval_every"),
                     ("train", "save_every"), ("train", "log_every"), ("train", "keep_checkpoints"),
                     ("train", "tensorboard")}


class TrainingError(RuntimeError, TextVAEError):
    """Training cannot go on; the message says why and what was kept."""


class RunDirError(ValueError, TextVAEError):
    """The output directory cannot be used as asked; the message says which flag to pass."""


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path
    best_dir: Optional[Path]
    step: int
    metrics: dict[str, float]
    seconds: float
    interrupted: bool = False
    nonfinite_steps: int = 0
    data_stats: dict[str, Any] = field(default_factory=dict)


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

    Args:
        recipe: the validated recipe.
        run_dir: where recipe.yaml, metrics, checkpoints and the final model go.
        resume: continue from the newest checkpoint in ``run_dir``.
        overwrite: delete an existing run in ``run_dir`` first.
        progress: show a tqdm progress bar.
    """

    def __init__(self, recipe: Recipe, run_dir: str | Path, resume: bool = False,
                 overwrite: bool = False, progress: bool = True):
        self.recipe, self.run_dir = recipe, Path(run_dir)
        self.resume, self.progress = resume, progress
        prepare_run_dir(self.run_dir, recipe, resume, overwrite)
        self.recipe_text = dump_recipe(recipe)
        self._stop_signal: Optional[str] = None

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        r, cfg = self.recipe, self.recipe.train
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        for path in clean_leftovers(self.run_dir):
            tqdm.write(f"removed {path}, left over by an interrupted write.")
        self.checkpoint, restored = self._find_checkpoint() if self.resume else (None, None)

        corpus = load_corpus(r.data, seed=cfg.seed)
        if restored is not None:  # the exact tokenizer the run started with
            self.tokenizer = restored[1].tokenizer
        else:
            self.tokenizer = TextTokenizer.train(r.tokenizer, corpus["train"]["text"])
        self.corpus, self.data_stats = tokenize_corpus(corpus, self.tokenizer, r.data)
        # What loading and tokenization dropped (blank lines, label-only lines, too long), said
        # once on the console and kept in data_stats.json.
        tqdm.write(corpus_report(corpus, self.data_stats))
        for split, dropped in corpus.dropped.items():
            if split in self.data_stats:
                self.data_stats[split]["dropped_on_load"] = dict(dropped)
        vocab = VocabSpec(self.tokenizer.vocab_size, self.tokenizer.pad_id, self.tokenizer.bos_id,
                          self.tokenizer.eos_id, self.tokenizer.unk_id)

        self.model = TextVAE(r.model, vocab, self.tokenizer).to(self.device)
        self.optimizer = self._optimizer()
        self._check_free_space()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_multiplier(cfg))
        self.scaler = self.precision.grad_scaler()
        self.train_loader = make_loader(self.corpus["train"], self.tokenizer, cfg.batch_size, shuffle=True,
                                        seed=cfg.seed, bucket=cfg.bucket, num_workers=cfg.num_workers)
        # A DataLoader draws a base seed from the global RNG each time it starts a pass; a private
        # generator keeps that draw out of the training RNG stream, so resuming mid-epoch is exact.
        self.train_loader.generator = torch.Generator().manual_seed(cfg.seed)
        self.valid_loader = make_loader(self.corpus["validation"], self.tokenizer, cfg.batch_size,
                                        shuffle=False, seed=cfg.seed, bucket=cfg.bucket,
                                        num_workers=cfg.num_workers)
        self.valid_loader.generator = torch.Generator().manual_seed(cfg.seed)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_loss, self.bad_evals, self.nonfinite_total = math.inf, 0, 0
        if restored is not None:
            self._restore(*restored)
        else:
            with self._writing(self.run_dir / RECIPE_NAME):
                atomic_write_text(self.run_dir / RECIPE_NAME, self.recipe_text)
                atomic_write_json(self.run_dir / "data_stats.json", self.data_stats)

    def _find_checkpoint(self) -> tuple[Path, tuple[dict[str, Any], TextVAE]]:
        """The newest checkpoint that reads back whole, and its (trainer state, model).

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
                tqdm.write(f"warning: --resume: {checkpoint} is damaged and was moved to {moved}: {why} "
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
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _state(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "best_loss": self.best_loss, "bad_evals": self.bad_evals,
                "nonfinite_total": self.nonfinite_total,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": rng_state()}

    def _restore(self, state: dict[str, Any], restored: TextVAE) -> None:
        self.model.load_state_dict(restored.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        for key in ("step", "epoch", "batch_in_epoch", "best_loss", "bad_evals", "nonfinite_total"):
            setattr(self, key, state[key])
        set_rng_state(state["rng"])

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

        SIGINT (Ctrl-C) or SIGTERM ends the current step, saves a checkpoint, writes model/ and
        returns normally with ``interrupted=True`` (``textvae train`` exits 0 and says how to
        resume); a second signal stops at once (KeyboardInterrupt) and keeps the last checkpoint.

        Raises:
            TrainingError: ``train.max_nonfinite`` steps in a row had a non-finite loss or
                gradient, or a write failed (full disk); the newest checkpoint is left intact.
        """
        if not hasattr(self, "model"):
            self.setup()
        r, cfg = self.recipe, self.recipe.train
        with self._writing(self.run_dir / "metrics.jsonl"):
            logger = MetricsLogger(self.run_dir, tensorboard=cfg.tensorboard, purge_step=self.step or None)
        save_every = cfg.save_every or cfg.eval_every
        start_time, start_step = time.perf_counter(), self.step
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not self.progress, desc="train",
                   dynamic_ncols=True)
        batches = self._batches()
        window = _Window()
        nonfinite_run, metrics, interrupted = 0, {}, False
        previous_handlers = self._install_signal_handlers()
        self.model.train()
        try:
            while self.step < cfg.max_steps:
                beta = kl_beta(r.objective.kl_schedule, self.step, cfg.max_steps)
                micro = [next(batches).to(self.device) for _ in range(cfg.grad_accum)]
                total_sentences = sum(b.ids.shape[0] for b in micro)
                step_terms = []
                for batch in micro:
                    with self.precision.autocast():
                        out = self.model(batch.ids, batch.lengths, word_dropout=r.objective.word_dropout)
                    terms = infovae_loss(out.rec, out.n_tokens, out.mu, out.logvar, out.z, r.objective, beta)
                    # Divide by the step's sentence count last: the gradient is the mean over
                    # every sentence of the step, whatever the micro-batch sizes.
                    self.scaler.scale(terms.loss / total_sentences).backward()
                    step_terms.append(terms)
                self.scaler.unscale_(self.optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    self.model.parameters(), cfg.clip_norm if cfg.clip_norm else float("inf"))
                loss_sum = sum(t.loss.detach() for t in step_terms)
                finite = bool(torch.isfinite(loss_sum) & torch.isfinite(grad_norm))
                if finite or self.precision.use_scaler:
                    # With fp16 the scaler itself skips steps with inf/NaN gradients.
                    self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                if not finite:
                    nonfinite_run += 1
                    self.nonfinite_total += 1
                    tqdm.write(f"warning: step {self.step + 1}: non-finite loss or gradient "
                               f"(loss {loss_sum.item():.4g}, grad norm {grad_norm.item():.4g}); step skipped.")
                    if nonfinite_run >= cfg.max_nonfinite and not self.precision.use_scaler:
                        raise TrainingError(self._nonfinite_message(nonfinite_run))
                else:
                    nonfinite_run = 0
                    window.add(step_terms)
                self.scheduler.step()
                self.step += 1
                bar.update(1)

                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    row = window.flush(elapsed=time.perf_counter() - start_time)
                    row.update(lr=self.scheduler.get_last_lr()[0], kl_beta=beta,
                               grad_norm=float(grad_norm), nonfinite_total=self.nonfinite_total)
                    with self._writing(logger.path):
                        logger.log(self.step, "train", row)
                    bar.set_postfix(loss=f"{row.get('loss', math.nan):.2f}", rec=f"{row.get('rec', math.nan):.2f}",
                                    kl=f"{row.get('kl', math.nan):.2f}", mmd=f"{row.get('mmd', math.nan):.4f}")
                stop_early = False
                if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps:
                    metrics = self._validate()
                    with self._writing(logger.path):
                        logger.log(self.step, "valid", metrics)
                    stop_early = self._track_best(metrics)
                if self.step % save_every == 0 or stop_early or self._stop_signal:
                    with self._writing(self.run_dir / CHECKPOINTS_DIR):
                        save_checkpoint(self.model, self._state(), self.run_dir, self.step, cfg.keep_checkpoints,
                                        self.recipe_text)
                if stop_early:
                    tqdm.write(f"early stop at step {self.step}: no better validation loss in "
                               f"{cfg.patience} evaluations.")
                    break
                if self._stop_signal:
                    interrupted = True
                    tqdm.write(f"{self._stop_signal} received: saved checkpoint at step {self.step}. "
                               f"Resume with: textvae train {self.run_dir / RECIPE_NAME} "
                               f"--output {self.run_dir} --resume")
                    break
        except KeyboardInterrupt:  # a second signal, or Ctrl-C outside the handlers' reach
            last = checkpoint_dirs(self.run_dir)
            tqdm.write(f"stopped at once after step {self.step}, without saving it. " + (
                f"The newest checkpoint is {last[-1]}; resume with: textvae train {self.run_dir / RECIPE_NAME} "
                f"--output {self.run_dir} --resume" if last else "No checkpoint had been written yet."))
            raise
        finally:
            bar.close()
            logger.close()
            self._restore_signal_handlers(previous_handlers)

        with self._writing(self.run_dir / MODEL_DIR):
            model_dir = write_model_dir(self.model, self.run_dir / MODEL_DIR, recipe_text=self.recipe_text)
        if not metrics:
            metrics = self._validate()
        seconds = time.perf_counter() - start_time
        best = self.run_dir / BEST_DIR
        summary = {"step": self.step, "seconds": seconds, "steps_this_session": self.step - start_step,
                   "interrupted": interrupted, "nonfinite_steps": self.nonfinite_total,
                   "valid": metrics, "data": self.data_stats}
        from textvae.evaluation.report import write_report  # it reads training logs: imported late

        with self._writing(self.run_dir / "summary.json"):
            atomic_write_json(self.run_dir / "summary.json", summary)
            write_report([self.run_dir])
        return TrainResult(self.run_dir, model_dir, best if best.is_dir() else None, self.step, metrics,
                           seconds, interrupted, self.nonfinite_total, self.data_stats)

    def _validate(self) -> dict[str, float]:
        return validate(self.model, self.valid_loader, self.recipe.objective, self.device,
                        self.precision.autocast(), self.recipe.train.eval_batches, seed=self.recipe.train.seed)

    def _track_best(self, metrics: dict[str, float]) -> bool:
        """Keep the best model by validation loss; True when patience has run out."""
        if metrics["loss"] < self.best_loss:
            self.best_loss, self.bad_evals = metrics["loss"], 0
            with self._writing(self.run_dir / BEST_DIR):
                write_model_dir(self.model, self.run_dir / BEST_DIR, recipe_text=self.recipe_text)
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
    """Sums of the loss terms since the last log line; read (synced) only when logging."""

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

    def flush(self, elapsed: float) -> dict[str, float]:
        row: dict[str, float] = {"elapsed": elapsed}
        if self.sentences:
            n = self.sentences
            row.update({k: v.item() / n for k, v in self.sums.items() if k != "tokens"})
            row["tokens"] = int(self.sums["tokens"])
            row["ppl_rec"] = math.exp(min(self.sums["rec"].item() / max(row["tokens"], 1), 50.0))
        self.reset()
        return row


def train(recipe: Recipe, run_dir: str | Path, resume: bool = False, overwrite: bool = False,
          progress: bool = True) -> TrainResult:
    """Train ``recipe`` into ``run_dir`` and return where the model is and its validation metrics."""
    return Trainer(recipe, run_dir, resume=resume, overwrite=overwrite, progress=progress).fit()
