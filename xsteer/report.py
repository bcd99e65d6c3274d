"""The Markdown report of a transfer run, rendered from a ``TransferResult`` and its statistics alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xsteer.results import TransferResult
from xsteer.stats import Estimate

__all__ = ["findings", "render_markdown", "write_report"]


def _fmt(est: Estimate) -> str:
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"


def _fmt_delta(est: Estimate) -> str:
    return f"{est.value:+.3f} [{est.low:+.3f}, {est.high:+.3f}]"


def _verdict(comp) -> str:
    """'helps' / 'hurts' / 'no significant change' for a comparison, by its Holm-adjusted p."""
    if comp.p_holm >= 0.05:
        return "no significant change"
    return "helps" if comp.delta.value > 0 else "hurts"


def _anchors(diagnostics: dict) -> str:
    """The anchors the transfer was fitted on, as the run saw them."""
    texts, rows = diagnostics.get("n_anchors", "?"), diagnostics.get("anchor_rows")
    return f"{texts} anchor texts" + (f" ({rows} rows fitted on)" if rows is not None else "")


def findings(result: TransferResult) -> list[str]:
    """What the run found, in a few plain lines: the concepts' fidelity (when measured), the
    transferred vector against the baseline at λ* and by ITS, and its place among the random
    directions and beside the child's own vector."""
    stats, lines = result.statistics, []
    for name, f in result.fidelity.items():
        line = (f"- **{name}** carried {result.config['parent']} → {result.config['child']}: readout over all child "
                f"layers {f.transferred:.2f} (child's own vector {f.child_own:.2f}, random 95th percentile "
                f"{f.random_p95:.2f})")
        if f.efficiency is not None:
            e = f.efficiency
            line += (f"; steering efficiency {e.value:.2f} [{e.low:.2f}, {e.high:.2f}] of the child's own "
                     f"vector at equal fluency cost (layers {f.layers[0]}–{f.layers[-1]})")
        lines.append(line + ".")
    base = stats.baseline["test"]
    for what, label in (("lambda_star", "at λ*"), ("its", "by the ITS vote")):
        comp = stats.comparison("transferred", what)
        if comp is None:
            continue
        lam = f" = {result.conditions['transferred'].lambda_star:g}" if what == "lambda_star" else ""
        line = (f"- **{result.config['task']}**, transferred vector {label}{lam}: {_fmt(comp.accuracy)} vs baseline "
                f"{base.value:.3f}, Δ {_fmt_delta(comp.delta)}, Holm p {comp.p_holm:.3g}: {_verdict(comp)}")
        r = stats.random.get(what)
        if r is not None and r.n_at_least is not None:
            line += f"; {r.n_at_least} of {r.n} random directions do at least as well"
        own = stats.comparison("child_own", what)
        if own is not None:
            line += f"; the child's own vector: {own.accuracy.value:.3f} ({_verdict(own)})"
        lines.append(line + ".")
    return lines


def render_markdown(result: TransferResult) -> str:
    """A readable report: setup, main table, controls, relative steering size, transfer diagnostics."""
    cfg, stats = result.config, result.statistics
    if stats is None:
        raise ValueError("This result has no test-split baseline, so there is nothing to report; evaluate the test split first.")
    lines = [
        f"# Transfer report: {cfg['parent']} → {cfg['child']} on {cfg['task']}",
        "",
        "## What was found",
        "",
        *findings(result),
        "",
        "## Setup",
        "",
        f"- method `{cfg['method']}`, {result.diagnostics.get('n_pairs', '?')} contrast pairs; layer map "
        f"`{cfg['layer_map']}`, adapter `{cfg['adapter']}`, {_anchors(result.diagnostics)}",
        f"- scale `{cfg['scale']}`, λ grid ({len(cfg['lambdas'])} values): {', '.join(f'{l:g}' for l in cfg['lambdas'])}",
        f"- items: validation {len(result.item_ids['validation'])}, test {len(result.item_ids['test'])}; seed {cfg['seed']}",
        *_steering_lines(result),
        "",
        "Accuracies on the test split with 95% bootstrap CIs; Δ vs baseline with paired-bootstrap CIs; "
        "p = exact McNemar on the same items; p_Holm adjusts over the rows below.",
        "",
        f"**Baseline (λ = 0): {_fmt(stats.baseline['test'])}**",
        "",
        "| condition | λ* | accuracy | Δ | p | p_Holm | flips (→✓ / →✗) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (name, what), comp in stats.comparisons.items():
        cond = result.conditions[name]
        lam = f"{cond.lambda_star:g}" if what == "lambda_star" else ("ITS" if cond.lambda_star is not None else "vote")
        f = comp.flips
        lines.append(
            f"| {name} | {lam} | {_fmt(comp.accuracy)} | {_fmt_delta(comp.delta)} | "
            f"{comp.mcnemar.p_value:.3g} | {comp.p_holm:.3g} | {f.wrong_to_right} / {f.right_to_wrong} |"
        )
    if stats.random:
        n = next(iter(stats.random.values())).n
        lines += ["", f"## Random-direction control ({n} seeded unit directions, same grid and vote)", ""]
        lines += ["| | random mean | random min–max | transferred | randoms ≥ transferred | p = (1 + that) / (1 + n) |",
                  "|---|---|---|---|---|---|"]
        for what, label in (("lambda_star", "at λ*"), ("its", "ITS")):
            e = stats.random.get(what)
            if e is None:
                continue
            mine = "–" if e.transferred is None else f"{e.transferred:.3f}"
            at_least = "–" if e.n_at_least is None else e.n_at_least
            p = "–" if e.p is None else f"{e.p:.3g}"
            lines.append(f"| {label} | {e.mean:.3f} | {e.min:.3f}–{e.max:.3f} | {mine} | {at_least} of {e.n} | {p} |")
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
        f"{_schedule_text(steering.get('schedule'))} (the same for transferred, child-own and random)"
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
    cond = result.conditions.get("transferred")
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


def write_report(result: TransferResult, out_dir: str | Path) -> Path:
    """Write report.json (result + statistics) and report.md into a run folder; return report.md's path."""
    out = Path(out_dir)
    result.save(out / "report.json")
    (out / "report.md").write_text(render_markdown(result))
    return out / "report.md"
