"""The output softmax, fused: −log softmax(h Wᵀ + b)[target] for N rows, a chunk of rows at a time.

The vocabulary projection dominates a sentence VAE's FLOPs, and written as ``cross_entropy(linear(h))``
it also writes, re-reads and back-propagates an (N, V) fp32 logits tensor several times (log-softmax,
its backward, the zero-filled one-hot gradient, the casts under autocast): on a CPU with bf16 matrix
units that elementwise traffic costs more than the matmuls. Here each chunk of rows is projected,
reduced in fp32 while it is still in cache, and — when gradients are wanted — turned into its softmax
gradient at once (the Liger-kernel idea), so no (N, V) tensor is ever stored.

The gradient computed during the forward assumes every row's loss has the same upstream weight,
which is what a summed or averaged loss gives. When the backward receives unequal row weights, the
weight and bias gradients are recomputed chunk by chunk with those weights: the result is exact in
every case, only slower in the unusual one.

Under autocast the matmuls run in the autocast dtype (bf16/fp16 matrix units) and everything after
them (bias, log-sum-exp, softmax, the loss) in fp32.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

DEFAULT_CHUNK_ROWS = 256
# Scoring without gradients (evaluation, the IW bound) keeps no softmax gradient per chunk, so a
# taller chunk costs only its logits buffer (1,024 × 10k fp32 = 41 MB) and the matmul runs faster.
SCORE_CHUNK_ROWS = 1024
# Rows are padded to a multiple of this: oneDNN builds a kernel per matmul shape, and a batch's
# token count (hence the last chunk's height) changes every step; a handful of heights stay cached.
ROW_QUANTUM = 32
LOGP_FLOOR = -80.0  # e^-80 ≈ 1.8e-35: still a normal fp32 number
# The vocabulary is padded to a multiple of this (zero weight rows, −inf bias: probability 0). With
# a vocabulary of 10,002 the fp32 (256, 256) × (256, V) product ran at 53 GFLOP/s on 2 AVX2 cores, and
# at 68 with V = 10,048; PTB's K = 500 IW-NLL took 87 minutes unpadded, 70 padded (training gained 2 %:
# benchmarks/results/throughput_cpu_epyc_avx2_softmax.md).
VOCAB_QUANTUM = 64


def _compute_dtype(x: Tensor) -> torch.dtype:
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return x.dtype


def _chunk(h: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor, work: Tensor,
           want_grad: bool, grad_out: Optional[Tensor] = None) -> tuple[Tensor, Optional[Tensor]]:
    """One chunk of rows: nll (n,) fp32 and, when wanted, softmax − one-hot (n, V).

    The matmul (and the bias, as under autocast) runs in the operands' dtype; its result is turned
    into fp32 log-probabilities in ``work`` (reused by every chunk: no allocation per chunk). The
    gradient is written to ``grad_out`` (any float dtype: the softmax is computed in fp32 and
    rounded once, on the way out), or else in place in ``work``.
    """
    buf = work[:h.shape[0]]
    if bias is None:
        logits = torch.mm(h, weight.t(), out=buf) if h.dtype == buf.dtype else h @ weight.t()
    else:
        bias = bias.to(h.dtype)
        logits = torch.addmm(bias, h, weight.t(), out=buf) if h.dtype == buf.dtype \
            else torch.addmm(bias, h, weight.t())
    if logits is not buf:
        buf.copy_(logits)
    torch._log_softmax(buf, 1, False, out=buf)  # row-wise, element-by-element: safe in place
    index = targets.unsqueeze(1)
    nll = -buf.gather(1, index).squeeze(1)
    if not want_grad:
        return nll, None
    # exp of a log-probability below −87 is a denormal float, and an fp32 matmul fed denormals
    # runs up to 200× slower on x86 unless denormals are flushed (train.flush_denormal). Such
    # probabilities are < 2e-38: flooring them at e^LOGP_FLOOR changes no gradient visibly.
    buf.clamp_(min=LOGP_FLOOR)
    grad = buf.exp_() if grad_out is None else torch.exp(buf, out=grad_out)
    grad.scatter_add_(1, index, grad.new_full(index.shape, -1.0))
    return nll, grad


def _score(hidden: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor, chunk_rows: int,
           dtype: torch.dtype, want: tuple[bool, bool, bool] = (False, False, False)):
    """The chunked pass: nll (N,) and, for the inputs flagged in ``want`` (hidden, weight, bias),
    their gradients for unit row weights; also the padded operands the backward may need."""
    n = hidden.shape[0]
    pad = -n % ROW_QUANTUM
    h = torch.nn.functional.pad(hidden.to(dtype), (0, 0, 0, pad))  # zero rows: no weight gradient
    t = torch.nn.functional.pad(targets, (0, pad))
    w, b, vocab = weight.to(dtype), bias, weight.shape[0]
    extra = -vocab % VOCAB_QUANTUM
    if extra:  # padded columns: logit −inf, so the softmax and every real gradient are unchanged
        w = torch.nn.functional.pad(w, (0, 0, 0, extra))
        b = torch.nn.functional.pad(bias if bias is not None else w.new_zeros(vocab, dtype=torch.float32),
                                    (0, extra), value=float("-inf"))
    rows_total, padded_vocab = n + pad, w.shape[0]
    want_h, want_w, want_b = want
    want_grad = want_h or want_w or want_b
    nll = torch.empty(rows_total, dtype=torch.float32, device=h.device)
    work = torch.empty(min(chunk_rows, rows_total), padded_vocab, dtype=torch.float32, device=h.device)
    grad_b = torch.zeros(padded_vocab, dtype=torch.float32, device=h.device) if want_b else None
    grad_h = torch.empty_like(h) if want_h else None
    # The weight gradient: in fp32, accumulated chunk by chunk in place. In a lower precision the
    # logits' gradient is kept for all rows instead, so that it is one matmul and one cast to
    # fp32 (per-chunk partial sums would each need a cast, and summing them in bf16 loses bits).
    low = dtype != torch.float32
    grad_w = torch.zeros(w.shape, dtype=torch.float32, device=h.device) if want_w and not low else None
    grad_logits = torch.empty(rows_total, padded_vocab, dtype=dtype, device=h.device) if want_grad and low else None
    for s in range(0, rows_total, chunk_rows):
        rows = slice(s, s + chunk_rows)
        nll[rows], g = _chunk(h[rows], w, b, t[rows], work, want_grad,
                              grad_logits[rows] if grad_logits is not None else None)
        if g is None:
            continue
        if s + chunk_rows > n:  # padding rows must not reach the bias gradient
            g[max(n - s, 0):] = 0.0
        if grad_b is not None:
            grad_b += g.sum(0, dtype=torch.float32)
        if grad_h is not None:  # per chunk: few distinct shapes, whose oneDNN kernels stay cached
            torch.mm(g, w, out=grad_h[rows])
        if grad_w is not None:
            grad_w.addmm_(g.t(), h[rows])
    if want_w and low:
        grad_w = (grad_logits.t() @ h).float()
    # The padded weight rows' gradients are dropped; their zero weights gave grad_h nothing.
    grad_w = None if grad_w is None else grad_w[:vocab]
    grad_b = None if grad_b is None else grad_b[:vocab]
    return nll[:n], (h, w, b, t), (grad_h, grad_w, grad_b)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                chunk_rows: int, dtype: torch.dtype) -> Tensor:
        nll, (h, w, b, t), grads = _score(hidden, weight, bias, targets, chunk_rows, dtype,
                                          tuple(ctx.needs_input_grad[:3]))
        ctx.save_for_backward(h, w, b, t, *grads)
        ctx.chunk_rows, ctx.n, ctx.vocab = chunk_rows, hidden.shape[0], weight.shape[0]
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return nll

    @staticmethod
    def backward(ctx, grad_nll: Tensor):
        with torch.autocast(grad_nll.device.type, enabled=False):
            return _LinearCrossEntropy._backward(ctx, grad_nll)

    @staticmethod
    def _backward(ctx, grad_nll: Tensor):
        h, w, bias, t, grad_h, grad_w, grad_b = ctx.saved_tensors  # w, bias: vocabulary-padded
        (hidden_dtype, weight_dtype), n, vocab = ctx.dtypes, ctx.n, ctx.vocab
        d_hidden = d_weight = d_bias = None
        if grad_h is not None:  # exact for any row weights
            d_hidden = (grad_h[:n].float() * grad_nll.unsqueeze(1)).to(hidden_dtype)
        if grad_w is None and grad_b is None:
            return d_hidden, None, None, None, None, None
        if n == 0 or bool((grad_nll == grad_nll[:1]).all()):  # a sum or mean of the rows: the usual case
            scale = grad_nll[0] if n else 0.0
            d_weight = None if grad_w is None else grad_w * scale
            d_bias = None if grad_b is None else grad_b * scale
        else:  # unequal row weights: recompute each chunk's softmax, weighted
            row_weight = torch.nn.functional.pad(grad_nll.float(), (0, h.shape[0] - n))  # padding weighs 0
            d_weight = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
            d_bias = None if grad_b is None else torch.zeros(bias.shape, dtype=torch.float32, device=w.device)
            work = torch.empty(min(ctx.chunk_rows, h.shape[0]), w.shape[0], dtype=torch.float32, device=w.device)
            for s in range(0, h.shape[0], ctx.chunk_rows):
                rows = slice(s, s + ctx.chunk_rows)
                _, g = _chunk(h[rows], w, bias, t[rows], work, True)
                g.mul_(row_weight[rows].unsqueeze(1))
                if d_bias is not None:
                    d_bias += g.sum(0)
                d_weight += (g.to(h.dtype).t() @ h[rows]).float()
            d_weight = d_weight[:vocab] if grad_w is not None else None
            d_bias = None if d_bias is None else d_bias[:vocab]
        if d_weight is not None:
            d_weight = d_weight.to(weight_dtype)
        if d_bias is not None:
            d_bias = d_bias.to(bias.dtype)
        return d_hidden, d_weight, d_bias, None, None, None


def linear_cross_entropy(hidden: Tensor, weight: Tensor, bias: Optional[Tensor], targets: Tensor,
                         chunk_rows: Optional[int] = None) -> Tensor:
    """Per-row −log softmax(hidden · weightᵀ + bias)[targets], in fp32.

    Equal (to rounding) to ``F.cross_entropy(F.linear(hidden, weight, bias).float(), targets,
    reduction="none")``, with the same gradients, without materialising the (N, V) logits.

    Args:
        hidden: (N, H) the decoder states of the scored positions.
        weight: (V, H) the output layer (possibly tied to the input embeddings); bias (V,) or None.
        targets: (N,) the token ids to score.
        chunk_rows: rows projected at a time (memory ∝ chunk_rows · V); by default
            ``DEFAULT_CHUNK_ROWS`` when a gradient is wanted, ``SCORE_CHUNK_ROWS`` when not.
    Returns:
        (N,) fp32 negative log-likelihoods.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(f"hidden must be (N, H) and targets (N,); got {tuple(hidden.shape)} and "
                         f"{tuple(targets.shape)}.")
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    dtype = _compute_dtype(hidden)
    with torch.autocast(hidden.device.type, enabled=False):
        if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (hidden, weight, bias)):
            return _LinearCrossEntropy.apply(hidden, weight, bias, targets, chunk_rows or DEFAULT_CHUNK_ROWS, dtype)
        # scoring only: no autograd
        return _score(hidden, weight, bias, targets, chunk_rows or SCORE_CHUNK_ROWS, dtype)[0]
