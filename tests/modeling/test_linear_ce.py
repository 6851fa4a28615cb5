"""The fused output softmax equals cross_entropy(linear(h)) in values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from textvae.modeling.linear_ce import ROW_QUANTUM, SCORE_CHUNK_ROWS, VOCAB_QUANTUM, linear_cross_entropy


def operands(n=70, h=12, v=41, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, requires_grad=True)
    weight = (torch.randn(v, h, generator=g) * 0.5).requires_grad_()
    b = (torch.randn(v, generator=g)).requires_grad_() if bias else None
    targets = torch.randint(0, v, (n,), generator=g)
    return hidden, weight, b, targets


def grads(loss, tensors):
    return torch.autograd.grad(loss, [t for t in tensors if t is not None])


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("chunk_rows", [1, 16, 33, 1000])
def test_values_and_gradients_match_cross_entropy(bias, chunk_rows):
    hidden, weight, b, targets = operands(bias=bias)
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
    out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=chunk_rows)
    assert out.shape == (70,) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for a, e in zip(grads(out.sum() / 7, (hidden, weight, b)), grads(ref.sum() / 7, (hidden, weight, b))):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("v", [VOCAB_QUANTUM, VOCAB_QUANTUM + 1, 2 * VOCAB_QUANTUM - 1])
@pytest.mark.parametrize("bias", [True, False])
def test_vocabulary_padding_changes_no_value_or_gradient(v, bias):
    # The vocabulary is padded to a multiple of VOCAB_QUANTUM inside (for the matmul's speed): the
    # padded columns must take no probability, and the gradients keep the parameters' shapes.
    hidden, weight, b, targets = operands(n=40, v=v, bias=bias, seed=v)
    targets[0] = v - 1  # the last real column, next to the padding
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
    out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=16)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    tensors = (hidden, weight, b)
    for row_weight in (torch.ones(40), torch.linspace(-1.0, 2.0, 40)):  # the equal and the exact path
        out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=16)
        ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
        got, want = grads((out * row_weight).sum(), tensors), grads((ref * row_weight).sum(), tensors)
        for a, e in zip(got, want):
            assert a.shape == e.shape
            torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


def test_unequal_row_weights_take_the_exact_path():
    # The forward precomputes gradients for equal row weights; unequal ones must still be exact.
    hidden, weight, b, targets = operands()
    row_weight = torch.linspace(-1.0, 2.0, 70)
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
    out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=32)
    for a, e in zip(grads((out * row_weight).sum(), (hidden, weight, b)),
                    grads((ref * row_weight).sum(), (hidden, weight, b))):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)


def test_row_padding_reaches_no_gradient():
    # n not a multiple of ROW_QUANTUM: the zero padding rows must not add to the bias gradient.
    n = ROW_QUANTUM + 3
    hidden, weight, b, targets = operands(n=n)
    out = linear_cross_entropy(hidden, weight, b, targets)
    (gb,) = torch.autograd.grad(out.sum(), [b])
    # Σ over rows of (softmax − one-hot) sums to zero over the vocabulary, row by row.
    assert abs(gb.sum().item()) < 1e-4
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
    (eb,) = torch.autograd.grad(ref.sum(), [b])
    torch.testing.assert_close(gb, eb, rtol=1e-5, atol=1e-5)


def test_tied_weights_accumulate_both_uses():
    embed = torch.nn.Embedding(41, 12)
    ids = torch.randint(0, 41, (30,))
    targets = torch.randint(0, 41, (30,))
    hidden = torch.tanh(embed(ids))
    out = linear_cross_entropy(hidden, embed.weight, None, targets).sum()
    (fused,) = torch.autograd.grad(out, [embed.weight])
    hidden = torch.tanh(embed(ids))
    ref = F.cross_entropy(F.linear(hidden, embed.weight), targets, reduction="sum")
    (expected,) = torch.autograd.grad(ref, [embed.weight])
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)


def test_frozen_weight_gets_no_gradient_and_hidden_still_does():
    hidden, weight, b, targets = operands()
    weight.requires_grad_(False)
    b.requires_grad_(False)
    out = linear_cross_entropy(hidden, weight, b, targets)
    out.sum().backward()
    assert weight.grad is None and b.grad is None
    h2 = hidden.detach().requires_grad_()
    F.cross_entropy(F.linear(h2, weight, b), targets, reduction="sum").backward()
    assert hidden.grad.abs().sum() > 0
    torch.testing.assert_close(hidden.grad, h2.grad, rtol=1e-5, atol=1e-6)


def test_default_chunks_with_and_without_gradients_match_cross_entropy():
    # More rows than a scoring chunk (SCORE_CHUNK_ROWS) and than a training chunk: both defaults.
    n = SCORE_CHUNK_ROWS + 77
    hidden, weight, b, targets = operands(n=n)
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
    with torch.no_grad():
        scored = linear_cross_entropy(hidden, weight, b, targets)
    torch.testing.assert_close(scored, ref.detach(), rtol=1e-5, atol=1e-5)
    out = linear_cross_entropy(hidden, weight, b, targets)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    for a, e in zip(grads(out.sum(), (hidden, weight, b)), grads(ref.sum(), (hidden, weight, b))):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)


def test_no_grad_scoring_returns_plain_tensor():
    hidden, weight, b, targets = operands()
    with torch.no_grad():
        out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=8)
    assert not out.requires_grad and out.grad_fn is None
    torch.testing.assert_close(out, F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none").detach())


def test_bf16_autocast_matches_autocast_reference_and_stays_fp32():
    hidden, weight, b, targets = operands(n=100, h=64, v=300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.cross_entropy(F.linear(hidden, weight, b).float(), targets, reduction="none")
        out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=40)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    gw_fused = torch.autograd.grad(out.sum(), [weight])[0]
    gw_ref = torch.autograd.grad(ref.sum(), [weight])[0]
    assert gw_fused.dtype == torch.float32
    torch.testing.assert_close(gw_fused, gw_ref, rtol=2e-2, atol=2e-2)  # bf16 matmuls on both sides


def test_empty_input_and_shape_errors():
    _, weight, b, _ = operands()
    out = linear_cross_entropy(torch.zeros(0, 12, requires_grad=True), weight, b, torch.zeros(0, dtype=torch.long))
    assert out.shape == (0,)
    out.sum().backward()
    assert torch.equal(weight.grad, torch.zeros_like(weight)) and torch.equal(b.grad, torch.zeros_like(b))
    with pytest.raises(ValueError, match=r"hidden must be \(N, H\)"):
        linear_cross_entropy(torch.zeros(3, 2, 12), weight, b, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        linear_cross_entropy(torch.zeros(3, 12), weight, b, torch.zeros(3, dtype=torch.long), chunk_rows=0)


@pytest.mark.parametrize("flush", [True, False])
def test_a_target_far_below_the_top_logit_keeps_an_exact_finite_loss(flush):
    # Targets whose probability is below the smallest float (e^-300): the loss comes from the
    # log-softmax, so it stays finite and exact, denormals flushed or not; the gradient
    # (softmax − one-hot) is unchanged by flooring probabilities below e^-80.
    hidden, weight, b, targets = operands(n=6, h=4, v=9)
    with torch.no_grad():
        hidden.mul_(0).add_(torch.eye(6, 4) * 50.0)
        weight.copy_(torch.randn(9, 4, generator=torch.Generator().manual_seed(1)) * 3.0)
    ref64 = F.cross_entropy(F.linear(hidden.double(), weight.double(), b.double()), targets, reduction="none")
    assert ref64.max() > 200  # several targets lie far beyond e^-87
    try:
        torch.set_flush_denormal(flush)
        out = linear_cross_entropy(hidden, weight, b, targets, chunk_rows=4)
        torch.testing.assert_close(out.double(), ref64, rtol=1e-5, atol=1e-3)
        got = grads(out.sum(), (hidden, weight, b))
    finally:
        torch.set_flush_denormal(False)
    ref = F.cross_entropy(F.linear(hidden, weight, b), targets, reduction="none")
    for a, e in zip(got, grads(ref.sum(), (hidden, weight, b))):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-5)
