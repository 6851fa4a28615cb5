"""Data parallelism over the processes torchrun starts: process group, rank agreement, gathers.

``torchrun --nproc_per_node=N -m textvae train RECIPE`` (or ``textvae train --nproc N RECIPE``)
starts N copies of the trainer; each reads its place from the environment torchrun sets
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``). Without those variables everything here is a no-op
for a single process, so the trainer calls these helpers unconditionally.

Conventions the trainer follows:

- ``train.batch_size`` is the *global* batch; each rank takes ``batch_size / world_size``.
- Rank 0 alone writes (recipe, metrics, checkpoints, model/); the others wait for it in
  :func:`on_main`, which also hands them rank 0's result or error, so a failed write stops
  every rank with the same message instead of leaving them at a barrier.
- Sums and counts are reduced, never means: division happens last (see the trainer's window).
"""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Mapping, Optional, TypeVar

import torch
import torch.distributed as torch_dist
from torch import Tensor


from textvae.errors import ConfigError, RunError

T = TypeVar("T")


@dataclass(frozen=True)
class Replicas:
    """This process's place among the data-parallel replicas (1 of 1 without torchrun)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    """Index on this machine: the CUDA device this rank uses."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, writes and prints."""
        return self.rank == 0


def replicas_from_env(environ: Mapping[str, str] = os.environ) -> Replicas:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` as torchrun sets them (absent: one process)."""
    try:
        world = int(environ.get("WORLD_SIZE", 1))
        rank = int(environ.get("RANK", 0))
        local = int(environ.get("LOCAL_RANK", rank))
    except ValueError as err:
        raise RunError(f"WORLD_SIZE/RANK/LOCAL_RANK must be integers ({err}); they are set by "
                               "torchrun, not by hand.") from err
    if world < 1 or not 0 <= rank < world:
        raise RunError(f"RANK={rank} is not in [0, WORLD_SIZE={world}); start the run with torchrun "
                               "(or textvae train --nproc N).")
    return Replicas(world, rank, local)


def local_batch_size(global_batch: int, world_size: int) -> int:
    """The per-rank share of ``train.batch_size`` (the global batch).

    Raises:
        ConfigError: ``world_size`` does not divide the batch.
    """
    if global_batch % world_size:
        lower = global_batch - global_batch % world_size
        hint = f"{lower} or {lower + world_size}" if lower else f"{world_size}"
        raise ConfigError(
            f"train.batch_size={global_batch} is the global batch, split evenly over the {world_size} processes, "
            f"and {world_size} does not divide it. Choose train.batch_size={hint}, or a number of processes "
            f"that divides {global_batch}.")
    return global_batch // world_size


def init_process_group(replicas: Replicas, device: torch.device) -> torch.device:
    """Join the process group (nccl on CUDA, gloo on CPU) and return this rank's device.

    On CUDA each rank takes ``cuda:LOCAL_RANK`` whatever index ``train.device`` named. Does
    nothing for a single process, or when the caller already initialised the group.
    """
    if not replicas.enabled:
        return device
    if device.type == "cuda":
        if replicas.local_rank >= torch.cuda.device_count():
            raise RunError(
                f"local rank {replicas.local_rank} has no GPU: this machine has {torch.cuda.device_count()} "
                "CUDA device(s). Start at most that many processes per node (--nproc / --nproc_per_node).")
        device = torch.device("cuda", replicas.local_rank)
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                      rank=replicas.rank, world_size=replicas.world_size,
                                      timeout=timedelta(minutes=30))
    return device


def destroy_process_group() -> None:
    """Leave the process group, first collecting garbage that may still hold it (a DDP reducer in a
    reference cycle). Gloo's worker threads, torn down only at interpreter shutdown, once aborted a
    rank of a CPU run at exit ("terminate called without an active exception"); that is the likely
    cause, not a proven one: the abort did not recur in 10 repeats."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.destroy_process_group()


def on_main(replicas: Replicas, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its result (or raise its error) on every rank.

    The other ranks wait in the broadcast, so this is also the barrier after rank 0's writes.
    """
    if not replicas.enabled:
        return fn()
    outcome: list[Any] = [None]
    error: Optional[BaseException] = None
    if replicas.is_main:
        try:
            outcome[0] = ("ok", fn())
        except Exception as err:  # noqa: BLE001 - handed to the other ranks, then raised here too
            error, outcome[0] = err, ("error", err)
    torch_dist.broadcast_object_list(outcome, src=0)
    if error is not None:
        raise error
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def all_reduce_sum(tensor: Tensor, replicas: Replicas) -> Tensor:
    """The sum over ranks of ``tensor`` (a new tensor; the input is left alone)."""
    if not replicas.enabled:
        return tensor
    total = tensor.detach().clone()
    torch_dist.all_reduce(total, op=torch_dist.ReduceOp.SUM)
    return total


def all_gather_object(obj: Any, replicas: Replicas) -> list[Any]:
    """Every rank's ``obj``, in rank order (small picklable things: RNG states, digests)."""
    if not replicas.enabled:
        return [obj]
    gathered: list[Any] = [None] * replicas.world_size
    torch_dist.all_gather_object(gathered, obj)
    return gathered


def gather_sizes(sizes: list[int], replicas: Replicas, device: torch.device) -> list[list[int]]:
    """Every rank's list of micro-batch sizes for this step, (world_size, grad_accum), rank order.

    The last batches of an epoch can differ in size between ranks; the MMD gather and the
    step's sentence count need everyone's. One small collective per step (and a host read).
    """
    if not replicas.enabled:
        return [list(sizes)]
    local = torch.tensor(sizes, dtype=torch.long, device=device)
    slots = [torch.empty_like(local) for _ in range(replicas.world_size)]
    torch_dist.all_gather(slots, local)
    return torch.stack(slots).tolist()


def all_gather_with_grad(x: Tensor, sizes: Optional[list[int]] = None) -> Tensor:
    """Concatenate every rank's ``x`` (n_r, …) along dim 0, in rank order; gradient reaches this
    rank's part only.

    The gathered copies are constants (``all_gather`` has no backward); this rank's slot holds
    ``x`` itself, with its graph. A loss of the result therefore sends each rank the gradient
    with respect to its own rows, and the ranks' gradients *summed* (DDP averages them, which the
    trainer undoes) are the single-process gradient of that loss with respect to all rows. See the
    trainer for how the MMD term is weighted so that holds.

    Args:
        x: this rank's rows.
        sizes: every rank's row count (when they can differ); gathered here when None.
    Returns:
        (Σ_r n_r, …) — ``x`` unchanged in a single process.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return x
    world, rank = torch_dist.get_world_size(), torch_dist.get_rank()
    if sizes is None:
        sizes = [row[0] for row in gather_sizes([x.shape[0]], Replicas(world, rank), x.device)]
    if sizes[rank] != x.shape[0]:
        raise ValueError(f"sizes[{rank}]={sizes[rank]} but this rank has {x.shape[0]} rows")
    # all_gather needs equal shapes: pad every rank's rows to the largest count, cut after.
    padded = x.detach().new_zeros((max(sizes), *x.shape[1:]))
    padded[:x.shape[0]] = x.detach()
    slots = [torch.empty_like(padded) for _ in range(world)]
    torch_dist.all_gather(slots, padded)
    parts = [slot[:n] for slot, n in zip(slots, sizes)]
    parts[rank] = x  # this rank's rows keep their graph
    return torch.cat(parts)


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every parameter and buffer (names, dtypes, shapes and bytes): equal iff bitwise equal."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def global_mmd_samples(z: Optional[Tensor], sizes: list[int],
                       replicas: Replicas) -> tuple[Optional[Tensor], Optional[Tensor]]:
    """Under DDP, the MMD's samples for the global batch: every rank's z (this rank's with its
    graph) and as many prior samples, in one gather.

    Each rank draws the prior samples for its own rows from its own stream, so the estimator is
    the single-process one of the global batch whatever the number of processes. In one process:
    (None, None), and infovae_loss uses z and draws the prior itself.
    """
    if z is None or not replicas.enabled:
        return None, None
    prior = torch.randn(z.shape, device=z.device)
    both = all_gather_with_grad(torch.cat([z.float(), prior], dim=1), sizes)  # (N, 2D)
    return both[:, :z.shape[1]], both[:, z.shape[1]:]


def compare_replicas(module: torch.nn.Module, replicas: Replicas) -> dict[str, Any]:
    """Every rank's weights digest (collective): DDP keeps replicas bitwise identical, and this
    checks it; ``identical`` False is a bug to report."""
    digests = all_gather_object(weights_digest(module), replicas)
    return {"world_size": len(digests), "weights_sha256": digests, "identical": len(set(digests)) == 1}
