"""Mixed precision, tested on CPU: bf16 autocast keeps the loss terms in fp32, and the fp16 loss-scaler
path (GradScaler on CPU, no autocast) skips overflowing steps, halves the scale and carries on."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

import textvae.training.trainer as trainer_module
from textvae.config import TokenizerConfig
from textvae.data import TextTokenizer
from textvae import TextVAE
from textvae.modeling import VocabSpec
from textvae.objectives import infovae_loss
from textvae.training import Trainer, train
from textvae.training.checkpoint import load_trainer_state
from textvae.utils.metrics import read_metrics
from textvae.errors import RunError
from textvae.utils.precision import Precision, resolve_precision

from tests.helpers import REPO, TINY

SENTENCES = ["the cat sat on the mat", "a dog ran far away from home", "the old man and the sea",
             "colourless green ideas sleep furiously", "time flies like an arrow", "fruit flies like a banana"]


@pytest.mark.parametrize("recipe", ["ptb/mmd_vae.yaml", "ptb/transformer_mmd_vae.yaml"])
def test_bf16_autocast_keeps_loss_terms_fp32_and_close(tiny_recipe, recipe, emulated_bf16_allowed):
    tok = TextTokenizer.train(TokenizerConfig(kind="word", vocab_size=60), SENTENCES)
    vocab = VocabSpec(tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id)
    cfg = tiny_recipe(recipe, ["model.decoder.num_layers=1"])
    torch.manual_seed(0)
    model = TextVAE(cfg.model, vocab, tok).eval()
    ids = tok.encode_batch(SENTENCES)
    width = max(map(len, ids)) + 2
    batch = torch.tensor([[tok.bos_id, *x, tok.eos_id] + [tok.pad_id] * (width - len(x) - 2) for x in ids])
    lengths = torch.tensor([len(x) + 2 for x in ids])
    prior = torch.randn(len(ids), cfg.model.latent_dim, generator=torch.Generator().manual_seed(1))

    def terms(precision: Precision):
        with precision.autocast():
            out = model(batch, lengths, sample=False)  # z = μ: the two runs differ only in precision
            got = infovae_loss(out.rec, out.n_tokens, out.mu, out.logvar, out.z, cfg.objective, prior_z=prior)
        return out, got

    out32, fp32 = terms(resolve_precision("fp32", torch.device("cpu")))
    out16, bf16 = terms(resolve_precision("bf16", torch.device("cpu")))
    assert out16.mu.dtype == torch.bfloat16  # autocast did run: the posterior head computed in bf16
    for name in ("loss", "rec", "kl", "mmd"):
        value = getattr(bf16, name)
        assert value.dtype == torch.float32, name
        torch.testing.assert_close(value, getattr(fp32, name), rtol=3e-2, atol=2e-3, msg=name)
    assert out16.rec.dtype == torch.float32 and bf16.kl_per_dim.dtype == torch.float32


# --------------------------------------------------------------------------- the fp16 scaler path on CPU

SCALER = ["train.max_steps=6", "train.eval_every=6", "train.save_every=1", "train.keep_checkpoints=10",
          "train.log_every=1"]


@pytest.fixture
def scaler_on_cpu(monkeypatch):
    """fp16's machinery without fp16: a GradScaler on CPU (fp32 compute, so nothing overflows by itself)."""
    monkeypatch.setattr(trainer_module, "resolve_precision",
                        lambda name, device, **_: Precision("fp16", device, None, use_scaler=True))


def _inf_gradient_at(monkeypatch, first: int, last: float = math.inf, where: str = "grad") -> None:
    """Training steps first..last (0-based) get an infinite gradient (finite loss), or a NaN loss."""
    real, calls = trainer_module.infovae_loss, iter(range(10**6))

    def infovae_loss(*args, **kwargs):
        terms = real(*args, **kwargs)
        if first <= next(calls) <= last:
            if where == "loss":
                return dataclasses.replace(terms, loss=terms.loss * math.nan)
            terms.loss.register_hook(lambda grad: grad * math.inf)
        return terms

    monkeypatch.setattr(trainer_module, "infovae_loss", infovae_loss)


