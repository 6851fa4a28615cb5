"""Training throughput, model-FLOP utilisation, memory and IW-NLL evaluation time, in one run.

Measured on this machine, in this run, with the same thread count throughout:

1. the matmul throughput of the machine (torch.mm of square matrices, fp32 and bf16): the limit;
2. training tokens/s (real, non-pad target tokens: words + EOS) of the textvae trainer on real
   batches, for each model size and precision, and the model FLOPs per token counted analytically
   (LSTM/attention/FFN matmuls and the output softmax projection; ×3 for forward + backward), so
   model-FLOP utilisation = achieved model FLOP/s ÷ measured matmul FLOP/s of the same dtype;
3. the same model written the straightforward way (``PaddedLSTMVAE`` below: no packing, no
   bucketing, softmax over every position including padding, ``.item()`` every step), so the
   trainer's speed-up is measured rather than assumed;
   Each speed-up step of the trainer is also undone alone (``--ablations``: the fused softmax,
   unpacked LSTMs, length bucketing, the fused optimizer, flushing denormals, the vocabulary padded
   to a multiple of 64), so what each step gains is measured (``--ablation-sizes``: PTB by default);
4. peak memory: the process's peak RSS (getrusage), and its growth during training (on CUDA:
   torch.cuda.max_memory_allocated);
5. IW-NLL (K = 500) on PTB test as ``textvae evaluate`` computes it (batch 32, bucketed,
   chunk_rows 512): timed on the first ``--iw-sentences`` sentences and extrapolated by target
   tokens to the whole split, or timed on all of it with ``--iw-full``. An untrained PTB-size model
   is used: the time does not depend on the weights. ``--iw-ablations`` undoes the steps of that
   pass one at a time too (the vocabulary padding; scoring chunks of 1,024 rows).

Each measurement runs in a fresh subprocess, so peak RSS is its own. Sizes:

    ptb          LSTM 256/256, z 32, PTB, batch 32, vocab 10k     (recipes/ptb/vae.yaml)
    yahoo        LSTM 512/1024, z 32, Yahoo, batch 32, vocab 20k  (recipes/yahoo/vae.yaml)
    transformer  LSTM encoder 256 + 2-layer GPT-2 decoder 256     (recipes/ptb/transformer_mmd_vae.yaml)

    python benchmarks/throughput.py                                    # everything (tens of minutes on 2 cores)
    python benchmarks/throughput.py --steps 20 --sizes ptb --precisions fp32 --iw-sentences 0   # a quick look
    python benchmarks/throughput.py --iw-full                          # IW-NLL on all of PTB test
    python benchmarks/throughput.py --output benchmarks/results/throughput_cpu_epyc.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES: dict[str, tuple[str, str]] = {
    "ptb": ("ptb/vae.yaml", "LSTM 256/256, z 32, PTB, vocab 10k"),
    "yahoo": ("yahoo/vae.yaml", "LSTM 512/1024, z 32, Yahoo, vocab 20k"),
    "transformer": ("ptb/transformer_mmd_vae.yaml", "LSTM enc 256 + GPT-2 dec 2×256 (ffn 1024), PTB, vocab 10k"),
}
BASELINE_SIZES = ("ptb", "yahoo")  # the padded baseline is the LSTM VAE
IW_RECIPE = "ptb/vae.yaml"
TARGETS = {"mfu_fp32": 0.75, "bf16_speedup": 1.6, "baseline_speedup": 1.5, "iw_seconds": 600.0}


# --------------------------------------------------------------------------- model FLOPs, counted


def lstm_flops(input_dim: int, hidden: int, layers: int = 1, bidirectional: bool = False) -> int:
    """Forward FLOPs of one LSTM position: 4 gates × (input + recurrent) matmuls, 2 FLOPs per MAC."""
    dirs, total = 2 if bidirectional else 1, 0
    for _ in range(layers):
        total += dirs * 2 * 4 * hidden * (input_dim + hidden)
        input_dim = hidden * dirs
    return total


def sentence_flops(recipe: Any, vocab_size: int, n: int) -> int:
    """Forward FLOPs of one sentence of n tokens: encoder over BOS + n + EOS, decoder and softmax
    projection over its n + 1 targets, plus the per-sentence projections (q(z|x) head, z → decoder).
    Elementwise work (gates, softmax, layer norms) is left out: under 2 % here."""
    m, enc, dec = recipe.model, recipe.model.encoder, recipe.model.decoder
    latent = m.latent_dim if m.mode == "vae" else 0
    targets = n + 1
    total = 0
    if m.mode == "vae":
        enc_out = enc.hidden_dim * (2 if enc.bidirectional else 1)
        total += (n + 2) * lstm_flops(enc.embed_dim, enc.hidden_dim, enc.num_layers, enc.bidirectional)
        total += 2 * enc_out * 2 * latent
    if dec.kind == "lstm":
        in_dim = dec.embed_dim + (latent if dec.z_concat else 0)
        total += targets * lstm_flops(in_dim, dec.hidden_dim, dec.num_layers)
        if dec.z_to_init and latent:
            total += 2 * latent * 2 * dec.num_layers * dec.hidden_dim
    else:  # GPT-2 blocks: QKV + output projections, FFN, attention over the causal context
        d, memory = dec.hidden_dim, 1 if dec.injection == "memory" and latent else 0
        per_position = 2 * 4 * d * d + 2 * 2 * d * dec.ffn_dim
        context = targets * (targets + 1) // 2 + memory * targets  # Σ_t (t + memory)
        total += dec.num_layers * (targets * per_position + 2 * 2 * d * context)
        if latent:
            total += 2 * latent * (2 * dec.num_layers * d if memory else d)
    total += targets * 2 * dec.hidden_dim * vocab_size  # output projection
    return total


def train_flops_per_token(recipe: Any, vocab_size: int, lengths: list[int]) -> float:
    """Forward + backward (3 × forward) model FLOPs per target token, averaged over ``lengths``."""
    flops = sum(sentence_flops(recipe, vocab_size, n) for n in lengths)
    return 3.0 * flops / sum(n + 1 for n in lengths)


# --------------------------------------------------------------------------- the machine's limit


def matmul_throughput(sizes: list[int], dtype: torch.dtype, device: torch.device,
                      min_seconds: float = 0.5) -> dict[int, float]:
    """FLOP/s of torch.mm(a, b) for n × n matrices (2n³ FLOPs each), best of repeated timings."""
    result = {}
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(2):
            torch.mm(a, b)
        best, spent = math.inf, 0.0
        while spent < min_seconds:
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            took = time.perf_counter() - start
            best, spent = min(best, took), spent + took
        result[n] = 2.0 * n ** 3 / best
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine() -> dict[str, Any]:
    from textvae.utils.cpu import (ISA_LIMIT_VARIABLES, cpu_capability, cpu_description, cpu_has_bf16_hardware,
                                   cpu_model_name, lstm_bf16_supported)

    info = {"cpu": cpu_model_name(), "isa": cpu_capability(), "bf16_hardware": cpu_has_bf16_hardware(),
            "lstm_bf16_kernel": lstm_bf16_supported(),
            "isa_limits": {k: os.environ[k] for k in ISA_LIMIT_VARIABLES if os.environ.get(k)},
            "cpu_description": cpu_description(),
            "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "host": platform.node(), "load_start": os.getloadavg()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------- the padded baseline


class PaddedLSTMVAE(nn.Module):
    """The recipe's LSTM VAE (same parameters, same function) written the straightforward way:
    both LSTMs run over every padded position, the decoder's logits and log-softmax cover every
    position (padding included) before the padding is masked out of the sum."""

    def __init__(self, recipe: Any, vocab_size: int, pad_id: int):
        super().__init__()
        m, enc, dec = recipe.model, recipe.model.encoder, recipe.model.decoder
        self.latent, self.layers, self.hidden = m.latent_dim, dec.num_layers, dec.hidden_dim
        self.enc_embed = nn.Embedding(vocab_size, enc.embed_dim, padding_idx=pad_id)
        self.enc_lstm = nn.LSTM(enc.embed_dim, enc.hidden_dim, enc.num_layers, batch_first=True)
        self.head = nn.Linear(enc.hidden_dim, 2 * m.latent_dim)
        self.dec_embed = nn.Embedding(vocab_size, dec.embed_dim, padding_idx=pad_id)
        self.dec_lstm = nn.LSTM(dec.embed_dim + m.latent_dim, dec.hidden_dim, dec.num_layers, batch_first=True)
        self.z_to_state = nn.Linear(m.latent_dim, 2 * dec.num_layers * dec.hidden_dim)
        self.dropout = nn.Dropout(dec.dropout)
        self.output = nn.Linear(dec.hidden_dim, vocab_size)

    def forward(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """ids (B, T) [BOS … EOS pad …], lengths (B,) → rec (B,), KL (B,)."""
        b = ids.shape[0]
        states, _ = self.enc_lstm(self.enc_embed(ids))  # (B, T, H) over pads too
        last = states[torch.arange(b), lengths - 1]  # the state after EOS: what packing returns
        mu, logvar = self.head(last).chunk(2, dim=-1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        h, c = self.z_to_state(z).view(b, 2, self.layers, self.hidden).permute(1, 2, 0, 3)
        inputs, targets = ids[:, :-1], ids[:, 1:]
        x = torch.cat([self.dec_embed(inputs), z.unsqueeze(1).expand(-1, inputs.shape[1], -1)], dim=-1)
        out, _ = self.dec_lstm(x, (torch.tanh(h).contiguous(), c.contiguous()))
        logp = F.log_softmax(self.output(self.dropout(out)), dim=-1)  # (B, T-1, V), pads included
        nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        mask = torch.arange(inputs.shape[1], device=ids.device) < (lengths - 1).unsqueeze(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        return (nll * mask).sum(1), kl


# --------------------------------------------------------------------------- ablations: one step undone


def _unfused_softmax() -> None:
    """The output layer as ``cross_entropy(linear(h))``: (N, V) logits stored, log-softmax and its
    backward over them, the matmul in the autocast dtype and the softmax in fp32."""
    import textvae.modeling.vae as vae

    def linear_cross_entropy(hidden, weight, bias, targets, chunk_rows=None):
        return F.cross_entropy(F.linear(hidden, weight, bias).float(), targets, reduction="none")

    vae.linear_cross_entropy = linear_cross_entropy


def _packed_lstm() -> None:
    """Both LSTMs run on ``pack_padded_sequence`` (lengths copied to the host every call)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from textvae.modeling.lstm import LSTMDecoder, LSTMEncoder, run_lstm

    def encoder_forward(self, ids, lengths):
        x = self.embed_dropout(self.embed(ids))
        _, (h, _) = run_lstm(self.lstm, pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False))
        return torch.cat([h[-2], h[-1]], dim=-1) if self.bidirectional else h[-1]

    plain_decoder_forward = LSTMDecoder.forward

    def decoder_forward(self, ids, z, lengths=None, state=None):
        if lengths is None:
            return plain_decoder_forward(self, ids, z, None, state)
        x = self.embed_dropout(self.embed(ids))
        if self.z_concat:
            x = torch.cat([x, z.unsqueeze(1).expand(-1, x.shape[1], -1).to(x.dtype)], dim=-1)
        state = self.init_state(z, ids.shape[0]) if state is None else state
        out, _ = run_lstm(self.lstm, pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False), state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.output_dropout(out), None

    LSTMEncoder.forward, LSTMDecoder.forward = encoder_forward, decoder_forward


