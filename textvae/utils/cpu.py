"""What this CPU can do: its name, the instruction set torch and oneDNN run, bf16 support.

Imported by modeling (the LSTM's bf16 fallback), training (``precision: auto``) and the
benchmarks (every results file names its CPU). Only torch and the standard library below it.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from typing import Optional

import torch

CPU_BF16_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
"""torch.cpu probes (private, hence looked up by name) for bf16 arithmetic in hardware: Intel AMX
tiles, and the AVX512-BF16 dot products of recent Xeon and AMD Zen 4+ cores."""

ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
"""Environment variables that cap the instruction set below what the CPU has (oneDNN's and
ATen's); a run under them behaves as on an older CPU, so reports name them."""


def _probe(name: str) -> bool:
    probe = getattr(torch.cpu, name, None)
    try:
        return bool(probe is not None and probe())
    except RuntimeError:
        return False


def isa_limited() -> bool:
    """Whether ONEDNN_MAX_CPU_ISA or ATEN_CPU_CAPABILITY caps the instruction set in this process."""
    return any(os.environ.get(name) for name in ISA_LIMIT_VARIABLES)


def cpu_has_bf16_hardware() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512-BF16).

    torch's probes read the CPU's flags, not ONEDNN_MAX_CPU_ISA: under a cap below the bf16
    instruction sets (``AVX2``, ``AVX512_CORE``) oneDNN's bf16 matmuls run without them, so the
    answer is no there, as on an older CPU."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap != "ALL" and "BF16" not in cap and "AMX" not in cap:
        return False
    return any(_probe(name) for name in CPU_BF16_PROBES)


@functools.lru_cache(maxsize=None)
def lstm_bf16_supported() -> bool:
    """Whether ``nn.LSTM`` runs under CPU bf16 autocast here.

    oneDNN has bf16 LSTM kernels only for CPUs with AVX-512 (and bf16 instructions); elsewhere it
    raises "could not create a primitive descriptor for the LSTM forward propagation primitive".
    Which CPUs qualify is oneDNN's business and differs between releases, so this asks it once,
    with a 4-unit LSTM, instead of guessing from the flags.
    """
    lstm = torch.nn.LSTM(4, 4, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            lstm(torch.zeros(1, 2, 4))
    except RuntimeError:
        return False
    return True


BF16_PROBE_SHAPE = (2048, 256, 1024)
"""(tokens, width, outputs) of the probe matmul: a batch of 32 PTB sentences through an LSTM's four
256-unit gates, the shape most of a small text model's training FLOPs take."""


@functools.lru_cache(maxsize=None)
def bf16_matmul_speedup(threads: int) -> float:
    """How many times faster a matmul runs under CPU bf16 autocast than in fp32 here, on ``threads``
    threads (best of 5 timings each, after warm-up; autocast's casts of fp32 operands included, as in
    training). 0.0 on a CPU without bf16 arithmetic, where no timing is needed.

    Flags alone do not tell: AVX512-BF16 without AMX runs bf16 matmuls at ~4× fp32 on an AMD Zen 4
    but at 0.54–0.58× on an Intel Xeon whose oneDNN reports AVX 10.1 (150 against 261 GFLOP/s on
    2 threads, with oneDNN's avx512_core_bf16 kernels; a PTB step 0.62× as fast; measured), so
    ``precision: auto`` asks the hardware. Cached per thread count: a process measures once."""
    if not cpu_has_bf16_hardware():
        return 0.0
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        tokens, width, outputs = BF16_PROBE_SHAPE
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(tokens, width, generator=generator)
        b = torch.randn(width, outputs, generator=generator)

        def fp32() -> None:
            a @ b

        def bf16() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                a @ b

        return _best_seconds(fp32) / _best_seconds(bf16)
    finally:
        torch.set_num_threads(previous)


def _best_seconds(fn, warmup: int = 2, repeats: int = 5) -> float:
    with torch.no_grad():
        for _ in range(warmup):  # oneDNN creates (JIT-compiles) its primitive on the first call
            fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def cpu_model_name() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or the platform's word for it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_capability() -> str:
    """The vector instruction set ATen dispatches to (``AVX2``, ``AVX512``, ``DEFAULT``, …)."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_description(threads: Optional[int] = None) -> str:
    """One line for logs and results files: name, ISA, bf16 hardware, any cap, threads."""
    # Which kind: a CPU with AVX512-BF16 alone can run bf16 an order of magnitude slower than an AMX one
    # (README, Speed), so a results file says which.
    bf16 = ("no bf16 hardware" if not cpu_has_bf16_hardware() else
            "bf16 hardware (AMX)" if _probe("_is_amx_tile_supported") else "bf16 hardware (AVX512-BF16, no AMX)")
    caps = ", ".join(f"{name}={os.environ[name]}" for name in ISA_LIMIT_VARIABLES if os.environ.get(name))
    parts = [cpu_model_name(), cpu_capability(), bf16] + ([f"limited by {caps}"] if caps else [])
    if threads is not None:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(parts)