def test_fp16_overflow_skips_the_step_halves_the_scale_and_goes_on(tmp_path, monkeypatch, capsys, scaler_on_cpu,
                                                                   tiny_recipe):
    _inf_gradient_at(monkeypatch, first=2, last=2)  # step 3
    out = tmp_path / "run"
    result = train(tiny_recipe(extra=SCALER), out, progress=False)
    assert result.step == 6 and result.nonfinite_steps == 0

    def checkpoint(step):
        folder = out / "checkpoints" / f"step-{step:08d}"
        return load_file(str(folder / "model.safetensors")), load_trainer_state(folder)

    (w2, s2), (w3, s3), (w4, _) = checkpoint(2), checkpoint(3), checkpoint(4)
    assert all(torch.equal(w2[k], w3[k]) for k in w2)  # step 3 skipped: weights unchanged
    assert not all(torch.equal(w3[k], w4[k]) for k in w3)  # step 4 trained again
    assert s2["scaler"]["scale"] == 2.0**16 and s3["scaler"]["scale"] == 2.0**15
    assert s3["overflow_total"] == 1 and s3["nonfinite_total"] == 0
    printed = capsys.readouterr().out
    assert "step 3: fp16 gradient overflow; step skipped, loss scale lowered to 32768." in printed
    assert "non-finite" not in printed
    rows = {r["step"]: r for r in read_metrics(out) if r["split"] == "train"}
    assert (rows[2]["loss_scale"], rows[3]["loss_scale"], rows[6]["overflow_total"]) == (2.0**16, 2.0**15, 1)
    assert "loss" not in rows[3] and math.isfinite(rows[4]["loss"])  # the skipped step is not averaged in


def test_fp16_nan_loss_counts_as_nonfinite_and_stops(tmp_path, monkeypatch, capsys, scaler_on_cpu, tiny_recipe):
    _inf_gradient_at(monkeypatch, first=1, where="loss")
    trainer = Trainer(tiny_recipe(extra=SCALER + ["train.max_nonfinite=2"]), tmp_path / "run", progress=False)
    with pytest.raises(RunError, match=r"^training stopped at step 3: 2 steps in a row had a non-finite loss"):
        trainer.fit()
    assert re.findall(r"warning: step (\d+): non-finite", capsys.readouterr().out) == ["2", "3"]


def test_fp16_gradient_inf_at_every_scale_stops_once_the_scale_is_below_one(tmp_path, monkeypatch, capsys,
                                                                           scaler_on_cpu, tiny_recipe):
    _inf_gradient_at(monkeypatch, first=0)  # never finite: halving the scale cannot help
    trainer = Trainer(tiny_recipe(extra=SCALER + ["train.max_steps=40", "train.save_every=100",
                                                  "train.max_nonfinite=2"]), tmp_path / "run", progress=False)
    with pytest.raises(RunError, match="2 steps in a row had a non-finite loss or gradient"):
        trainer.fit()
    printed = capsys.readouterr().out
    # 2^16 … 2^0: 17 overflows the scaler is meant to absorb, then 2 non-finite steps at scale 0.5, 0.25.
    assert printed.count("fp16 gradient overflow") == 17 and trainer.state.overflow_total == 17
    assert re.findall(r"warning: step (\d+): non-finite", printed) == ["18", "19"]
    assert trainer.scaler.get_scale() == 2.0**-3


def _bf16_speedup(monkeypatch, ratio: float) -> list[int]:
    """Make the bf16 probe report ``ratio`` (bf16 over fp32 speed); returns the thread counts it was asked at."""
    import textvae.utils.precision as precision_module

    asked: list[int] = []
    monkeypatch.setattr(precision_module, "bf16_matmul_speedup", lambda threads: asked.append(threads) or ratio)
    return asked


