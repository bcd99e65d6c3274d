"""Statistics and the Markdown report of a transfer run, computed from a ``TransferResult`` alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xsteer.results import TransferResult
from xsteer.stats import accuracy_ci, compare

__all__ = ["build_statistics", "load_and_render", "render_markdown", "write_report"]


def build_statistics(result: TransferResult, *, n_boot: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Accuracies with 95% bootstrap CIs, deltas vs baseline with paired CIs, exact McNemar p-values
    (Holm-adjusted over the non-random conditions) and the random-direction summary."""
    base = result.baseline["test"]
    stats: dict[str, Any] = {
        "baseline": {s: accuracy_ci(c, n_boot=n_boot, seed=seed).to_dict() for s, c in result.baseline.items()}
    }
    family: dict[str, list[bool]] = {}
    randoms: dict[str, dict[str, list[bool]]] = {}
    curves: dict[str, Any] = {}
    for name, cond in result.conditions.items():
        entries = {}
        if cond.lambda_star is not None:
            entries["lambda_star"] = cond.at_lambda_star()
            curves[name] = {
                split: {repr(lam): accuracy_ci(c, n_boot=n_boot, seed=seed).to_dict() for lam, c in by.items()}
                for split, by in cond.correct.items()
            }
        entries["its"] = cond.its_correct
        target = randoms.setdefault(name, {}) if cond.kind == "random" else family
        for what, correct in entries.items():
            if cond.kind == "random":
                target[what] = correct
            else:
                family[f"{name}@{what}"] = correct
    compared = compare(base, family, n_boot=n_boot, seed=seed)
    stats["comparisons"] = {k: v.to_dict() for k, v in compared.items()}
    stats["accuracy_by_lambda"] = curves
    if randoms:
        stats["random"] = _random_summary(result, randoms)
    return stats


def _random_summary(result: TransferResult, randoms: dict[str, dict[str, list[bool]]]) -> dict[str, Any]:
    """Distribution of the random directions' accuracies and where the transferred vector falls in it."""
    out: dict[str, Any] = {"n": len(randoms)}
    steered = result.conditions.get("transfer")
    for what in ("lambda_star", "its"):
        accs = np.array([np.mean(r[what]) for r in randoms.values()])
        entry = {"mean": float(accs.mean()), "min": float(accs.min()), "max": float(accs.max())}
        if steered is not None:
            mine = np.mean(steered.at_lambda_star() if what == "lambda_star" else steered.its_correct)
            # Empirical p: share of random directions doing at least as well (with the +1 correction).
            entry["transfer"] = float(mine)
            entry["n_at_least"] = int(np.sum(accs >= mine))
            entry["p_vs_random"] = float((1 + entry["n_at_least"]) / (1 + len(accs)))
        out[what] = entry
    return out


def _fmt(est: dict[str, float]) -> str:
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def _fmt_delta(est: dict[str, float]) -> str:
    return f"{est['value']:+.3f} [{est['low']:+.3f}, {est['high']:+.3f}]"