def _unfused_optimizer() -> None:
    """AdamW as a loop of per-tensor ops (``fused=False, foreach=False``)."""
    adamw = torch.optim.AdamW

    def unfused(params, **kwargs):
        return adamw(params, **{**kwargs, "fused": False, "foreach": False})

    torch.optim.AdamW = unfused


def _unpadded_vocabulary() -> None:
    """The fused softmax's matmuls at the vocabulary's own size (10,002 on PTB), not padded to 64."""
    import textvae.modeling.linear_ce as linear_ce

    linear_ce.VOCAB_QUANTUM = 1


def _short_score_chunks() -> None:
    """Scoring without gradients in chunks of 256 rows, as training does, not 1,024."""
    import textvae.modeling.linear_ce as linear_ce

    linear_ce.SCORE_CHUNK_ROWS = linear_ce.DEFAULT_CHUNK_ROWS


# name → (what is undone, how; recipe overrides)
ABLATIONS: dict[str, tuple[str, Any, list[str]]] = {
    "unfused_softmax": ("fused chunked softmax → cross_entropy(linear(h)) over stored logits", _unfused_softmax, []),
    "packed_lstm": ("unpacked LSTMs → pack_padded_sequence", _packed_lstm, []),
    "no_bucketing": ("length bucketing → shuffled batches", None, ["train.bucket=false"]),
    "unfused_adamw": ("fused AdamW → per-tensor AdamW", _unfused_optimizer, []),
    "denormals": ("denormals flushed → IEEE denormals", None, ["train.flush_denormal=false"]),
    "vocab_padding": ("vocabulary padded to a multiple of 64 → its own size", _unpadded_vocabulary, []),
    "score_chunks": ("scoring chunks of 1,024 rows → 256", _short_score_chunks, []),
}
IW_ABLATIONS = ["vocab_padding", "score_chunks"]  # the steps that the IW-NLL pass uses
TRAIN_ABLATIONS = [name for name in ABLATIONS if name != "score_chunks"]  # training scores with gradients


