"""The grid summary (the paper's Table 1): per cell, baseline, the transferred vector at λ* and ITS
with 95% CIs and exact McNemar p-values (each run's own statistics); across the cells of each task,
the mean gain with a bootstrap CI over cells; failed cells listed with their error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xsteer.stats import Estimate
from xsteer.storage import atomic_write_bytes

__all__ = ["cell_row", "mean_ci", "render_summary", "summarise_cells", "write_summary"]


def mean_ci(values: Sequence[float], *, n_boot: int = 10_000, alpha: float = 0.05, seed: int = 0) -> Estimate:
    """Mean with a percentile-bootstrap CI, resampling the values (here: cells) with replacement."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value.")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(x.mean()), float(low), float(high), int(x.size), 1 - alpha)


def cell_row(outcome) -> dict[str, Any]:
    """One cell's Table 1 row: accuracies with CIs, deltas vs baseline, McNemar p, λ*."""
    result = outcome.result
    stats = result.statistics
    cfg = result.config
    row: dict[str, Any] = {
        "cell": outcome.cell, "task": cfg["task"], "parent": cfg["parent"], "child": cfg["child"],
        "n_test": len(result.item_ids["test"]), "baseline": stats.baseline["test"].to_dict(),
        "lambda_star": result.conditions["transferred"].lambda_star,
    }
    for key, label in ((("transferred", "lambda_star"), "transferred"), (("transferred", "its"), "its"),
                       (("child_own", "its"), "child_own_its"), (("self_consistency", "its"), "self_consistency")):
        comp = stats.comparison(*key)
        if comp is not None:
            row[label] = {"accuracy": comp.accuracy.to_dict(), "delta": comp.delta.to_dict(),
                          "p": comp.mcnemar.p_value}
    if "its" in stats.random:
        row["random_its_mean"] = stats.random["its"].mean
    return row


def summarise_cells(outcomes) -> dict[str, Any]:
    """Rows for finished cells, failures, and per task the mean Δ (λ* and ITS) across cells."""
    rows = [cell_row(o) for o in outcomes if o.status == "done"]
    across: dict[str, Any] = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        across[task] = {
            what: mean_ci([r[what]["delta"]["value"] for r in mine]).to_dict()
            for what in ("transferred", "its") if all(what in r for r in mine)
        }
    failed = [{"cell": o.cell, "error": o.error} for o in outcomes if o.status != "done"]
    return {"n_cells": len(outcomes), "n_done": len(rows), "cells": rows, "across_cells": across, "failed": failed}


def _ci(e: dict[str, float], signed: bool = False) -> str:
    f = "+.3f" if signed else ".3f"
    return f"{e['value']:{f}} [{e['low']:{f}}, {e['high']:{f}}]"


def render_summary(summary: dict[str, Any]) -> str:
    """Markdown: Table 1 (one row per cell), the across-cell means, failed cells."""
    lines = [
        f"# Grid summary: {summary['n_done']} of {summary['n_cells']} cells done",
        "",
        "Test accuracy with 95% bootstrap CIs; Δ vs baseline with paired CIs; p = exact McNemar.",
        "",
        "| task | parent | child | n | baseline | λ* | transferred @λ* | Δ | p | ITS | Δ ITS | p ITS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["cells"]:
        t, i = r.get("transferred"), r.get("its")
        lines.append(
            f"| {r['task']} | {r['parent']} | {r['child']} | {r['n_test']} | {_ci(r['baseline'])} | "
            f"{r['lambda_star']:g} | {_ci(t['accuracy'])} | {_ci(t['delta'], True)} | {t['p']:.3g} | "
            f"{_ci(i['accuracy'])} | {_ci(i['delta'], True)} | {i['p']:.3g} |"
        )
    if summary["across_cells"]:
        lines += ["", "## Mean gain across cells (bootstrap over cells, 95% CI)", "",
                  "| task | cells | Δ transferred @λ* | Δ ITS |", "|---|---|---|---|"]
        for task, e in summary["across_cells"].items():
            lines.append(f"| {task} | {e['transferred']['n']} | {_ci(e['transferred'], True)} | {_ci(e['its'], True)} |")
    if summary["failed"]:
        lines += ["", "## Failed cells", ""] + [f"- `{f['cell']}`: {f['error']}" for f in summary["failed"]]
    return "\n".join(lines) + "\n"


def write_summary(outcomes, out_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """Write ``grid_summary.json`` and ``grid_summary.md`` into ``out_dir``; return the summary and
    the Markdown path."""
    out = Path(out_dir)
    summary = summarise_cells(outcomes)
    atomic_write_bytes(out / "grid_summary.json", json.dumps(summary, indent=1, allow_nan=False).encode())
    atomic_write_bytes(out / "grid_summary.md", render_summary(summary).encode())
    return summary, out / "grid_summary.md"
