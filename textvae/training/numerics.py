"""What decides a run's floating-point results besides the recipe and seed — threads, precision
as computed, the CPU's instruction set — chosen at the start, said on the console, recorded in
every checkpoint and checked on resume, so that resuming is bit-exact or says why it is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch

from textvae.config import Recipe
from textvae.utils.cpu import cpu_capability, cpu_description, lstm_bf16_supported
from textvae.utils.precision import Precision, precision_note
from textvae.errors import RunError


def numerics() -> dict[str, Any]:
    """The thread count and instruction set of this process: CPU kernels split their sums by
    thread, and each instruction set has kernels of its own."""
    return {"threads": torch.get_num_threads(), "cpu_capability": cpu_capability()}


def precision_used(precision: Precision, recipe: Recipe) -> str:
    """The precision as computed: bf16 with the LSTM in fp32 is a numerics of its own."""
    if (precision.device.type == "cpu" and precision.dtype == torch.bfloat16 and not lstm_bf16_supported()
            and "lstm" in (recipe.model.encoder.kind, recipe.model.decoder.kind)):
        return f"{precision.name} (LSTM fp32)"
    return precision.name


def set_threads(asked: Optional[int], recorded: dict[str, Any], allow_different: bool, run_dir: Path,
                say: Callable[[str], None]) -> None:
    """Use ``asked`` (``--threads``), else on resume the recorded count (so that resuming is
    exact), else torch's default. Resuming with another count than recorded is refused unless
    ``allow_different``."""
    saved = recorded.get("threads")
    if saved is not None and asked is not None and asked != saved:
        if not allow_different:
            raise RunError(
                f"--resume: {run_dir} was trained with {saved} thread(s) and --threads asks for {asked}. "
                "CPU kernels split their sums by thread, so the resumed run would differ from an "
                f"uninterrupted one. Resume with --threads {saved} (or without --threads, which uses the "
                "recorded count), or pass --allow-different-threads to accept a different result.")
        say(f"warning: --resume with {asked} thread(s), but the run was trained with {saved}: "
            "the result will differ from an uninterrupted run (--allow-different-threads).")
    threads = asked if asked is not None else saved
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)


def say_numerics(device: torch.device, precision: Precision, recipe: Recipe, recorded: dict[str, Any],
                 say: Callable[[str], None]) -> None:
    """Where and how this run computes, said at the start; on resume, what differs from before."""
    threads = torch.get_num_threads()
    where = (f"cpu ({cpu_description(threads)})" if device.type == "cpu" else
             f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device))
    auto = " (train.precision=auto)" if recipe.train.precision == "auto" else ""
    say(f"device {where}; precision {precision.name}{auto}")
    note = precision_note(precision)
    if note:
        say(note)
    now = {"precision": precision_used(precision, recipe), "cpu_capability": cpu_capability()}
    changed = [f"{k} {recorded[k]} then, {now[k]} now" for k in now if k in recorded and recorded[k] != now[k]]
    if changed:
        say(f"warning: --resume: the run was trained with other numerics ({'; '.join(changed)}), "
            "so the result will differ from an uninterrupted run.")