def undo_ablation(spec: dict[str, Any]) -> list[str]:
    """Undo the step ``spec`` names (if any) in this worker process; its recipe overrides."""
    if not spec.get("ablation"):
        return []
    _, undo, extra = ABLATIONS[spec["ablation"]]
    if undo is not None:
        undo()
    return extra


# --------------------------------------------------------------------------- workers (one subprocess each)


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _recipe(name: str, overrides: list[str]) -> Any:
    from textvae.config import load_recipe

    return load_recipe(REPO / "recipes" / SIZES[name][0], overrides)


def _data(recipe: Any) -> tuple[Any, Any]:
    from textvae.data import TextTokenizer, load_corpus, tokenize_corpus

    corpus = load_corpus(recipe.data, seed=recipe.train.seed)
    tokenizer = TextTokenizer.train(recipe.tokenizer, corpus["train"]["text"])
    tokenized, _ = tokenize_corpus(corpus, tokenizer, recipe.data)
    return tokenized, tokenizer


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The textvae trainer, as `textvae train` runs it: tokens/s between the log row after the
    warm-up steps and the last one (both read after a device sync by the trainer's window)."""
    from textvae.training import Trainer
    from textvae.utils.metrics import read_metrics

    warmup, steps = spec["warmup"], spec["steps"]
    total = warmup + steps
    extra = undo_ablation(spec)
    recipe = _recipe(spec["size"], extra + [f"train.precision={spec['precision']}", f"train.max_steps={total}",
                                    f"train.log_every={warmup}", f"train.eval_every={total}", "train.eval_batches=1",
                                    f"train.save_every={10 * total}", "train.tensorboard=false",
                                    f"train.compile={str(spec['compile']).lower()}"])
    run_dir = Path(tempfile.mkdtemp(prefix="throughput-"))
    try:
        trainer = Trainer(recipe, run_dir / "run", progress=False)
        trainer.setup()
        rss_before = _maxrss_mib()
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(trainer.device)
        trainer.fit()
        rows = [r for r in read_metrics(run_dir / "run") if r["split"] == "train"]
        timed = rows[1:]
        seconds = timed[-1]["elapsed"] - rows[0]["elapsed"]
        tokens = sum(r["tokens"] for r in timed)
        lengths = list(trainer.corpus["train"]["length"])
        result = {"tokens_per_s": tokens / seconds, "steps_per_s": steps / seconds, "seconds": seconds,
                  "tokens": tokens, "peak_rss_mib": _maxrss_mib(), "rss_growth_mib": _maxrss_mib() - rss_before,
                  "flops_per_token": train_flops_per_token(recipe, trainer.tokenizer.vocab_size, lengths),
                  "params": sum(p.numel() for p in trainer.model.parameters())}
        if trainer.device.type == "cuda":
            result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        return result
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def baseline_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """The padded baseline: unbucketed shuffled batches, every position computed, a host sync
    (``.item()``) per step for logging; same optimiser, clipping and batch size as the recipe."""
    from textvae.data import make_loader

    from textvae.utils.precision import flush_denormals

    recipe = _recipe(spec["size"], [])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    flush_denormals(device)  # as the trainer does: the ratio then measures the implementation alone
    corpus, tokenizer = _data(recipe)
    torch.manual_seed(recipe.train.seed)
    model = PaddedLSTMVAE(recipe, tokenizer.vocab_size, tokenizer.pad_id).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.train.lr)
    loader = make_loader(corpus["train"], tokenizer, recipe.train.batch_size, shuffle=True, seed=recipe.train.seed,
                         bucket=False)
    rss_before = _maxrss_mib()
    batches = iter(loader)
    tokens, losses = 0, []
    for step in range(spec["warmup"] + spec["steps"]):
        if step == spec["warmup"]:
            _sync(device)
            start = time.perf_counter()
        batch = next(batches).to(device)
        rec, kl = model(batch.ids, batch.lengths)
        loss = (rec + kl).sum() / batch.ids.shape[0]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.train.clip_norm or math.inf)
        optimizer.step()
        losses.append(loss.item())
        if step >= spec["warmup"]:
            tokens += batch.num_target_tokens
    seconds = time.perf_counter() - start
    return {"tokens_per_s": tokens / seconds, "steps_per_s": spec["steps"] / seconds, "seconds": seconds,
            "tokens": tokens, "peak_rss_mib": _maxrss_mib(), "rss_growth_mib": _maxrss_mib() - rss_before,
            "flops_per_token": train_flops_per_token(recipe, tokenizer.vocab_size, list(corpus["train"]["length"])),
            "last_loss": losses[-1]}


