"""Aggressive inference-network training (He et al. 2019, "Lagging Inference Networks and Posterior
Collapse in Variational Autoencoders", ICLR).

He et al. trace posterior collapse to an inference network that lags behind the true posterior
early in training: the decoder learns to ignore z before q(z|x) carries anything. While
``objective.aggressive`` is on, each step of :class:`~textvae.training.trainer.Trainer`

1. updates the encoder and Gaussian head alone, on one fresh training batch after another, until
   their loss stops improving (:func:`inner_loop_done`), at most ``max_inner_steps`` updates;
2. then updates the decoder alone, once, on the next batch.

It ends for good at the first validation whose MI did not rise over the previous one's
(:func:`mi_rose`); from then on every step updates all parameters together, as without it.

Both kinds of update use the run's one optimizer: gradients reach only the parameters of the part
being trained (``backward(inputs=...)``), and torch optimizers skip a parameter whose ``.grad`` is
None, so the other part's weights and optimizer state (AdamW moments, step count, weight decay)
stay exactly as they were. The inner updates draw batches from the training stream like ordinary
steps, so the data position a checkpoint records covers them and resuming stays exact.

Simplified from the paper, and said here so that numbers are read rightly:

- convergence is judged per window of ``window`` inner updates, counted from the loop's first
  update: the loss per token over the window against the previous window's (the paper judges it
  on the loss of its most recent inner mini-batches);
- gradient clipping (``train.clip_norm``) applies to the norm of the part being updated;
- the learning rate is the run's schedule at the current step, for both parts.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from torch import Tensor, nn

from textvae.config import AggressiveConfig
from textvae.errors import ConfigError

__all__ = ["end_message", "inner_loop_done", "mi_rose", "run_inner_loop", "split_parameters"]


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """The trainable parameters of the inference network (encoder + Gaussian head) and of the
    rest of the model (the decoder), in ``model.parameters()`` order.

    Raises:
        ConfigError: either list is empty (a language model, or every part frozen).
    """
    parts = [part for part in (getattr(model, "encoder", None), getattr(model, "head", None)) if part is not None]
    inference = {id(p) for part in parts for p in part.parameters() if p.requires_grad}
    trainable = [p for p in model.parameters() if p.requires_grad]
    encoder = [p for p in trainable if id(p) in inference]
    decoder = [p for p in trainable if id(p) not in inference]
    if not encoder or not decoder:
        empty = "encoder and Gaussian head" if not encoder else "decoder"
        raise ConfigError(f"objective.aggressive.enabled=true alternates encoder and decoder updates, but the "
                          f"{empty} has no trainable parameter (see model.mode and model.freeze).")
    return encoder, decoder


def inner_loop_done(inner_steps: int, window_losses: Sequence[float], cfg: AggressiveConfig) -> bool:
    """Whether the inner loop stops after ``inner_steps`` encoder updates.

    It stops at ``cfg.max_inner_steps``, or when a window of ``cfg.window`` updates has just
    completed and its loss per token is not below the previous window's (a non-finite loss
    stops it too).

    Args:
        inner_steps: encoder updates taken so far in this inner loop (>= 1).
        window_losses: the loss per token of each complete window so far, oldest first.
    """
    if inner_steps >= cfg.max_inner_steps:
        return True
    if inner_steps % cfg.window or len(window_losses) < 2:
        return False
    return not window_losses[-1] < window_losses[-2]


def run_inner_loop(encoder_step: Callable[[], tuple[Tensor, Tensor]], cfg: AggressiveConfig) -> int:
    """Call ``encoder_step`` until :func:`inner_loop_done`; the number of calls.

    Args:
        encoder_step: one encoder-only update on a fresh batch, returning its loss summed over
            sentences and its number of tokens (tensors; read once per window, one host sync).
    """
    window_losses: list[float] = []
    loss_sum: Tensor | float = 0.0
    tokens: Tensor | int = 0
    steps = 0
    while True:
        loss, n_tokens = encoder_step()
        loss_sum, tokens, steps = loss_sum + loss.detach().double(), tokens + n_tokens, steps + 1
        if steps % cfg.window == 0:
            window_losses.append(float(loss_sum / tokens))
            loss_sum, tokens = 0.0, 0
        if inner_loop_done(steps, window_losses, cfg):
            return steps


def mi_rose(previous: Optional[float], current: float) -> bool:
    """Whether aggressive training goes on after a validation with MI ``current``.

    Args:
        previous: the MI of the previous validation; None at the first, which always goes on.
    """
    return previous is None or current > previous  # False for a NaN MI as well


def end_message(step: int, previous: float, current: float) -> str:
    """The console line said when aggressive training ends."""
    return (f"aggressive inference training ends at step {step}: validation MI {previous:.4f} -> {current:.4f} "
            "did not rise; encoder and decoder train together from here on.")