@pytest.mark.parametrize("amx,avx512_bf16,expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                      (False, False, "fp32")])
def test_auto_precision_on_cpu_follows_bf16_hardware(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # CI runs the suite once under a cap
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    asked = _bf16_speedup(monkeypatch, 2.0)  # bf16 hardware as fast as on an AMX Xeon or a Zen 4
    chosen = resolve_precision("auto", torch.device("cpu"))
    assert chosen.name == expected
    assert chosen.dtype == (torch.bfloat16 if expected == "bf16" else None) and not chosen.use_scaler
    # Without bf16 arithmetic nothing is timed; with it, the probe runs at this process's thread count.
    assert asked == ([torch.get_num_threads()] if expected == "bf16" else [])


@pytest.mark.parametrize("speedup,expected", [(0.54, "fp32"), (1.09, "fp32"), (1.1, "bf16"), (2.3, "bf16")])
def test_auto_precision_takes_bf16_only_where_it_is_faster(monkeypatch, speedup, expected):
    # An Intel Xeon with AVX512-BF16 and no AMX ran bf16 matmuls at 0.54x fp32 (80 against 148 GFLOP/s):
    # the flags said bf16, the hardware says fp32.
    import textvae.utils.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: True)
    _bf16_speedup(monkeypatch, speedup)
    assert precision_module.AUTO_BF16_MIN_SPEEDUP == 1.1
    assert resolve_precision("auto", torch.device("cpu")).name == expected
    assert resolve_precision("bf16", torch.device("cpu")).name == "bf16"  # asked for by name: no probe decides
    asked = _bf16_speedup(monkeypatch, speedup)
    resolve_precision("auto", torch.device("cpu"), threads=3)
    assert asked == [3]  # timed at the thread count the work will use


def test_bf16_asked_for_where_it_is_slower_says_so(monkeypatch):
    import textvae.utils.precision as precision_module
    from textvae.utils.precision import precision_note

    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: True)
    monkeypatch.setattr(precision_module, "lstm_bf16_supported", lambda: True)
    bf16 = resolve_precision("bf16", torch.device("cpu"))
    _bf16_speedup(monkeypatch, 0.56)
    assert precision_note(bf16) == (
        "note: precision bf16: on this CPU a matmul under bf16 autocast runs at 0.56× the speed of fp32 "
        "(measured now), so bf16 buys no speed here; train.precision=fp32 (or auto, which picks fp32 here) "
        "would be faster and more precise.")
    _bf16_speedup(monkeypatch, 1.9)
    assert precision_note(bf16) is None  # where bf16 is faster there is nothing to say
    assert precision_note(resolve_precision("fp32", torch.device("cpu"))) is None


def test_the_bf16_speed_probe_times_real_matmuls_once_per_thread_count(monkeypatch):
    import textvae.utils.cpu as cpu_module

    cpu_module.bf16_matmul_speedup.cache_clear()
    monkeypatch.setattr(cpu_module, "cpu_has_bf16_hardware", lambda: False)
    assert cpu_module.bf16_matmul_speedup(1) == 0.0  # no bf16 arithmetic: nothing to time
    cpu_module.bf16_matmul_speedup.cache_clear()
    # With bf16 arithmetic (real, or emulated on an older CPU: slow, hence a small probe) a real ratio.
    monkeypatch.setattr(cpu_module, "cpu_has_bf16_hardware", lambda: True)
    monkeypatch.setattr(cpu_module, "BF16_PROBE_SHAPE", (64, 32, 64))
    before = torch.get_num_threads()
    ratio = cpu_module.bf16_matmul_speedup(1)
    assert math.isfinite(ratio) and ratio > 0
    assert torch.get_num_threads() == before  # the probe's thread count is put back
    assert cpu_module.bf16_matmul_speedup(1) == ratio and cpu_module.bf16_matmul_speedup.cache_info().hits == 1
    cpu_module.bf16_matmul_speedup.cache_clear()


