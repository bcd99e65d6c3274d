"""Readout-fidelity reports: report.md (summary table, parent-holds flags, per-layer table) and
report.json (every number) from a :class:`FidelityResult`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from .readout import FidelityResult

__all__ = ["format_markdown", "format_summary_table", "format_strength_table", "write_report"]


def _ci(v: float, lo: float, hi: float) -> str:
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _frame_markdown(frame) -> str:
    """A DataFrame as a Markdown table, floats to 3 decimals."""
    cols = list(frame.columns)
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    rows += ["| " + " | ".join(fmt(v) for v in rec) + " |" for rec in frame.itertuples(index=False)]
    return "\n".join(rows)


def format_summary_table(results: Iterable[FidelityResult]) -> str:
    """Markdown table, one row per direction × concept × layer map × adapter. The verdict: held-out
    AUROC averaged over all child layers (chance where the map does not reach) of the transferred
    vector beside child-own, the random p95, mapped_random, wrong_concept and child_own on k pairs.
    The diagnostic: the transferred vector at its best child layer (chosen on train pairs)."""
    lines = [
        "| parent → child | concept | parent holds (best AUROC) | map | adapter | layers mapped "
        "| **transferred, all layers** | child_own, all layers | random p95, all layers | mapped_random, all layers "
        "| wrong_concept, all layers | child_own on k pairs, all layers "
        "| best layer: child L (← parent L) transferred [95% CI] | child_own best [95% CI] (L) | median cos(child_own) | mean R² |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    num = lambda v: "–" if v != v else f"{v:.3f}"
    for r in results:
        for row in r.table().to_dict("records"):
            holds = ("yes" if row["parent_holds"] else "**NO**") + f" ({row['parent_best_auroc']:.3f})"
            ks = [k for k in row if k.startswith("child_own_k") and k.endswith("_all_layers")]
            by_k = ", ".join(f"k={k[len('child_own_k'):-len('_all_layers')]}: {num(row[k])}" for k in ks) or "–"
            lines.append(
                f"| {r.parent} → {r.child} | {row['concept']} | {holds} | {row['layer_map']} | {row['adapter']} "
                f"| {row['layers_mapped']}/{row['child_layers']} | **{num(row['transferred_all_layers'])}** "
                f"| {num(row['child_own_all_layers'])} | {num(row['random_p95_all_layers'])} "
                f"| {num(row['mapped_random_all_layers'])} | {num(row['wrong_concept_all_layers'])} | {by_k} "
                f"| {row['child_layer']} (← {row['parent_layer']}) "
                f"{_ci(row['transferred'], row['transferred_low'], row['transferred_high'])} "
                f"| {_ci(row['child_own'], row['child_own_low'], row['child_own_high'])} ({row['child_own_layer']}) "
                f"| {row['median_cos_child_own']:.3f} | {row['mean_r2']:.3f} |"
            )
    return "\n".join(lines)


def format_strength_table(result: FidelityResult) -> str:
    """Markdown table: how strongly parent and child hold each concept (best layer chosen on train pairs)."""
    lines = [
        "| concept | model | holds | best layer | held-out AUROC [95% CI] | sign agreement |",
        "|---|---|---|---|---|---|",
    ]
    for c in result.concepts:
        for s in (c.parent, c.child):
            b = s.best
            lines.append(
                f"| {c.concept.name} | {s.model} | {'yes' if s.holds else '**NO**'} | {b.layer} "
                f"| {_ci(b.auroc.value, b.auroc.low, b.auroc.high)} | {b.sign_agreement:.3f} |"
            )
    return "\n".join(lines)


def format_markdown(result: FidelityResult) -> str:
    """The full report.md text of one parent → child result."""
    out = [f"# Readout fidelity: {result.parent} → {result.child}", ""]
    if result.flags:
        out += ["**Concepts the parent does not hold** (their transfer numbers measure nothing to carry):", ""]
        out += [f"- {f}" for f in result.flags] + [""]
    else:
        out += ["The parent holds every concept below (best-layer held-out AUROC ≥ threshold, CI above 0.5).", ""]
    out += ["## How strongly each model holds each concept", "", format_strength_table(result), ""]
    out += ["## Transferred beside every control (held-out test pairs)", "", format_summary_table([result]), ""]
    out += [
        "The verdict columns average the held-out AUROC over *all* child layers; a layer the layer map does "
        "not reach counts as chance (0.5). Random p95: 95th percentile of "
        f"{result.settings['n_random']} random unit child directions per layer; mapped_random: the mean over "
        f"{result.settings.get('n_mapped_random', 0)} random parent directions carried by the same transfer; "
        "wrong_concept: the run's other concepts' parent vectors carried by it; child_own on k pairs: the "
        "child's own vector fitted on only k train pairs. Every direction is signed on the train pairs. The "
        "best-layer columns are a diagnostic (too easy a test): the transferred vector at the child layer "
        "where it scores best on the *train* pairs, child_own likewise.",
        "",
        f"Anchors: {json.dumps(result.anchors)}. Settings: {json.dumps(result.settings)}. "
        f"Timing: {json.dumps({k: round(v, 2) for k, v in result.timing.items()})}.",
        "",
        "## Per layer",
        "",
        _frame_markdown(result.layer_table()),
        "",
    ]
    return "\n".join(out)


def write_report(result: FidelityResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` and ``report.json`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "report.md", out_dir / "report.json"
    md.write_text(format_markdown(result), encoding="utf-8")
    js.write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
    return {"markdown": md, "json": js}
