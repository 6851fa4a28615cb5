"""The collapse dashboard: report.md with a metrics table and plots of validation curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from textvae.errors import TextVAEError
from textvae.training.metrics import read_metrics
from textvae.utils.io import atomic_write, atomic_write_text

# What a person looks at to see whether the latent was used.
CURVES = [("rec", "reconstruction (nats/sent)"), ("kl", "KL (nats/sent)"), ("mi", "mutual information"),
          ("au", "active units"), ("mmd", "MMD(q(z), p(z))"), ("neg_elbo", "−ELBO (nats/sent)")]
SUMMARY_KEYS = [("neg_elbo", "{:.2f}"), ("rec", "{:.2f}"), ("kl", "{:.2f}"), ("mi", "{:.2f}"), ("au", "{}"),
                ("mmd", "{:.4f}"), ("ppl_elbo", "{:.1f}")]


class ReportError(ValueError, TextVAEError):
    pass


def _final_metrics(run_dir: Path) -> dict[str, Any]:
    """eval.json when `textvae evaluate` wrote one, else the last validation row."""
    for name in ("eval.json", "summary.json"):
        path = run_dir / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            return data.get("valid", data) if name == "summary.json" else data
    rows = [r for r in read_metrics(run_dir) if r.get("split") == "valid"]
    return rows[-1] if rows else {}


def plot_curves(runs: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """One panel per metric in CURVES, one line per run, validation rows over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for ax, (key, title) in zip(axes.flat, CURVES):
        for name, rows in runs.items():
            points = [(r["step"], r[key]) for r in rows if r.get("split") == "valid" and key in r]
            if points:
                ax.plot(*zip(*points), marker=".", label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def write_report(run_dirs: Sequence[str | Path], output: Optional[str | Path] = None) -> Path:
    """Write report.md (+ curves.png) for one run into its directory, or for several into ``output``."""
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / "metrics.jsonl").is_file():
            raise ReportError(f"{d} is not a textvae run directory (no metrics.jsonl). "
                              "Pass the --output directory of a `textvae train` run.")
    out_dir = Path(output) if output else (dirs[0] if len(dirs) == 1 else Path("report"))
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names(dirs)
    runs = {name: read_metrics(d) for name, d in zip(names, dirs)}
    plot = plot_curves(runs, out_dir / "curves.png")

    lines = ["# textvae report", "", "Final metrics (validation at the last step; test when `textvae evaluate` "
             "wrote eval.json). Nats per sentence.", "",
             "| run | " + " | ".join(k for k, _ in SUMMARY_KEYS) + " |", "|---|" + "---|" * len(SUMMARY_KEYS)]
    for name, d in zip(names, dirs):
        m = _final_metrics(d)
        cells = [fmt.format(m[k]) if k in m and m[k] is not None else "—" for k, fmt in SUMMARY_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "A collapsed posterior shows as KL, MI and active units near 0 while the reconstruction "
              "term matches a plain language model.", "", f"![validation curves]({plot.name})", ""]
    report = out_dir / "report.md"
    atomic_write_text(report, "\n".join(lines))
    return report


def _unique_names(dirs: list[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) < len(names):
        names = [str(d) for d in dirs]
    return names