@pytest.mark.parametrize("resumed,hardware,speedup,expected", [
    ("bf16 (LSTM fp32)", True, 0.5, "bf16"),  # trained bf16: a slower probe now does not switch it
    ("fp32", True, 2.0, "fp32"),              # trained fp32: a faster probe now does not switch it
    ("bf16", False, 0.0, "fp32"),             # moved to a CPU without bf16: auto chooses again
    (None, True, 2.0, "bf16"),                # no record (a fresh run): the probe decides
])
def test_auto_precision_keeps_a_resumed_runs_precision(monkeypatch, resumed, hardware, speedup, expected):
    import textvae.utils.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: hardware)
    _bf16_speedup(monkeypatch, speedup)
    assert resolve_precision("auto", torch.device("cpu"), resumed=resumed).name == expected
    # A precision named in the recipe is the recipe's, whatever the run recorded.
    assert resolve_precision("fp32", torch.device("cpu"), resumed="bf16").name == "fp32"


def test_a_resumed_auto_run_keeps_its_precision_through_the_trainer(tmp_path, monkeypatch, tiny_recipe):
    import textvae.utils.precision as precision_module

    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: True)
    _bf16_speedup(monkeypatch, 0.5)  # the probe says fp32 when the run starts
    run = tmp_path / "run"
    train(tiny_recipe(extra=["train.precision=auto", "train.max_steps=2", "train.save_every=2"]), run, progress=False)
    assert json.loads((run / "summary.json").read_text())["precision"] == "fp32"
    _bf16_speedup(monkeypatch, 2.0)  # and bf16 on resume (a noisy timing, or another machine like it)
    resumed = Trainer(tiny_recipe(extra=["train.precision=auto", "train.max_steps=4"]), run, resume=True,
                      progress=False)
    assert resumed.precision.name == "fp32"
    asked = _bf16_speedup(monkeypatch, 2.0)
    fresh = Trainer(tiny_recipe(extra=["train.precision=auto", "train.max_steps=4"]), tmp_path / "fresh",
                    progress=False, threads=1)
    assert fresh.precision.name == "bf16" and asked == [1]  # probed at the run's --threads


def test_trainer_flushes_denormals_on_cpu_unless_told_not_to(tmp_path, tiny_recipe):
    from textvae.utils.precision import flush_denormals

    try:
        torch.set_flush_denormal(False)
        tiny = torch.tensor([1e-39], dtype=torch.float32)  # made after: under FTZ it would be stored as 0
        assert (tiny * 1.0).item() > 0  # a denormal survives IEEE arithmetic
        recipe = tiny_recipe(extra=["train.max_steps=1"])
        recipe.train.flush_denormal = False
        Trainer(recipe, tmp_path / "a", progress=False).setup()
        assert (tiny * 1.0).item() > 0
        recipe.train.flush_denormal = True
        Trainer(recipe, tmp_path / "b", progress=False).setup()
        assert (tiny * 1.0).item() == 0.0  # flushed to zero
        torch.set_flush_denormal(False)
        flush_denormals(torch.device("meta"))  # not a CPU: leaves the mode alone
        assert (tiny * 1.0).item() > 0
    finally:
        torch.set_flush_denormal(False)


