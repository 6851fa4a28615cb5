"""The training recipe: setup → train step → validate → save, then the final model.

Reads top to bottom like a torchtune recipe. What a run directory may hold and what to say
when it cannot be used lives in :mod:`textvae.training.runs`; signals in
:mod:`textvae.training.signals`; the resumable counters in :mod:`textvae.training.state`; the
rules of aggressive inference-network training (``objective.aggressive``: encoder-only updates
before each decoder update) in :mod:`textvae.training.aggressive`; the Langevin chains' noise
stream and terms (short-run inference, energy-based prior) in :mod:`textvae.training.chains`.

Under torchrun (``textvae train --nproc N``) the same loop runs on every rank with
DistributedDataParallel: ``train.batch_size`` is the global batch, rank 0 logs and writes while
the others wait for it, and rank 0 alone validates (on the whole validation split, with the
global batch size, so the numbers are the single-process ones) and hands the result to the others.

Over 400 lines because setup, the loop, one step, validation and saving stay in the one class a
reader follows top to bottom; everything around them lives in the modules named above.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ContextManager, Iterator, Optional

import torch
from safetensors.torch import load_model
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from textvae.config import Recipe, dump_recipe
from textvae.data import LengthBucketSampler
from textvae.evaluation.report import write_report
from textvae.evaluation.validation import validate
from textvae.inference.api import TextVAE
from textvae.inference.generation_config import GenerationDefaults
from textvae.modeling import VocabSpec
from textvae.objectives import LossTerms, infovae_loss, kl_beta, warmup_end
from textvae.training.aggressive import end_message, mi_rose, run_inner_loop, split_parameters
from textvae.training.builders import make_loaders, make_optimizer, prepare_data
from textvae.training.chains import chain_generator, chain_terms, refuse_data_parallel
from textvae.training.checkpoint import (checkpoint_dirs, clean_leftovers, load_checkpoint, rng_state,
                                         save_checkpoint, set_rng_state, write_model_dir)
from textvae.training.collapse import collapse_warning
from textvae.training.distributed import (all_gather_object, all_reduce_sum, compare_replicas,
                                          destroy_process_group, gather_sizes, global_mmd_samples,
                                          init_process_group, local_batch_size, on_main, replicas_from_env)
from textvae.training.init_from import load_init, load_source, source_tokenizer
from textvae.training.numerics import numerics, precision_used, say_numerics, set_threads
from textvae.training.plateau import decay_factor, plateau_action
from textvae.training.runs import (BEST_DIR, CHECKPOINTS_DIR, MODEL_DIR, RECIPE_NAME, check_free_space,
                                   nonfinite_message, prepare_run_dir, recorded_numerics, resume_command,
                                   search_checkpoints, writing)
from textvae.training.schedules import lr_multiplier
from textvae.training.signals import StopSignals
from textvae.training.state import TrainerState, TrainResult
from textvae.training.window import LogWindow
from textvae.utils.io import atomic_write_json, atomic_write_text
from textvae.utils.layout import WEIGHTS_NAME
from textvae.utils.metrics import MetricsLogger
from textvae.utils.precision import flush_denormals, resolve_device, resolve_precision
from textvae.utils.seeding import seed_everything
from textvae.errors import ConfigError, RunError

__all__ = ["BEST_DIR", "CHECKPOINTS_DIR", "MODEL_DIR", "RECIPE_NAME", "TrainResult", "Trainer", "seed_everything",
           "train"]


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
        threads: torch threads (default: torch's; on resume, the count the run recorded).
        allow_different_threads: resume with ``threads`` other than the recorded count.
    Raises:
        ConfigError: the number of processes does not divide ``train.batch_size``, or several
            processes were asked for aggressive inference training.
    """

    def __init__(self, recipe: Recipe, run_dir: str | Path, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, threads: Optional[int] = None,
                 allow_different_threads: bool = False):
        self.recipe, self.run_dir = recipe, Path(run_dir)
        if threads is not None and threads < 1:
            raise RunError(f"--threads must be >= 1, got {threads}.")
        self.threads_asked, self.allow_different_threads = threads, allow_different_threads
        # Checked before joining the process group: every rank stops with this message at once.
        self.replicas = replicas_from_env()
        if recipe.objective.aggressive.enabled and self.replicas.enabled:
            raise ConfigError(
                "objective.aggressive.enabled=true is not supported with --nproc > 1 (each process would "
                "stop its encoder-only updates after its own number of them, and DDP needs every process to "
                "run the same backward passes); train it in one process.")
        refuse_data_parallel(recipe, self.replicas)
        self.local_batch = local_batch_size(recipe.train.batch_size, self.replicas.world_size)
        self.device = init_process_group(self.replicas, resolve_device(recipe.train.device))
        # Before the run directory is touched: a precision this CPU cannot run well stops here.
        # Rank 0 decides and every rank follows: auto's timing, taken by each process at once on shared
        # cores, could otherwise come out either side of its threshold on different ranks.
        chosen = on_main(self.replicas, lambda: resolve_precision(
            recipe.train.precision, self.device, threads=threads,
            resumed=recorded_numerics(self.run_dir).get("precision") if resume else None).name)
        self.precision = resolve_precision(chosen, self.device)
        self.resume, self.progress = resume, progress and self.replicas.is_main
        on_main(self.replicas, lambda: prepare_run_dir(self.run_dir, recipe, resume, overwrite))
        self.recipe_text = dump_recipe(recipe)
        self.state = TrainerState(world_size=self.replicas.world_size,
                                  aggressive_active=recipe.objective.aggressive.enabled)
        self.signals = StopSignals()
        self._warned_collapse = False
        self._set_up = False

    # ================================================================== setup

    def setup(self) -> None:
        """Threads and precision, data and tokenizer, model, optimizer, loaders; on resume, the
        checkpoint's state. Called by :meth:`fit` when not called before."""
        r, cfg = self.recipe, self.recipe.train
        # Each rank its own stream (dropout, z noise); rank 0's is the single-process one, so it
        # builds the same initial model, which DDP then copies to every rank.
        seed_everything(cfg.seed + self.replicas.rank)
        # Threads first: the denormal flush reaches only the worker threads started after it.
        recorded = recorded_numerics(self.run_dir) if self.resume else {}
        set_threads(self.threads_asked, recorded, self.allow_different_threads, self.run_dir, self._say)
        if cfg.flush_denormal:
            flush_denormals(self.device)
        say_numerics(self.device, self.precision, r, recorded, self._say)
        for path in on_main(self.replicas, lambda: clean_leftovers(self.run_dir)):
            self._say(f"removed {path}, left over by an interrupted write.")
        restored = self._find_checkpoint() if self.resume else None

        # train.init_from is read once, before the corpus: its tokenizer numbers this run's tokens
        # and its weights fill the model (on resume the checkpoint's win, and it is not read).
        source = load_source(cfg) if cfg.init_from and restored is None else None
        tokenizer = (restored[1].tokenizer if restored is not None
                     else source_tokenizer(source, cfg) if source is not None else None)
        self.corpus, self.tokenizer, self.data_stats = prepare_data(r, self.replicas, tokenizer, self._say)
        vocab = VocabSpec(self.tokenizer.vocab_size, self.tokenizer.pad_id, self.tokenizer.bos_id,
                          self.tokenizer.eos_id, self.tokenizer.unk_id)

        # The model records the training data's longest sentence as its default decoding limit.
        self.model = TextVAE(r.model, vocab, self.tokenizer,
                             GenerationDefaults.from_data_stats(self.data_stats)).to(self.device)
        if source is not None:
            load_init(self.model, source, cfg, self._say)
        self.optimizer = make_optimizer(self.model, cfg, r.model.ebm.lr if r.model.prior == "ebm" else None)
        on_main(self.replicas, lambda: check_free_space(self.run_dir, self.model, r))
        scheduled = lr_multiplier(cfg)
        # The plateaus' decays multiply the schedule; read from the state at each step, so a resumed
        # run's rate follows from its counters.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: scheduled(step) * decay_factor(cfg, self.state))
        self.scaler = self.precision.grad_scaler()
        self.chain_generator = chain_generator(r, self.device, self.replicas.rank)
        self.train_loader, self.valid_loader = make_loaders(self.corpus, self.tokenizer, cfg, self.replicas,
                                                            self.local_batch, self.device)
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
        self._set_up = True

    def _find_checkpoint(self) -> tuple[dict[str, Any], TextVAE]:
        """The newest checkpoint that reads back whole: (trainer state, model). Rank 0 searches
        (setting damaged checkpoints aside); the other ranks read the one it chose."""
        found: dict[str, Any] = {}

        def search() -> Path:
            path, found["loaded"] = search_checkpoints(self.run_dir, self.device, self._say)
            return path

        path = on_main(self.replicas, search)
        return found.get("loaded") or load_checkpoint(path, device=self.device)

    def checkpoint_state(self) -> dict[str, Any]:
        """The trainer state of a checkpoint. Collective under DDP: every rank's RNG state is kept."""
        state = {**self.state.to_dict(), "numerics": {**numerics(), "precision": precision_used(self.precision, self.recipe)},
                 "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "scaler": self.scaler.state_dict(), "rng": rng_state()}
        if self.chain_generator is not None:
            state["chain_rng"] = self.chain_generator.get_state()
        if self.replicas.enabled:
            state["rng_by_rank"] = all_gather_object(state["rng"], self.replicas)
        return state

    def _restore(self, state: dict[str, Any], restored: TextVAE) -> None:
        saved_world = state.get("world_size", 1)
        if saved_world != self.replicas.world_size:
            raise RunError(
                f"--resume: {self.run_dir} was trained by {saved_world} process(es), and this run has "
                f"{self.replicas.world_size}. Resume with the same number (textvae train --nproc {saved_world} … "
                "--resume): which sentences each process reads and each process's random stream depend on it. "
                "To change it, start a new run (--output elsewhere, or --overwrite).")
        self.model.load_state_dict(restored.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = TrainerState.from_dict(state)
        set_rng_state(state.get("rng_by_rank", [state["rng"]])[self.replicas.rank])
        if self.chain_generator is not None and "chain_rng" in state:
            self.chain_generator.set_state(state["chain_rng"])

    # ================================================================== the loop

    def fit(self) -> TrainResult:
        """Run setup (if not done) and train to ``train.max_steps`` or early stop.

        SIGINT (Ctrl-C) or SIGTERM ends the current step, saves a checkpoint and returns with
        ``interrupted=True``, without writing model/ (the checkpoint is what the run leaves, and
        ``--resume`` finishes it; ``textvae train`` exits 130 or 143, as the shell does for those
        signals); a second signal stops at once (KeyboardInterrupt) and keeps the last checkpoint.

        Raises:
            RunError: ``train.max_nonfinite`` steps in a row had a non-finite loss or
                gradient, or a write failed (full disk); the newest checkpoint is left intact.
        """
        if not self._set_up:
            self.setup()
        r, cfg, s = self.recipe, self.recipe.train, self.state
        logger: Optional[MetricsLogger] = None
        if self.replicas.is_main:
            with self._writing(self.run_dir / "metrics.jsonl"):
                logger = MetricsLogger(self.run_dir, tensorboard=cfg.tensorboard, purge_step=s.step or None)
        save_every = cfg.save_every or cfg.eval_every
        start_time, start_step = time.perf_counter(), s.step
        bar = tqdm(total=cfg.max_steps, initial=s.step, disable=not self.progress, desc="train", dynamic_ncols=True)
        batches, window = self._batches(), LogWindow()
        nonfinite_run, metrics = 0, {}
        aggressive = r.objective.aggressive
        # Encoder updates before each step's decoder update, since the last log row (aggressive only).
        inner_counts: list[int] = []
        encoder_params, decoder_params = split_parameters(self.model) if aggressive.enabled else (None, None)
        interrupted: Optional[str] = None  # the stop signal's name
        self.model.train()
        try:
            with self.signals:
                while s.step < cfg.max_steps:
                    beta = kl_beta(r.objective.kl_schedule, s.step, cfg.max_steps)
                    params = None  # all
                    if aggressive.enabled and s.aggressive_active:
                        # He et al. 2019: the encoder catches up with the decoder, then the decoder steps alone.
                        inner_counts.append(run_inner_loop(
                            lambda: self._encoder_step(batches, beta, encoder_params), aggressive))
                        params = decoder_params
                    elif aggressive.enabled:
                        inner_counts.append(0)
                    step_terms, grad_norm, finite, overflow, loss_sum = self.train_step(batches, beta, params)
                    if finite:
                        nonfinite_run = 0
                        window.add(step_terms)
                    elif overflow:
                        s.overflow_total += 1
                        self._say(f"step {s.step + 1}: fp16 gradient overflow; step skipped, loss scale lowered "
                                  f"to {self.scaler.get_scale():g}.")
                    else:
                        nonfinite_run += 1
                        s.nonfinite_total += 1
                        self._say(f"warning: step {s.step + 1}: non-finite loss or gradient "
                                  f"(loss {loss_sum.item():.4g}, grad norm {grad_norm.item():.4g}); step skipped.")
                        if nonfinite_run >= cfg.max_nonfinite:
                            raise RunError(nonfinite_message(self.run_dir, s.step + 1, nonfinite_run, cfg.lr))
                    with warnings.catch_warnings():
                        # The schedule counts steps, taken or skipped; torch warns when the first was skipped.
                        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
                        self.scheduler.step()
                    s.step += 1
                    bar.update(1)

                    if s.step % cfg.log_every == 0 or s.step == cfg.max_steps:
                        row = self._log_row(window, start_time, beta, grad_norm)
                        if aggressive.enabled:
                            row["inner_steps"] = sum(inner_counts) / max(len(inner_counts), 1)
                            inner_counts.clear()
                        if logger is not None:
                            with self._writing(logger.path):
                                logger.log(s.step, "train", row)
                        bar.set_postfix(loss=f"{row.get('loss', math.nan):.2f}", rec=f"{row.get('rec', math.nan):.2f}",
                                        kl=f"{row.get('kl', math.nan):.2f}", mmd=f"{row.get('mmd', math.nan):.4f}")
                    stop_early = False
                    if s.step % cfg.eval_every == 0 or s.step == cfg.max_steps:
                        metrics = self.validate()
                        if logger is not None:
                            with self._writing(logger.path):
                                logger.log(s.step, "valid", metrics)
                        stop_early = self._after_validation(metrics)
                        if aggressive.enabled and s.aggressive_active:
                            self._track_aggressive(metrics)
                    stop_signal = self.signals.agreed(self.replicas, self.device)
                    if s.step % save_every == 0 or stop_early or stop_signal:
                        self.save_checkpoint()
                    if stop_early:
                        after = f" after {s.lr_decays} learning-rate decays" if cfg.lr_decay is not None else ""
                        self._say(f"early stop at step {s.step}: no better validation {cfg.monitor} in "
                                  f"{cfg.patience} evaluations{after}; the best was at step {s.best_step}.")
                        break
                    if stop_signal:
                        interrupted = stop_signal
                        self._say(f"{stop_signal} received: saved checkpoint at step {s.step}. "
                                  f"Resume with: {resume_command(self.run_dir)}")
                        break
        except KeyboardInterrupt:  # a second signal, or Ctrl-C outside the handlers' reach
            last = checkpoint_dirs(self.run_dir)
            self._say(f"stopped at once after step {s.step}, without saving it. " + (
                f"The newest checkpoint is {last[-1]}; resume with: {resume_command(self.run_dir)}"
                if last else "No checkpoint had been written yet."))
            raise
        finally:
            bar.close()
            if logger is not None:
                logger.close()
        return self._finish(metrics, interrupted, start_time, start_step)

    def _batches(self) -> Iterator[Any]:
        """Training batches forever, epoch after epoch, from the saved position on."""
        sampler: LengthBucketSampler = self.train_loader.batch_sampler
        s = self.state
        while True:
            sampler.set_position(s.epoch, s.batch_in_epoch)
            for batch in self.train_loader:
                s.batch_in_epoch += 1
                yield batch
            s.epoch, s.batch_in_epoch = s.epoch + 1, 0

    # ================================================================== one step

    def train_step(self, batches: Iterator[Any], beta: float, params: Optional[list[torch.nn.Parameter]] = None
                   ) -> tuple[list[LossTerms], Tensor, bool, bool, Tensor]:
        """Forward and backward over ``train.grad_accum`` micro-batches, then one optimizer step
        unless the loss or gradient is non-finite.

        ``params`` (aggressive training's encoder- or decoder-only updates) limits the step to
        those parameters: the backward pass gives no other one a ``.grad``, and the optimizer
        skips a parameter without one, so the others and their optimizer state (AdamW moments and
        weight decay included) stay as they were. None: every parameter.

        With fp16 (GradScaler), a step whose gradient overflows while the loss is finite is the
        scaler's normal business: it is skipped and the loss scale halves (``overflow``); only at
        a loss scale below 1, where fp16 range is no longer the explanation, is it non-finite.

        Returns:
            the micro-batches' loss terms, the gradient norm, whether the step was taken, whether
            it was an fp16 overflow, and the loss summed over micro-batches (and ranks).
        """
        r, cfg, world = self.recipe, self.recipe.train, self.replicas.world_size
        micro = [next(batches).to(self.device, non_blocking=True) for _ in range(cfg.grad_accum)]
        # (world, grad_accum): every rank's micro-batch sizes. The MMD gathers z by them, and the
        # step's sentence count is their total (global under DDP).
        sizes = gather_sizes([b.ids.shape[0] for b in micro], self.replicas, self.device)
        total_sentences = sum(map(sum, sizes))
        step_terms = []
        for i, batch in enumerate(micro):
            with self._grad_sync(last=i == len(micro) - 1):
                with self.precision.autocast():
                    chains = {} if self.chain_generator is None else {"chain_generator": self.chain_generator}
                    out = self.train_model(batch.ids, batch.lengths, word_dropout=r.objective.word_dropout, **chains)
                mmd_z, prior_z = global_mmd_samples(out.z, [row[i] for row in sizes], self.replicas)
                terms = infovae_loss(out.rec, out.n_tokens, out.mu, out.logvar, out.z, r.objective, beta,
                                     prior_z=prior_z if out.prior_z is None else out.prior_z, mmd_z=mmd_z,
                                     **chain_terms(out, r))
                # Divide by the step's sentence count last: the gradient is the mean over every
                # sentence of the step, whatever the micro-batch sizes. Under DDP the count is the
                # global one and × world undoes DDP's average over ranks, so the ranks' gradients
                # add up to the single-process gradient of the global batch (for the MMD term,
                # which each rank counts globally, see infovae_loss).
                self.scaler.scale(terms.loss * world / total_sentences).backward(inputs=params)
            step_terms.append(terms)
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), cfg.clip_norm if cfg.clip_norm else float("inf"))
        # Summed over ranks, so all take the same decision (gradients are already all-reduced).
        loss_sum = all_reduce_sum(sum(t.loss.detach() for t in step_terms), self.replicas)
        loss_finite = bool(torch.isfinite(loss_sum))
        finite = loss_finite and bool(torch.isfinite(grad_norm))
        overflow = not finite and loss_finite and self.precision.use_scaler and self.scaler.get_scale() >= 1.0
        if finite:
            self.scaler.step(self.optimizer)
        self.scaler.update()  # fp16: after an inf/NaN gradient (seen by unscale_) the scale halves
        self.optimizer.zero_grad(set_to_none=True)
        return step_terms, grad_norm, finite, overflow, loss_sum

    def _encoder_step(self, batches: Iterator[Any], beta: float,
                      encoder_params: list[torch.nn.Parameter]) -> tuple[Tensor, Tensor]:
        """One update of the encoder and Gaussian head alone (aggressive training's inner loop), on
        the next batches: its loss summed over sentences and its token count. A non-finite step is
        skipped, as in :meth:`train_step`, without counting against ``train.max_nonfinite``; its
        loss makes its window's non-finite, which ends the inner loop at the window's end."""
        step_terms, _, _, _, loss_sum = self.train_step(batches, beta, encoder_params)
        return loss_sum, sum(t.n_tokens for t in step_terms)

    def _grad_sync(self, last: bool) -> ContextManager:
        """DDP all-reduces gradients in the backward of a step's last micro-batch only."""
        if self.replicas.enabled and not last:
            return self.train_model.no_sync()
        return nullcontext()

    def _log_row(self, window: LogWindow, start_time: float, beta: float, grad_norm: Tensor) -> dict[str, float]:
        row = window.flush(time.perf_counter() - start_time, self.replicas, self.recipe.objective.mmd_weight)
        row.update(lr=self.scheduler.get_last_lr()[0], kl_beta=beta, grad_norm=float(grad_norm),
                   nonfinite_total=self.state.nonfinite_total)
        if self.precision.use_scaler:
            row.update(loss_scale=self.scaler.get_scale(), overflow_total=self.state.overflow_total)
        return row

    # ================================================================== validate

    def validate(self) -> dict[str, float]:
        """Rank 0 validates on the whole split (with the global batch size: the single-process
        numbers, AU and MI included) and hands the result to the others, which wait. Said on the
        console, with a collapse warning the first time the latent is seen collapsed."""
        metrics = on_main(self.replicas, lambda: validate(
            self.model, self.valid_loader, self.recipe.objective, self.device, self.precision.autocast(),
            self.recipe.train.eval_batches, seed=self.recipe.train.seed))
        keys = ("loss", "rec", "kl", "mmd", "mi") if self.model.is_vae else ("loss",)  # an LM: its NLL
        shown = [f"{k} {metrics[k]:.3f}" for k in keys if k in metrics]
        if "au" in metrics and self.model.is_vae:
            shown.append(f"au {metrics['au']}")
        if self.recipe.train.monitor != "loss" and self.model.is_vae:  # the figure that picks best/
            shown.append(f"{self.recipe.train.monitor} {metrics[self.recipe.train.monitor]:.3f}")
        self._say(f"step {self.state.step} validation: " + "  ".join(shown))
        warning = collapse_warning(metrics, self.recipe)
        if warning and not self._warned_collapse:
            self._warned_collapse = True
            self._say(warning)
        return metrics

    def _after_validation(self, metrics: dict[str, float]) -> bool:
        """Keep the best model by the validation ``train.monitor``, restart from it at a lower rate
        at a plateau (``train.lr_decay``); True when the run should stop."""
        s, cfg = self.state, self.recipe.train
        counts = s.step >= warmup_end(self.recipe.objective.kl_schedule, cfg.max_steps)
        action = plateau_action(s, metrics[cfg.monitor], cfg, counts)
        if action == "best":
            on_main(self.replicas, lambda: self._write_model(BEST_DIR))
        elif action == "decay":
            self._restart_from_best()
        return action == "stop"

    def _restart_from_best(self) -> None:
        """He et al. 2019's plateau step: the best weights and the lower rate; the optimizer's state
        kept or cleared (``train.restart_optimizer``)."""
        s, cfg = self.state, self.recipe.train
        load_model(self.model, str(self.run_dir / BEST_DIR / WEIGHTS_NAME), device=str(self.device))
        if cfg.restart_optimizer == "reset":
            self.optimizer.state.clear()
        # The scheduler set this step's rate before the plateau was known; the next step uses the new one.
        factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * factor
        self._say(f"step {s.step}: no better validation {cfg.monitor} in {cfg.patience} evaluations: restarting "
                  f"from the best model (step {s.best_step}, {cfg.monitor} {s.best_loss:.3f}) with "
                  f"{'a fresh optimizer' if cfg.restart_optimizer == 'reset' else 'the optimizer state kept'} "
                  f"at lr {self.optimizer.param_groups[0]['lr']:.3g} "
                  f"(decay {s.lr_decays} of {cfg.max_lr_decays}).")

    def _track_aggressive(self, metrics: dict[str, float]) -> None:
        """End aggressive training for good at a validation whose MI did not rise (He et al. 2019)."""
        s = self.state
        if not mi_rose(s.previous_valid_mi, metrics["mi"]):
            s.aggressive_active, s.aggressive_end_step = False, s.step
            self._say(end_message(s.step, s.previous_valid_mi, metrics["mi"]))
        s.previous_valid_mi = metrics["mi"]

    # ================================================================== save

    def save_checkpoint(self) -> None:
        state = self.checkpoint_state()  # collective under DDP: gathers every rank's RNG state

        def write() -> None:
            with self._writing(self.run_dir / CHECKPOINTS_DIR):
                save_checkpoint(self.model, state, self.run_dir, self.state.step, self.recipe.train.keep_checkpoints,
                                self.recipe_text)

        on_main(self.replicas, write)

    def _write_model(self, name: str) -> Path:
        with self._writing(self.run_dir / name):
            return write_model_dir(self.model, self.run_dir / name, recipe_text=self.recipe_text)

    def _finish(self, metrics: dict[str, float], interrupted: Optional[str], start_time: float,
                start_step: int) -> TrainResult:
        """model/ (unless interrupted: the checkpoint is what an interrupted run leaves),
        summary.json and report.md."""
        s = self.state
        model_dir = None if interrupted else on_main(self.replicas, lambda: self._write_model(MODEL_DIR))
        if not metrics and not interrupted:
            metrics = self.validate()
        seconds = time.perf_counter() - start_time
        best = self.run_dir / BEST_DIR
        summary = {"step": s.step, "seconds": seconds, "steps_this_session": s.step - start_step,
                   "interrupted": bool(interrupted), "nonfinite_steps": s.nonfinite_total,
                   "best_step": s.best_step, "lr_decays": s.lr_decays,
                   "world_size": self.replicas.world_size, **numerics(), "precision": precision_used(self.precision, self.recipe),
                   "device": str(self.device), "valid": metrics, "data": self.data_stats}
        if interrupted:
            summary["stop_signal"] = interrupted
        if self.precision.use_scaler:
            summary["overflow_steps"] = s.overflow_total
        if self.recipe.objective.aggressive.enabled:
            summary["aggressive_end_step"] = s.aggressive_end_step
        if self.replicas.enabled:
            summary["replicas"] = compare_replicas(self.model, self.replicas)
            if not summary["replicas"]["identical"]:
                self._say(f"warning: the {self.replicas.world_size} processes ended with different weights (SHA-256 "
                          f"{', '.join(d[:12] for d in summary['replicas']['weights_sha256'])}); model/ holds "
                          "rank 0's. Please report this.")

        def write_summary() -> None:
            with self._writing(self.run_dir / "summary.json"):
                atomic_write_json(self.run_dir / "summary.json", summary)
                write_report([self.run_dir])

        on_main(self.replicas, write_summary)
        return TrainResult(self.run_dir, model_dir, best if best.is_dir() else None, s.step, metrics,
                           seconds, bool(interrupted), s.nonfinite_total, self.data_stats, stop_signal=interrupted)

    # ================================================================== console and writes

    def _say(self, message: str) -> None:
        """Print on rank 0 only (what every rank knows, every rank would print)."""
        if self.replicas.is_main:
            tqdm.write(message)

    def _writing(self, target: Path) -> ContextManager:
        return writing(self.run_dir, target, self.state.step)


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
    trainer = None
    try:
        trainer = Trainer(recipe, run_dir, resume=resume, overwrite=overwrite, progress=progress, threads=threads,
                          allow_different_threads=allow_different_threads)
        return trainer.fit()
    finally:
        # The Trainer's DDP wrapper holds the process group: drop this frame's reference (an exception's
        # traceback would keep it) so that leaving the group can also free what holds it.
        del trainer
        destroy_process_group()
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