def iw_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """IW-NLL on PTB test as `textvae evaluate` computes it (the IW part only)."""
    from textvae.data import make_loader
    from textvae.evaluation.likelihood import iw_log_likelihood
    from textvae import TextVAE
    from textvae.modeling import VocabSpec

    recipe = _recipe("ptb", undo_ablation(spec))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    corpus, tokenizer = _data(recipe)
    test = corpus["test"]
    all_tokens = sum(n + 1 for n in test["length"])
    if spec["sentences"]:
        test = test.select(range(min(spec["sentences"], len(test))))
    vocab = VocabSpec(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
    torch.manual_seed(0)
    model = TextVAE(recipe.model, vocab, tokenizer).to(device).eval()
    loader = make_loader(test, tokenizer, 32, shuffle=False)
    generator = torch.Generator(device=device).manual_seed(0)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if spec["precision"] == "bf16"
                else torch.autocast(device.type, enabled=False))
    nll, tokens, sentences = 0.0, 0, 0
    _sync(device)
    start = time.perf_counter()
    with autocast:
        for batch in loader:
            batch = batch.to(device)
            out = iw_log_likelihood(model, batch.ids, batch.lengths, spec["samples"], spec["chunk_rows"], generator)
            nll -= out["iw_ll"].sum().item()
            tokens += batch.num_target_tokens
            sentences += batch.ids.shape[0]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "sentences": sentences, "tokens": tokens, "all_tokens": all_tokens,
            "all_sentences": len(corpus["test"]), "full_split_seconds": seconds * all_tokens / tokens,
            "iw_nll_per_sentence": nll / sentences, "peak_rss_mib": _maxrss_mib()}


