"""Device and mixed-precision choices: autocast dtype, whether a GradScaler is needed, and the
CPU's denormal mode. Used by training, evaluation and the commands alike."""

from __future__ import annotations

from textvae.errors import ConfigError

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager, Optional

import torch

from textvae.utils.cpu import bf16_matmul_speedup, cpu_has_bf16_hardware, lstm_bf16_supported


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name} but CUDA is not available here; use train.device=cpu or auto.")
    return device


@dataclass(frozen=True)
class Precision:
    """How the forward pass runs. Loss terms are always reduced in fp32 (see the objectives)."""

    name: str
    device: torch.device
    dtype: Optional[torch.dtype]
    """Autocast dtype, or None for plain fp32."""
    use_scaler: bool
    """fp16 needs loss scaling so small gradients do not flush to zero."""

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.use_scaler)


def flush_denormals(device: torch.device) -> None:
    """Treat denormal floats as zero on CPU (FTZ/DAZ), as TensorFlow does by default.

    Back-propagating through a long LSTM makes gradients decay through the denormal range
    (below 1.2e-38), where x86 arithmetic takes a microcode path orders of magnitude slower:
    fp32 training at the Yahoo size ran 2.8× slower without this. Values that small are zero
    for every purpose here. It is opt-out (``train.flush_denormal: false``).

    The mode is a CPU thread's (MXCSR): it reaches torch's worker threads only if they are
    started after this call, as they are when ``textvae train`` calls it first thing (checked in
    tests/training/test_precision.py); in a process that has already run parallel torch work, only the
    calling thread flushes."""
    if device.type == "cpu":
        torch.set_flush_denormal(True)


AUTO_BF16_MIN_SPEEDUP = 1.1
"""``auto`` takes bf16 on a CPU only when its matmuls run at least this much faster than fp32: bf16
costs precision, worth paying for speed alone; the margin keeps timing noise from flipping a CPU
where the two are even (measured ratios are 0.5–0.6 or 1.4–2.3, far from it)."""

ALLOW_EMULATED_BF16 = "TEXTVAE_ALLOW_EMULATED_BF16"
"""Set to 1 to run bf16 on a CPU without bf16 arithmetic anyway (slowly), e.g. to check its numerics."""


def resolve_precision(name: str, device: torch.device, option: str = "train.precision",
                      resumed: Optional[str] = None, threads: Optional[int] = None) -> Precision:
    """``fp32 | bf16 | fp16 | auto`` on ``device`` → a :class:`Precision`.

    ``auto`` picks bf16 on CUDA devices that support it, else fp16 with a GradScaler; on CPU,
    bf16 where the CPU does bf16 arithmetic in hardware (Intel AMX, AVX512-BF16) *and* a probe
    matmul runs at least :data:`AUTO_BF16_MIN_SPEEDUP` times faster in it
    (:func:`textvae.utils.cpu.bf16_matmul_speedup`), else fp32. With AMX, or AVX512-BF16 on an AMD
    Zen 4, bf16 trains 1.4–2.3× faster with the fp32 validation curve (benchmarks/results); on an
    Intel Xeon with AVX512-BF16 but no AMX it ran at 0.6× fp32, so the flags alone do not decide.
    A run that resumes keeps the precision it was trained with (the trainer passes it).

    ``bf16`` on a CPU without bf16 arithmetic is refused before any work: there oneDNN emulates
    it, at 0.9–1.2 GFLOP/s against 140–165 in fp32 on an AVX2 EPYC (measured), which would make a
    run tens of times slower for nothing. :data:`ALLOW_EMULATED_BF16` lets it run anyway; then,
    where oneDNN has no bf16 LSTM kernel (CPUs without AVX-512), the LSTM recurrence runs in fp32
    (:func:`textvae.modeling.lstm.run_lstm`) and :func:`precision_note` says so.

    Args:
        option: how the user set the precision, for messages (``train.precision`` in a recipe,
            ``--precision`` on the command line).
        resumed: the precision a resumed run was trained with (its checkpoint's record). ``auto``
            keeps it where this device can run it, so that a timing near the threshold cannot switch
            a run's numerics halfway; elsewhere (a bf16 run resumed on a CPU without bf16
            arithmetic) ``auto`` chooses afresh and the trainer warns that the numerics changed.
        threads: the CPU threads the work will run on, for ``auto``'s probe (default: torch's now).
    """
    if name == "auto" and resumed is not None:
        kept = resumed.split(" ")[0]  # "bf16 (LSTM fp32)" → bf16
        runnable = (kept == "fp32" or (kept == "bf16" and (device.type == "cuda" or cpu_has_bf16_hardware()))
                    or (kept == "fp16" and device.type == "cuda"))
        if runnable:
            name = kept
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            faster = (cpu_has_bf16_hardware()
                      and bf16_matmul_speedup(threads or torch.get_num_threads()) >= AUTO_BF16_MIN_SPEEDUP)
            name = "bf16" if faster else "fp32"
    if name == "fp32":
        return Precision(name, device, None, False)
    if name == "bf16":
        if device.type == "cpu" and not cpu_has_bf16_hardware() and not os.environ.get(ALLOW_EMULATED_BF16):
            raise ConfigError(_emulated_bf16_message(option))
        return Precision(name, device, torch.bfloat16, False)
    if name == "fp16":
        if device.type != "cuda":
            raise ConfigError(
                "train.precision=fp16 needs a CUDA device (fp16 autocast with loss scaling); on CPU use "
                "train.precision=bf16 (bf16 autocast) or fp32.")
        return Precision(name, device, torch.float16, True)
    raise ConfigError(f"unknown precision {name!r}; choose fp32, bf16, fp16 or auto.")