def test_textvae_train_flushes_denormals_on_every_torch_thread(tmp_path):
    # The FTZ/DAZ mode belongs to a CPU thread: torch's worker threads have it only when they
    # start after the trainer sets it. A fresh process with two threads, as `textvae train` runs.
    script = f"""
import sys, torch
sys.path.insert(0, {str(REPO)!r})
torch.set_num_threads(2)
from tests.helpers import TINY
from textvae.cli import main
assert main(["train", {str(REPO / "recipes/quickstart.yaml")!r}, *TINY, "train.max_steps=1",
             "--output", {str(tmp_path / "run")!r}, "--no-progress"]) == 0
probe = torch.full((8 * 32768,), 1e-39)  # split across both threads
print("DENORMALS_LEFT", int((probe * 1.0).count_nonzero()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "DENORMALS_LEFT 0" in done.stdout


@pytest.mark.parametrize("cap,expected", [("AVX2", "fp32"), ("AVX512_CORE", "fp32"), ("AVX512_CORE_BF16", "bf16"),
                                          ("AVX512_CORE_AMX", "bf16"), ("", "bf16")])
def test_auto_precision_honours_an_isa_cap(monkeypatch, cap, expected):
    # The probes read the CPU's flags; under ONEDNN_MAX_CPU_ISA below bf16 the kernels cannot use them.
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    _bf16_speedup(monkeypatch, 2.0)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert resolve_precision("auto", torch.device("cpu")).name == expected


# --------------------------------------------------------------------------- bf16 on CPUs without bf16 LSTM kernels


def test_the_lstm_bf16_probe_tells_the_truth():
    # Whatever this CPU is: the probe says no exactly when oneDNN refuses a bf16 LSTM.
    from textvae.utils.cpu import lstm_bf16_supported

    lstm = torch.nn.LSTM(8, 8, batch_first=True)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(2, 3, 8))
        raised = None
    except RuntimeError as err:
        raised = str(err)
    assert lstm_bf16_supported() == (raised is None), raised
    if raised is not None:
        assert "primitive descriptor for the LSTM" in raised  # the error run_lstm exists to avoid
    else:
        assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("packed", [False, True])
def test_run_lstm_without_a_bf16_kernel_runs_the_recurrence_in_fp32(monkeypatch, packed):
    import textvae.modeling.lstm as lstm_module
    from torch.nn.utils.rnn import pack_padded_sequence

    monkeypatch.setattr(lstm_module, "lstm_bf16_supported", lambda: False)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 6, batch_first=True, bidirectional=packed)
    x = torch.randn(3, 5, 8)
    state = None if packed else (torch.randn(1, 3, 6).bfloat16(), torch.randn(1, 3, 6).bfloat16())
    arg = pack_padded_sequence(x, torch.tensor([5, 3, 2]), batch_first=True, enforce_sorted=False) if packed else x
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, (h, c) = lstm_module.run_lstm(lstm, arg, state)
            assert torch.is_autocast_enabled("cpu")  # switched off for the LSTM only
        ref_out, (ref_h, ref_c) = lstm(arg, None if state is None else tuple(t.float() for t in state))
    got = out.data if packed else out
    assert got.dtype == torch.float32 and h.dtype == torch.float32
    assert torch.equal(got, ref_out.data if packed else ref_out) and torch.equal(h, ref_h) and torch.equal(c, ref_c)


def test_run_lstm_uses_the_bf16_kernel_where_there_is_one():
    # On a CPU with the kernel the recurrence runs in bf16; elsewhere the fallback is what runs.
    from textvae.modeling.lstm import run_lstm
    from textvae.utils.cpu import lstm_bf16_supported

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = run_lstm(torch.nn.LSTM(8, 8, batch_first=True), torch.randn(2, 3, 8))
    assert out.dtype == (torch.bfloat16 if lstm_bf16_supported() else torch.float32)


def test_bf16_without_the_lstm_kernel_trains_on_the_fp32_curve_and_says_so(monkeypatch, tmp_path, capsys,
                                                                          emulated_bf16_allowed):
    import textvae.modeling.lstm as lstm_module
    import textvae.utils.precision as precision_module
    import textvae.training.numerics as numerics_module
    from textvae.cli import main

    for module in (lstm_module, precision_module, numerics_module):  # as on an AVX2 CPU, whatever this one is
        monkeypatch.setattr(module, "lstm_bf16_supported", lambda: False)
    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: False)
    steps = ["train.max_steps=8", "train.eval_every=8", "train.log_every=1", "--no-progress"]
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert main(["train", str(REPO / "recipes/ptb/mmd_vae.yaml"), *TINY, *steps, f"train.precision={precision}",
                     "--output", str(out)]) == 0
        runs[precision] = [r["loss"] for r in read_metrics(out) if r["split"] == "train"]
    printed = " ".join(capsys.readouterr().out.split())
    assert "precision bf16" in printed and "precision fp32" in printed
    assert ("note: precision bf16: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX), so bf16 matmuls run "
            "emulated, tens of times slower than fp32 (TEXTVAE_ALLOW_EMULATED_BF16 is set); oneDNN has no bf16 "
            "LSTM kernel for this CPU, so LSTM layers run in fp32 while the other layers run in bf16.") in printed
    assert len(runs["bf16"]) == len(runs["fp32"]) == 8
    # The same curve: bf16 rounding of the matmuls around an fp32 recurrence moves it by well under 1 %.
    torch.testing.assert_close(torch.tensor(runs["bf16"]), torch.tensor(runs["fp32"]), rtol=1e-2, atol=0.0)
    assert runs["bf16"] != runs["fp32"]  # bf16 did run
    state = load_trainer_state(sorted((tmp_path / "bf16" / "checkpoints").iterdir())[-1])
    assert state["numerics"]["precision"] == "bf16 (LSTM fp32)"


def test_bf16_without_bf16_hardware_is_refused_before_any_work(monkeypatch, tmp_path, capsys):
    # Emulated bf16 measured 0.9-1.2 GFLOP/s against 140-165 in fp32 on an AVX2 EPYC, and PTB training
    # 128 against 3,655 tokens/s: refused, naming what to use, before the run directory exists.
    import textvae.utils.precision as precision_module
    from textvae.cli import main

    monkeypatch.delenv("TEXTVAE_ALLOW_EMULATED_BF16", raising=False)
    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: False)
    out = tmp_path / "run"
    assert main(["train", str(REPO / "recipes/ptb/mmd_vae.yaml"), *TINY, "train.precision=bf16",
                 "--output", str(out)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert re.search(r"textvae train: error: train\.precision=bf16: this CPU \(.*\) has no bf16 arithmetic "
                     r"\(AVX512-BF16 or AMX\), so bf16 matmuls would run emulated, .* Use train\.precision=fp32, or "
                     r"auto, which picks the fastest precision of each CPU \(fp32 on this one\)\. To run bf16 anyway, "
                     r"e\.g\. to check its numerics, set TEXTVAE_ALLOW_EMULATED_BF16=1\.", err), err
    assert not out.exists() and "Traceback" not in err
    # auto picks fp32 on such a CPU, and fp32 is never refused.
    assert resolve_precision("auto", torch.device("cpu")).name == "fp32"
    # With real bf16 hardware the same recipe resolves (nothing emulated to refuse).
    monkeypatch.setattr(precision_module, "cpu_has_bf16_hardware", lambda: True)
    assert resolve_precision("bf16", torch.device("cpu")).dtype == torch.bfloat16


@pytest.mark.parametrize("amx,avx512_bf16,said", [(True, True, "bf16 hardware (AMX)"),
                                                  (False, True, "bf16 hardware (AVX512-BF16, no AMX)"),
                                                  (False, False, "no bf16 hardware")])
def test_the_cpu_description_names_the_kind_of_bf16_hardware(monkeypatch, amx, avx512_bf16, said):
    # Results files carry this line: two Xeons with the same name and ISA ran bf16 at 0.54x and 6.5x fp32.
    from textvae.utils.cpu import cpu_capability, cpu_description, cpu_model_name

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert cpu_description(2) == f"{cpu_model_name()}, {cpu_capability()}, {said}, 2 threads"