def render_markdown(result: TransferResult, stats: dict[str, Any]) -> str:
    """A readable report: setup, main table, controls, relative steering size, transfer diagnostics."""
    cfg = result.config
    lines = [
        f"# Transfer report: {cfg['parent']} → {cfg['child']} on {cfg['task']}",
        "",
        f"- method `{cfg['method']}`, {result.diagnostics.get('n_pairs', '?')} contrast pairs; layer map "
        f"`{cfg['layer_map']}`, adapter `{cfg['adapter']}`, {result.diagnostics.get('n_anchors', '?')} anchors",
        f"- scale `{cfg['scale']}`, λ grid ({len(cfg['lambdas'])} values): {', '.join(f'{l:g}' for l in cfg['lambdas'])}",
        f"- items: validation {len(result.item_ids['validation'])}, test {len(result.item_ids['test'])}; seed {cfg['seed']}",
        *_steering_lines(result),
        "",
        "Accuracies on the test split with 95% bootstrap CIs; Δ vs baseline with paired-bootstrap CIs; "
        "p = exact McNemar on the same items; p_Holm adjusts over the rows below.",
        "",
        f"**Baseline (λ = 0): {_fmt(stats['baseline']['test'])}**",
        "",
        "| condition | λ* | accuracy | Δ | p | p_Holm | flips (→✓ / →✗) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, comp in stats["comparisons"].items():
        name, what = key.split("@")
        cond = result.conditions[name]
        lam = f"{cond.lambda_star:g}" if what == "lambda_star" else ("ITS" if cond.lambda_star is not None else "vote")
        f = comp["flips"]
        lines.append(
            f"| {name} | {lam} | {_fmt(comp['accuracy'])} | {_fmt_delta(comp['delta'])} | "
            f"{comp['mcnemar']['p_value']:.3g} | {comp['p_holm']:.3g} | {f['wrong_to_right']} / {f['right_to_wrong']} |"
        )
    if "random" in stats:
        r = stats["random"]
        lines += ["", f"## Random-direction control ({r['n']} seeded unit directions, same grid and vote)", ""]
        lines += ["| | random mean | random min–max | transfer | randoms ≥ transfer | p = (1 + that) / (1 + n) |", "|---|---|---|---|---|---|"]
        for what, label in (("lambda_star", "at λ*"), ("its", "ITS")):
            e = r[what]
            lines.append(
                f"| {label} | {e['mean']:.3f} | {e['min']:.3f}–{e['max']:.3f} | {e.get('transfer', float('nan')):.3f} | "
                f"{e.get('n_at_least', '–')} of {r['n']} | {e.get('p_vs_random', float('nan')):.3g} |"
            )
    lines += _size_section(result) + _diagnostics_section(result)
    return "\n".join(lines) + "\n"


def _layers_text(start: int, width: int) -> str:
    return f"layer {start}" if width == 1 else f"layers {start}–{start + width - 1}"


def _schedule_text(schedule: dict[str, Any] | None) -> str:
    if not schedule:
        return "none (every layer × 1)"
    if schedule.get("name") == "band":
        outside = f", × {schedule['outside']:g} elsewhere" if schedule.get("outside") else ", unsteered elsewhere"
        return f"band: {_layers_text(schedule['start'], schedule['width'])} × {schedule['strength']:g}{outside}"
    fields = ", ".join(f"{k}={v}" for k, v in schedule.items() if k not in ("name", "per_layer"))
    return f"{schedule.get('name')} ({fields})"


def _steering_lines(result: TransferResult) -> list[str]:
    """Operator, positions and per-layer schedule of every steered condition (and how a searched
    schedule was found); nothing for reports written before these existed."""
    steering = result.diagnostics.get("steering")
    if not steering:
        return []
    op = steering["operator"]
    op_text = op["name"] + "".join(f" {k}={v:g}" for k, v in op.items() if k != "name")
    lines = [
        f"- operator `{op_text}`, positions `{steering['positions']}`, per-layer schedule: "
        f"{_schedule_text(steering.get('schedule'))} (the same for transfer, child-own and random)"
    ]
    search = steering.get("search")
    if search:
        best = search["best"]
        lines.append(
            f"- schedule searched on the validation split only ({len(search['history'])} of a budget of "
            f"{search['budget']} (band, λ) evaluations, coordinate ascent): best band "
            f"{_layers_text(best['start'], best['width'])} at λ = {best['lam']:g}, validation accuracy {search['score']:.3f}; "
            "λ* was then chosen on validation over the whole grid with that band"
        )
    return lines


def _size_section(result: TransferResult) -> list[str]:
    cond = result.conditions.get("transfer")
    norms = result.diagnostics.get("residual_norms", {})
    if cond is None or not cond.relative_size:
        return []
    top = max(result.config["lambdas"])
    steering = result.diagnostics.get("steering") or {}
    per_layer = (steering.get("schedule") or {}).get("per_layer")
    if per_layer is None:
        head = [
            "## How large is the steering? ‖λ·v_l‖ / median‖h_l‖ per layer",
            "",
            f"| child layer | median ‖h_l‖ | at λ* = {cond.lambda_star:g} | at λ = {top:g} |",
            "|---|---|---|---|",
        ]
    else:
        head = [
            "## How large is the steering? ‖λ·s_l·v_l‖ / median‖h_l‖ per layer (s_l: the schedule's multiplier)",
            "",
            f"| child layer | s_l | median ‖h_l‖ | at λ* = {cond.lambda_star:g} | at λ = {top:g} |",
            "|---|---|---|---|---|",
        ]
    operator = steering.get("operator", {}).get("name", "add")
    if operator != "add":  # a note between the title and the table
        head[2:2] = [f"The operator is `{operator}`: the table gives the size of the scaled vector it is "
                     "handed, not the change it makes to the stream.", ""]
    lines = ["", *head]
    for layer, size in sorted(cond.relative_size.items()):
        at_top = size / cond.lambda_star * top if cond.lambda_star else float("nan")
        mult = "" if per_layer is None else f" {per_layer.get(str(layer), float('nan')):g} |"
        lines.append(f"| {layer} |{mult} {norms.get(str(layer), float('nan')):.1f} | {size:.2e} | {at_top:.2e} |")
    return lines


def _diagnostics_section(result: TransferResult) -> list[str]:
    d = result.diagnostics
    t = d.get("transfer")
    if not t:
        return []
    cos = d.get("cosine_to_child_own", {})
    parent = d.get("parent", {})
    lines = [
        "",
        "## Transfer diagnostics",
        "",
        "```",
        t["repr"],
        "```",
        "",
        "Cosine to the child's own vector from the same pairs; the random null is |cos| of random unit "
        f"directions (mean {cos.get('null_mean', float('nan')):.3f}, 95th percentile {cos.get('null_p95', float('nan')):.3f}).",
        "",
        "| child layer | parent layer | parent PC1 EVR | parent sign agreement | adapter R² (held out) | cos to child own |",
        "|---|---|---|---|---|---|",
    ]
    evr, agree = parent.get("explained_variance", {}), parent.get("sign_agreement", {})
    for c, p in sorted(t["layer_map"].items(), key=lambda kv: int(kv[0])):
        p = str(p)
        lines.append(
            f"| {c} | {p} | {evr.get(p, float('nan')):.3f} | {agree.get(p, float('nan')):.2f} | "
            f"{t['r2'].get(c, float('nan')):.3f} | {cos.get('cosine', {}).get(c, float('nan')):+.3f} |"
        )
    return lines


def write_report(result: TransferResult, out_dir: str | Path, *, figures: bool = True) -> Path:
    """Write report.json (result + statistics), report.md and, if asked, figures/ into a run folder."""
    out = Path(out_dir)
    result.statistics = build_statistics(result, seed=result.config.get("seed", 0))
    result.save(out / "report.json")
    (out / "report.md").write_text(render_markdown(result, result.statistics))
    if figures:  # analysis/ draws from saved results only; imported late so xsteer stands alone
        from analysis import write_run_figures

        write_run_figures(result, out / "figures")
    return out / "report.md"


def load_and_render(run_dir: str | Path) -> str:
    """Recompute statistics and the Markdown report from a saved run (no model needed)."""
    result = TransferResult.load(run_dir)
    return render_markdown(result, build_statistics(result, seed=result.config.get("seed", 0)))