WORKERS = {"train": train_worker, "ablation": train_worker, "baseline": baseline_worker, "iw": iw_worker}


def run_repeated(spec: dict[str, Any], threads: int, repeats: int) -> dict[str, Any]:
    """``repeats`` fresh measurements of one training spec, one after another: the row reports
    the median tokens/s (a shared 2-core machine moves single figures by up to ±10 %), and the
    spread."""
    results = [run_worker(spec, threads) for _ in range(repeats)]
    ranked = sorted(results, key=lambda r: r["tokens_per_s"])
    median = ranked[(len(ranked) - 1) // 2]  # a measured run, not an average of two
    return {**median, "repeats": [r["tokens_per_s"] for r in results]}


def run_worker(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, str(Path(__file__).resolve()), "--threads", str(threads), "--worker", json.dumps(spec)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**spec, **json.loads(line[len("RESULT "):])}
    raise RuntimeError(f"worker {spec} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


# --------------------------------------------------------------------------- report


def _mfu(tokens_per_s: float, run: dict[str, Any], peak: float) -> float:
    """Achieved model FLOP/s of ``run`` at ``tokens_per_s`` over the measured matmul ``peak``."""
    return tokens_per_s * run["flops_per_token"] / peak


def _mfu_range(run: dict[str, Any], peak: float) -> Optional[str]:
    """min–max MFU over a row's repeated measurements; None for a single one."""
    repeats = run.get("repeats", [])
    if len(repeats) < 2:
        return None
    return f"{_mfu(min(repeats), run, peak):.2f}–{_mfu(max(repeats), run, peak):.2f} ({len(repeats)} runs)"


def write_markdown(path: Path, command: str, info: dict[str, Any], peaks: dict[str, dict[int, float]],
                   runs: list[dict[str, Any]], iw: list[dict[str, Any]], args: argparse.Namespace) -> str:
    peak = {dtype: max(values.values()) for dtype, values in peaks.items()}
    lines = ["# Training throughput and model-FLOP utilisation", "",
             f"Command: `{command}`", "",
             f"Machine: {info['cpu_description']}; {info['cores']} logical cores, {args.threads} torch threads"
             + (f", GPU {info['gpu']}" if "gpu" in info else ", no GPU")
             + f"; torch {info['torch']}, Python {info['python']}; {time.strftime('%Y-%m-%d %H:%M')}. "
             f"Load average (1 min) when the run started: {info['load_start']:.2f} (near 0 on an idle machine; "
             "other work sharing the CPU makes every figure below low, the multi-threaded small-op ones most).", "",
             "## Matmul throughput (the limit)", "",
             "| dtype | " + " | ".join(f"n = {n}" for n in args.matmul_sizes) + " | best |",
             "|---|" + "---|" * (len(args.matmul_sizes) + 1)]
    for dtype, values in peaks.items():
        lines.append(f"| {dtype} | " + " | ".join(f"{values[n] / 1e9:.1f}" for n in args.matmul_sizes)
                     + f" | **{peak[dtype] / 1e9:.1f}** |")
    lines += ["", "GFLOP/s of torch.mm on n × n matrices (2n³ FLOPs), best of repeated timings.", "",
              "## Training", "",
              f"{args.steps} timed steps after {args.warmup} warm-up steps, batch 32, real batches of the "
              "recipe's corpus. tokens/s counts non-pad target tokens (words + EOS). Model FLOPs per token are "
              "counted analytically (matmuls of the LSTM gates / attention / FFN and the output projection, "
              "× 3 for forward + backward); MFU = tokens/s × FLOPs per token ÷ the best matmul GFLOP/s of the same "
              "dtype above. Peak RSS is the measuring process's; growth is its rise during training. With "
              "--repeats, a trainer row is the median of that many fresh measurements and MFU range their spread.", "",
              "| size | model | precision | implementation | tokens/s | steps/s | model GFLOP/token | achieved "
              "GFLOP/s | MFU | MFU range | peak RSS MiB | RSS growth MiB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        achieved = r["tokens_per_s"] * r["flops_per_token"]
        mfu = _mfu(r["tokens_per_s"], r, peak[r["precision"]])
        r["mfu"] = mfu
        impl = {"train": "textvae trainer", "baseline": "padded baseline"}.get(r["kind"]) \
            or f"trainer, undone: {ABLATIONS[r['ablation']][0]}"
        lines.append(f"| {r['size']} | {SIZES[r['size']][1]} | {r['precision']} | {impl} | {r['tokens_per_s']:,.0f} | "
                     f"{r['steps_per_s']:.2f} | {r['flops_per_token'] / 1e9:.4f} | {achieved / 1e9:.1f} | "
                     f"{mfu:.2f} | {_mfu_range(r, peak[r['precision']]) or '—'} | {r['peak_rss_mib']:,.0f} | "
                     f"{r['rss_growth_mib']:,.0f} |")
    lines += ["", "## Against the targets", ""]
    by = {(r["kind"], r["size"], r["precision"]): r for r in runs}
    for size in SIZES:
        fp32 = by.get(("train", size, "fp32"))
        if fp32 is None:
            continue
        if size in BASELINE_SIZES:
            met = fp32["mfu"] >= TARGETS["mfu_fp32"]
            spread = _mfu_range(fp32, peak["fp32"])
            lines.append(f"- {size}: fp32 MFU {fp32['mfu']:.2f}" + (f" (median; {spread})" if spread else "")
                         + f" (target ≥ {TARGETS['mfu_fp32']}): {'met' if met else 'not met'}.")
        bf16 = by.get(("train", size, "bf16"))
        if bf16 is not None:
            ratio = bf16["tokens_per_s"] / fp32["tokens_per_s"]
            lines.append(f"- {size}: bf16 / fp32 tokens/s = {ratio:.2f} (target ≥ {TARGETS['bf16_speedup']}): "
                         f"{'met' if ratio >= TARGETS['bf16_speedup'] else 'not met'}.")
        base = by.get(("baseline", size, "fp32"))
        if base is not None:
            ratio = fp32["tokens_per_s"] / base["tokens_per_s"]
            lines.append(f"- {size}: trainer / padded baseline tokens/s (fp32) = {ratio:.2f} (target ≥ "
                         f"{TARGETS['baseline_speedup']}): {'met' if ratio >= TARGETS['baseline_speedup'] else 'not met'}.")
    ablated = [r for r in runs if r["kind"] == "ablation"]
    if ablated:
        lines += ["", "## What each step gains", "",
                  "Each row undoes one step of the trainer (everything else as shipped) in the same run; the "
                  "gain is the full trainer's tokens/s over the undone one's.", "",
                  "| size | precision | step undone | tokens/s undone | tokens/s full | gain |", "|---|---|---|---|---|---|"]
        for r in ablated:
            full = by.get(("train", r["size"], r["precision"]))
            if full is not None:
                lines.append(f"| {r['size']} | {r['precision']} | {ABLATIONS[r['ablation']][0]} | "
                             f"{r['tokens_per_s']:,.0f} | {full['tokens_per_s']:,.0f} | "
                             f"{full['tokens_per_s'] / r['tokens_per_s']:.2f}× |")
    if iw:
        lines += ["", "## IW-NLL evaluation time (PTB test, K = %d)" % args.iw_samples, "",
                  "As `textvae evaluate` computes it: batches of 32, bucketed; iw_log_likelihood with "
                  f"chunk_rows = {args.chunk_rows}; untrained PTB-size model (time does not depend on the weights). "
                  "A subset is extrapolated to the whole split by target tokens.", "",
                  "| precision | implementation | sentences timed | target tokens | seconds | whole split (3,761 "
                  f"sentences) | target ≤ {TARGETS['iw_seconds'] / 60:.0f} min |",
                  "|---|---|---|---|---|---|---|"]
        for r in iw:
            whole = r["full_split_seconds"]
            how = "measured" if r["sentences"] == r["all_sentences"] else "extrapolated"
            impl = f"undone: {ABLATIONS[r['ablation']][0]}" if r.get("ablation") else "as shipped"
            lines.append(f"| {r['precision']} | {impl} | {r['sentences']:,} | {r['tokens']:,} | {r['seconds']:.1f} | "
                         f"{whole / 60:.1f} min ({how}) | {'met' if whole <= TARGETS['iw_seconds'] else 'not met'} |")
    text = "\n".join(lines) + "\n"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.with_suffix(".json").write_text(json.dumps({"command": command, "machine": info, "matmul": peaks,
                                                         "runs": runs, "iw": iw}, indent=2, default=str) + "\n")
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100, help="timed training steps per measurement")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    p.add_argument("--repeats", type=int, default=1,
                   help="measure each trainer row this many times and report the median and the range")
    p.add_argument("--no-baseline", action="store_true", help="skip the padded baseline")
    p.add_argument("--ablations", nargs="*", default=TRAIN_ABLATIONS, choices=TRAIN_ABLATIONS,
                   help="steps to undo one at a time, measuring what each gains (default: all; none: --ablations)")
    p.add_argument("--ablation-sizes", nargs="+", default=["ptb"], choices=list(SIZES),
                   help="sizes whose steps are undone one at a time (default: ptb)")
    p.add_argument("--compile", action="store_true", help="train with train.compile=true")
    p.add_argument("--matmul-sizes", nargs="+", type=int, default=[1024, 2048, 4096])
    p.add_argument("--iw-sentences", type=int, default=300,
                   help="IW-NLL timed on the first N PTB test sentences, extrapolated (0: skip)")
    p.add_argument("--iw-full", action="store_true", help="IW-NLL on the whole PTB test split")
    p.add_argument("--iw-samples", type=int, default=500)
    p.add_argument("--chunk-rows", type=int, default=512, help="rows per decoder pass in iw_log_likelihood")
    p.add_argument("--iw-ablations", nargs="*", default=IW_ABLATIONS, choices=IW_ABLATIONS,
                   help="steps undone one at a time in the IW-NLL timing too (default: all; none: --iw-ablations)")
    p.add_argument("--output", type=Path, help="markdown results file (a .json beside it)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    if args.worker:
        # A benchmark measures bf16 on every CPU, emulated ones included (training refuses those).
        os.environ.setdefault("TEXTVAE_ALLOW_EMULATED_BF16", "1")
        spec = json.loads(args.worker)
        print("RESULT " + json.dumps(WORKERS[spec["kind"]](spec)), flush=True)
        return

    command = "python benchmarks/throughput.py " + " ".join(sys.argv[1:])
    info = machine()
    print(f"CPU: {info['cpu_description']}; {args.threads} torch threads", flush=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    peaks = {}
    for name in args.precisions:
        peaks[name] = matmul_throughput(args.matmul_sizes, dtypes[name], device)
        print(f"matmul {name}: " + ", ".join(f"n={n} {v / 1e9:.1f} GFLOP/s" for n, v in peaks[name].items()), flush=True)

    runs = []
    common = {"steps": args.steps, "warmup": args.warmup, "compile": args.compile}
    for size in args.sizes:
        for precision in args.precisions:
            runs.append(run_repeated({"kind": "train", "size": size, "precision": precision, **common}, args.threads,
                                     args.repeats))
            print(f"{size} {precision} trainer: {runs[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
        if size in BASELINE_SIZES and not args.no_baseline:
            runs.append(run_worker({"kind": "baseline", "size": size, "precision": "fp32", **common}, args.threads))
            print(f"{size} fp32 padded baseline: {runs[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
        if size in args.ablation_sizes:
            for precision in args.precisions:
                for name in args.ablations:
                    if name == "packed_lstm" and size == "transformer":
                        continue
                    runs.append(run_worker({"kind": "ablation", "ablation": name, "size": size,
                                            "precision": precision, **common}, args.threads))
                    print(f"{size} {precision} with {name} undone: {runs[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)

    iw = []
    if args.iw_sentences or args.iw_full:
        for precision in args.precisions:
            if precision == "fp16":
                continue
            for ablation in [None, *args.iw_ablations]:
                spec = {"kind": "iw", "precision": precision, "samples": args.iw_samples, "chunk_rows": args.chunk_rows,
                        "sentences": None if args.iw_full else args.iw_sentences, "ablation": ablation}
                iw.append(run_worker(spec, args.threads))
                print(f"IW-NLL K={args.iw_samples} {precision}{f' with {ablation} undone' if ablation else ''}: "
                      f"{iw[-1]['seconds']:.1f} s for {iw[-1]['sentences']} sentences → whole split "
                      f"{iw[-1]['full_split_seconds'] / 60:.1f} min", flush=True)

    print()
    print(write_markdown(args.output, command, info, peaks, runs, iw, args))


if __name__ == "__main__":
    main()
