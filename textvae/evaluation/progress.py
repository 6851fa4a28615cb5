"""An evaluation that stops and continues: what ``textvae evaluate`` has accumulated after some batches.

The published protocol (K = 500 importance samples over a whole test split) takes one to three hours
of a CPU per model. The state after each batch — the running sums, every sentence's posterior and
greedy reconstruction, and the sampling stream — is small, so it is saved beside the output file, and
``textvae evaluate … --resume`` continues from it and ends with the numbers an uninterrupted
evaluation gives, bit for bit on a CPU.

One safetensors file holds it, written atomically: the tensors (μ, log σ², z, the generator state)
and, in its string metadata, the rest as JSON (sums, reconstructions, the settings it belongs to).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from textvae.errors import ConfigError
from textvae.evaluation.sums import Sums
from textvae.utils.io import atomic_write

FORMAT = 1


def progress_path(output: Path) -> Path:
    """Where the evaluation writing ``output`` keeps its progress (``eval.json`` → ``eval.json.partial``)."""
    return output.with_name(output.name + ".partial")


@dataclass
class EvalProgress:
    """The accumulated state of an evaluation after ``batches`` batches of its (fixed-order) loader.

    ``identity`` is what the numbers depend on (weights, split, K, seed, batch size, …): an
    evaluation continues only from progress with an equal identity.
    """

    identity: dict[str, Any] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0
    sums: Sums = field(default_factory=Sums)
    mus: list[Tensor] = field(default_factory=list)
    logvars: list[Tensor] = field(default_factory=list)
    zs: list[Tensor] = field(default_factory=list)
    hyps: list[list[str]] = field(default_factory=list)
    refs: list[list[str]] = field(default_factory=list)
    cut: int = 0
    generator_state: Optional[Tensor] = None  # the samples' stream after ``batches`` batches

    def save(self, path: Path) -> None:
        tensors = {"generator_state": self.generator_state.cpu().contiguous()}
        if self.mus:
            tensors.update(mu=torch.cat(self.mus).contiguous(), logvar=torch.cat(self.logvars).contiguous(),
                           z=torch.cat(self.zs).contiguous())
        meta = {"format": FORMAT, "identity": self.identity, "batches": self.batches, "seconds": self.seconds,
                "sums": self.sums.totals(), "hyps": self.hyps, "refs": self.refs, "cut": self.cut}
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"progress": json.dumps(meta)}))

    @classmethod
    def load(cls, path: Path, identity: dict[str, Any]) -> "EvalProgress":
        """The progress saved at ``path``, refused (with what differs) unless it belongs to ``identity``."""
        try:
            with safe_open(str(path), "pt") as f:
                tensors = {key: f.get_tensor(key) for key in f.keys()}
                meta = json.loads((f.metadata() or {})["progress"])
        except (SafetensorError, OSError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"{path} is not a readable textvae evaluation progress file ({err}); delete it to "
                              "evaluate from the start.") from err
        if meta.get("format") != FORMAT:
            raise ConfigError(f"{path} was written by another textvae version (format {meta.get('format')}); "
                              "delete it to evaluate from the start.")
        saved = meta["identity"]
        differ = [f"{key}: {saved.get(key)!r} then, {identity.get(key)!r} now"
                  for key in sorted(set(saved) | set(identity)) if saved.get(key) != identity.get(key)]
        if differ:
            raise ConfigError(f"{path} belongs to another evaluation ({'; '.join(differ)}). Run the command it "
                              "was started with, or delete it to evaluate from the start.")
        state = cls(identity=saved, batches=meta["batches"], seconds=meta["seconds"],
                    sums=Sums.from_totals(meta["sums"]), hyps=meta["hyps"], refs=meta["refs"], cut=meta["cut"],
                    generator_state=tensors["generator_state"])
        if "mu" in tensors:
            state.mus, state.logvars, state.zs = [tensors["mu"]], [tensors["logvar"]], [tensors["z"]]
        return state
