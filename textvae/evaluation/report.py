"""The collapse dashboard: report.md with metrics tables and plots of validation curves.

The first table is always the validation split (the last validation of training), so runs compare
like with like; what ``textvae evaluate`` measured (eval.json, usually the test split, possibly on
the first N sentences only) is a second table whose split and sentence columns say what each row is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from textvae.errors import TextVAEError
from textvae.utils.metrics import read_metrics
from textvae.utils.io import atomic_write, atomic_write_text

# What a person looks at to see whether the latent was used.
CURVES = [("rec", "reconstruction (nats/sent)"), ("kl", "KL (nats/sent)"), ("mi", "mutual information"),
          ("au", "active units"), ("mmd", "MMD(q(z), p(z))"), ("neg_elbo", "−ELBO (nats/sent)")]
SUMMARY_KEYS = [("neg_elbo", "{:.2f}"), ("rec", "{:.2f}"), ("kl", "{:.2f}"), ("mi", "{:.2f}"), ("au", "{}"),
                ("mmd", "{:.4f}"), ("ppl_elbo", "{:.1f}")]
EVAL_KEYS = [("iw_nll", "{:.2f}"), ("ppl", "{:.1f}"), ("neg_elbo", "{:.2f}"), ("rec", "{:.2f}"), ("kl", "{:.2f}"),
             ("mi", "{:.2f}"), ("au", "{}"), ("mmd", "{:.4f}"), ("bleu", "{:.3f}"), ("hit_limit", "{:.3f}")]
SPLIT_NAMES = {"valid": "validation"}
"""metrics.jsonl calls the validation split ``valid``; data_stats.json and ``evaluate --split`` say ``validation``."""


class ConfigError(ValueError, TextVAEError):
    pass


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not valid JSON ({err}); delete it or write it again (it is rewritten by "
                          "the command that made it).") from err
    return data if isinstance(data, dict) else {}


def validation_metrics(run_dir: Path) -> tuple[dict[str, Any], Optional[int]]:
    """The run's last validation (summary.json's, else the last ``valid`` row of metrics.jsonl) and its step.

    Always the validation split, so that the rows of several runs compare like with like; what
    ``textvae evaluate`` wrote (eval.json) is reported apart, by :func:`evaluation_metrics`.
    """
    rows = [r for r in read_metrics(run_dir) if r.get("split") == "valid"]
    valid = _read_json(run_dir / "summary.json").get("valid")
    if isinstance(valid, dict) and valid:
        step = next((r["step"] for r in reversed(rows) if r.get("loss") == valid.get("loss")), None)
        return valid, step
    return (rows[-1], rows[-1].get("step")) if rows else ({}, None)


def evaluation_metrics(run_dir: Path) -> dict[str, Any]:
    """What ``textvae evaluate`` wrote into the run directory (eval.json), or {}."""
    return _read_json(run_dir / "eval.json")


def _split_size(run_dir: Path, split: str) -> Optional[int]:
    """Sentences the run's data gives ``split`` (data_stats.json), if recorded."""
    stats = _read_json(run_dir / "data_stats.json").get(SPLIT_NAMES.get(split, split))
    return stats.get("kept") if isinstance(stats, dict) else None


def _sentences(run_dir: Path, split: str, metrics: dict[str, Any]) -> str:
    """``n``, or ``n of N`` when fewer than the N sentences of the run's split were scored.

    An eval.json with ``data`` (``evaluate --data``: another corpus) is not compared with the
    run's own split sizes.
    """
    n = metrics.get("n_sentences")
    if not isinstance(n, int):
        return "—"
    total = _split_size(run_dir, split) if metrics.get("data") is None else None
    return f"{n} of {total}" if total is not None and n < total else str(n)


def _cells(metrics: dict[str, Any], keys: list[tuple[str, str]]) -> list[str]:
    return [fmt.format(metrics[k]) if metrics.get(k) is not None else "—" for k, fmt in keys]


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
            raise ConfigError(f"{d} is not a textvae run directory (no metrics.jsonl). "
                              "Pass the --output directory of a `textvae train` run.")
    out_dir = Path(output) if output else (dirs[0] if len(dirs) == 1 else Path("report"))
    out_dir.mkdir(parents=True, exist_ok=True)
    names = _unique_names(dirs)
    runs = {name: read_metrics(d) for name, d in zip(names, dirs)}
    plot = plot_curves(runs, out_dir / "curves.png")

    lines = ["# textvae report", "", "## Validation", "",
             "The last validation of each run during training: every row is the validation split. "
             "Nats per sentence.", "",
             "| run | split | step | sentences | " + " | ".join(k for k, _ in SUMMARY_KEYS) + " |",
             "|---|---|---|---|" + "---|" * len(SUMMARY_KEYS)]
    partial = False
    for name, d in zip(names, dirs):
        m, step = validation_metrics(d)
        sentences = _sentences(d, "validation", m)
        partial |= " of " in sentences
        lines.append(f"| {name} | validation | {step if step is not None else '—'} | {sentences} | "
                     + " | ".join(_cells(m, SUMMARY_KEYS)) + " |")
    evaluated = {name: (d, evaluation_metrics(d)) for name, d in zip(names, dirs)}
    evaluated = {name: (d, m) for name, (d, m) in evaluated.items() if m}
    if evaluated:
        splits = {m.get("split", "?") for _, m in evaluated.values()}
        lines += ["", "## `textvae evaluate` (eval.json)", "",
                  "The last `textvae evaluate` of each run, on the split in the split column"
                  + (f" (these rows mix splits: {', '.join(sorted(splits))}; compare rows of the same split only)"
                     if len(splits) > 1 else "")
                  + ". K: importance samples of iw_nll. Nats per sentence.", "",
                  "| run | model | split | sentences | K | " + " | ".join(k for k, _ in EVAL_KEYS) + " |",
                  "|---|---|---|---|---|" + "---|" * len(EVAL_KEYS)]
        for name, (d, m) in evaluated.items():
            split = m.get("split", "?")
            sentences = _sentences(d, split, m)
            partial |= " of " in sentences
            model = Path(m["model_dir"]).name + "/" if m.get("model_dir") else "—"
            lines.append(f"| {name} | {model} | {split} | {sentences} | {m.get('iw_samples', '—')} | "
                         + " | ".join(_cells(m, EVAL_KEYS)) + " |")
    if partial:
        lines += ["", "*n of N*: n of the N sentences of that split (as the run's data settings give it) were "
                  "scored, e.g. by `textvae evaluate --max-sentences`: a partial evaluation, not comparable with "
                  "one of the whole split."]
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