def _emulated_bf16_message(option: str) -> str:
    from textvae.utils.cpu import cpu_description

    said = f"{option}=bf16" if not option.startswith("-") else f"{option} bf16"
    fp32 = f"{option}=fp32" if not option.startswith("-") else f"{option} fp32"
    return (f"{said}: this CPU ({cpu_description()}) has no bf16 arithmetic (AVX512-BF16 or AMX), so bf16 "
            "matmuls would run emulated, measured at about 1 GFLOP/s against 140-165 GFLOP/s in fp32 on such "
            "a CPU (benchmarks/results/throughput_cpu_epyc_avx2.md): tens of times slower, for no gain. Use "
            f"{fp32}, or auto, which picks the fastest precision of each CPU (fp32 on this one). To run bf16 "
            f"anyway, e.g. to check its numerics, set {ALLOW_EMULATED_BF16}=1.")


def precision_note(precision: Precision) -> Optional[str]:
    """What a user should know about ``precision`` on this CPU, or None: bf16 without bf16
    hardware is emulated (slower than fp32), and without oneDNN's bf16 LSTM kernel the LSTM
    recurrence runs in fp32."""
    if precision.device.type != "cpu" or precision.dtype != torch.bfloat16:
        return None
    notes = []
    if not cpu_has_bf16_hardware():  # only with ALLOW_EMULATED_BF16 set
        notes.append(f"this CPU has no bf16 arithmetic (AVX512-BF16 or AMX), so bf16 matmuls run emulated, "
                     f"tens of times slower than fp32 ({ALLOW_EMULATED_BF16} is set)")
    else:
        speedup = bf16_matmul_speedup(torch.get_num_threads())
        if speedup < AUTO_BF16_MIN_SPEEDUP:  # asked for by name on a CPU where auto would not take it
            notes.append(f"on this CPU a matmul under bf16 autocast runs at {speedup:.2f}× the speed of fp32 "
                         "(measured now), so bf16 buys no speed here; train.precision=fp32 (or auto, which "
                         "picks fp32 here) would be faster and more precise")
    if not lstm_bf16_supported():
        notes.append("oneDNN has no bf16 LSTM kernel for this CPU, so LSTM layers run in fp32 while the "
                     "other layers run in bf16")
    return ("note: precision bf16: " + "; ".join(notes) + ".") if notes else None
