"""The pieces a run is built from — its data, optimizer and loaders — from the recipe."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from textvae.config import Recipe, TrainConfig
from textvae.data import TextTokenizer, corpus_report, load_corpus, make_loader, tokenize_corpus
from textvae.training.distributed import Replicas, on_main


def prepare_data(recipe: Recipe, replicas: Replicas, tokenizer: Optional[TextTokenizer],
                 say: Callable[[str], None]) -> tuple[Any, TextTokenizer, dict[str, Any]]:
    """The tokenized corpus, the tokenizer and the data statistics of a run.

    Args:
        tokenizer: the exact tokenizer the run must use (on resume, the one it started with; with
            ``train.init_from``, the source model's); None trains one, on rank 0, handed to the
            others (all ranks must number tokens alike).
    """
    corpus = load_corpus(recipe.data, seed=recipe.train.seed)
    if tokenizer is None:
        tokenizer = on_main(replicas, lambda: TextTokenizer.train(recipe.tokenizer, corpus["train"]["text"]))
    tokenized, stats = tokenize_corpus(corpus, tokenizer, recipe.data)
    # What loading and tokenization dropped (blank lines, label-only lines, too long), said once
    # on the console and kept in data_stats.json.
    say(corpus_report(corpus, stats))
    for split, dropped in corpus.dropped.items():
        if split in stats:
            stats[split]["dropped_on_load"] = dict(dropped)
    return tokenized, tokenizer, stats


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, energy_lr: Optional[float] = None) -> torch.optim.Optimizer:
    """The run's optimizer. With ``energy_lr`` (an energy-based prior's ``model.ebm.lr``) the prior's
    weights form a second group at that rate; the schedule multiplies each group's own rate."""
    params: Any = [p for p in model.parameters() if p.requires_grad]
    if energy_lr is not None:
        energy = {id(p) for p in model.prior.parameters()}
        params = [{"params": [p for p in params if id(p) not in energy]},
                  {"params": [p for p in params if id(p) in energy], "lr": energy_lr}]
    # Fused: one kernel over all parameters instead of a loop of small ops per tensor (on the PTB
    # model, AdamW takes 35 → 11 ms a step on one CPU thread).
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def make_loaders(corpus: Any, tokenizer: TextTokenizer, cfg: TrainConfig, replicas: Replicas, local_batch: int,
                 device: torch.device) -> tuple[DataLoader, DataLoader]:
    """The training loader (this rank's share) and the validation loader (the whole split)."""
    # Each rank takes every world_size-th batch of one shared batch list (LengthBucketSampler), of
    # batch_size / world_size sentences: a global batch of batch_size per step.
    pin = device.type == "cuda"  # page-locked host batches: asynchronous copies to the GPU
    train = make_loader(corpus["train"], tokenizer, local_batch, shuffle=True, seed=cfg.seed, bucket=cfg.bucket,
                        num_workers=cfg.num_workers, num_replicas=replicas.world_size, rank=replicas.rank,
                        pin_memory=pin)
    valid = make_loader(corpus["validation"], tokenizer, cfg.batch_size, shuffle=False, seed=cfg.seed,
                        bucket=cfg.bucket, num_workers=cfg.num_workers, pin_memory=pin)
    # A DataLoader draws a base seed from the global RNG each time it starts a pass; a private
    # generator keeps that draw out of the training RNG stream, so resuming mid-epoch is exact.
    train.generator = torch.Generator().manual_seed(cfg.seed)
    valid.generator = torch.Generator().manual_seed(cfg.seed)
    return train, valid
