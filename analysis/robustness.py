"""How much does transferred steering help, and how robust is it to λ? Figures and the Table-1 style
results table, drawn from saved ``TransferResult``s.

- ``accuracy_vs_lambda``: accuracy against λ per child, one panel per parent (the paper's Fig. 3).
- ``gains_figure``: λ* and ITS gains over the baseline beside their controls (Figs. 1 and 4).
- ``results_table`` / ``format_results_table`` / ``write_results_table``: Table 1.
- ``relative_perturbation_figure``: ‖λ·v_l‖ / ‖h_l‖ per layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.summary import (
    Gain,
    RunSummary,
    condition_label,
    conditions_of,
    run_labels,
    spread,
    summarise,
)
from analysis.tables import to_latex, to_markdown
from xsteer.results import TransferResult
from xsteer.stats import Estimate, accuracy_ci

__all__ = [
    "accuracy_vs_lambda",
    "format_results_table",
    "gains_figure",
    "relative_perturbation_figure",
    "results_table",
    "write_results_table",
]

_PALETTE = qualitative.D3
_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0)


# ---------------------------------------------------------------------------- accuracy vs λ


def accuracy_vs_lambda(
    results: Sequence[TransferResult],
    split: str = "test",
    *,
    kinds: Sequence[str] = ("steered",),
    n_boot: int = 10_000,
    seed: int = 0,
) -> go.Figure:
    """Accuracy against λ (log axis), one panel per parent and one line per child, with 95% bootstrap
    CI bands, each child's baseline (λ = 0) as a dashed line and the random-direction band.

    The random band spans, per λ, the 2.5–97.5% range of the random conditions' accuracies
    (min–max for fewer than 40 directions). λ ≤ 0 is left out of the log axis.
    """
    if not results:
        raise ValueError("No results given; pass a list of TransferResult (TransferResult.load).")
    labels = [run_labels(r) for r in results]
    parents = list(dict.fromkeys(p for p, _, _ in labels))
    children = list(dict.fromkeys(c for _, c, _ in labels))
    tasks = list(dict.fromkeys(t for _, _, t in labels))
    colour = {c: _PALETTE[i % len(_PALETTE)] for i, c in enumerate(children)}
    fig = make_subplots(
        rows=1,
        cols=len(parents),
        shared_yaxes=True,
        subplot_titles=[f"parent: {p}" for p in parents],
        horizontal_spacing=0.06,
    )
    shown: set[str] = set()

    def add(trace: go.Scatter, col: int) -> None:
        trace.showlegend = trace.showlegend is not False and trace.name not in shown
        shown.add(trace.name)
        fig.add_trace(trace, row=1, col=col)

    for result, (parent, child, task) in zip(results, labels):
        col = parents.index(parent) + 1
        series = child if len(tasks) == 1 else f"{child} ({task})"
        base = _split_baseline(result, split)
        chosen = [c for kind in kinds for c in conditions_of(result, kind)]
        if not chosen:
            raise ValueError(
                f"Result {parent} → {child} has no condition of kind {list(kinds)}; pass kinds=... "
                "naming kinds it has."
            )
        grid = sorted({lam for c in chosen for lam in c.correct.get(split, {}) if lam > 0})
        if not grid:
            raise ValueError(
                f"Result {parent} → {child} has no λ > 0 for {list(kinds)} on split {split!r}; "
                f"its splits are {sorted({s for c in chosen for s in c.correct})}."
            )
        add(_baseline_line(grid, base, series, colour[child]), col)
        band = _random_band(result, split, grid)
        if band is not None:
            add(_band_trace(*band, series, colour[child]), col)
        for cond in chosen:
            cname = condition_label(result, cond)
            # The transferred vector's line says so (not only the child's name); other kinds keep theirs.
            name = f"transfer → {series}" if cname == "steered" else f"{series} [{cname}]"
            correct = cond.correct.get(split, {})
            lams = [lam for lam in sorted(correct) if lam > 0]
            est = [accuracy_ci(correct[lam], n_boot=n_boot, seed=seed) for lam in lams]
            dash = "solid" if cond.kind == "steered" else "dot"
            for trace in _line_with_band(lams, est, name, colour[child], dash):
                add(trace, col)
    xs = [x for t in fig.data for x in t.x]
    ticks = _log_ticks(min(xs), max(xs))
    fig.update_xaxes(
        type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], title_text="λ (log scale)"
    )
    fig.update_yaxes(title_text=f"accuracy ({split})", row=1, col=1)
    title = f"Accuracy vs steering strength λ — {', '.join(tasks)}, {split} split"
    fig.update_layout(
        title=dict(
            text=f"{title}<br><sup>bands: 95% bootstrap CI; dashed: baseline (λ = 0); "
            "dotted band: random unit directions</sup>"
        ),
        legend=dict(yanchor="top", y=1, xanchor="left", x=1.02, font=dict(size=11)),
        width=480 * len(parents) + 330,
        height=520,
        hovermode="closest",
    )
    return fig


def _split_baseline(result: TransferResult, split: str) -> list[bool]:
    if not result.baseline.get(split):
        parent, child, _ = run_labels(result)
        raise ValueError(
            f"Result {parent} → {child} has no baseline on split {split!r}; its baseline splits "
            f"are {sorted(result.baseline)}. Pass one of those as split=."
        )
    return result.baseline[split]


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _line_with_band(
    lams: list[float], est: list[Estimate], name: str, colour: str, dash: str
) -> list[go.Scatter]:
    band = go.Scatter(
        x=lams + lams[::-1],
        y=[e.high for e in est] + [e.low for e in est][::-1],
        fill="toself",
        fillcolor=_rgba(colour, 0.18),
        line=dict(width=0),
        hoverinfo="skip",
        legendgroup=name,
        showlegend=False,
        name=f"{name} 95% CI",
    )
    line = go.Scatter(
        x=lams,
        y=[e.value for e in est],
        mode="lines+markers",
        line=dict(color=colour, dash=dash, width=2),
        marker=dict(size=6),
        customdata=[[e.low, e.high, e.n] for e in est],
        hovertemplate=(
            f"{name}<br>λ = %{{x}}<br>accuracy %{{y:.3f}} "
            "[%{customdata[0]:.3f}, %{customdata[1]:.3f}] (n=%{customdata[2]})<extra></extra>"
        ),
        legendgroup=name,
        name=name,
    )
    return [band, line]


def _baseline_line(lams: list[float], base: Sequence[bool], name: str, colour: str) -> go.Scatter:
    acc = float(np.mean(base))
    return go.Scatter(
        x=[lams[0], lams[-1]],
        y=[acc, acc],
        mode="lines",
        line=dict(color=colour, dash="dash", width=1.5),
        hovertemplate=f"{name} baseline (λ = 0): {acc:.3f}<extra></extra>",
        legendgroup=name,
        name=f"{name} baseline",
    )


def _random_band(
    result: TransferResult, split: str, lams: list[float]
) -> tuple[list[float], list[float], list[float], int, str] | None:
    """Per λ the random conditions' accuracy range, over the λs every random condition has."""
    randoms = [c for c in conditions_of(result, "random") if c.correct.get(split)]
    keep = [lam for lam in lams if all(lam in c.correct[split] for c in randoms)]
    if not randoms or not keep:
        return None
    spreads = [spread([np.mean(c.correct[split][lam]) for c in randoms]) for lam in keep]
    return keep, [s.low for s in spreads], [s.high for s in spreads], len(randoms), spreads[0].method


def _band_trace(
    lams: list[float], low: list[float], high: list[float], k: int, method: str, name: str,
    colour: str,
) -> go.Scatter:
    return go.Scatter(
        x=lams + lams[::-1],
        y=high + low[::-1],
        fill="toself",
        fillcolor=_rgba(colour, 0.1),
        line=dict(color=_rgba(colour, 0.6), width=1, dash="dot"),
        hoverinfo="skip",
        legendgroup=name,
        name=f"{name} random ({k}, {method})",
    )


# ---------------------------------------------------------------------------- gains


def gains_figure(
    results: Sequence[TransferResult], *, n_boot: int = 10_000, seed: int = 0
) -> go.Figure:
    """Test accuracy gain over the baseline per run: λ* and ITS of the transferred vector (95%
    paired-bootstrap CI, exact McNemar p Holm-adjusted across these claims), beside the random
    directions' ITS (mean, range across directions) and equal-compute self-consistency."""
    rows = summarise(results, n_boot=n_boot, seed=seed)
    tasks = list(dict.fromkeys(r.task for r in rows))
    x = [r.label if len(tasks) == 1 else f"{r.label} ({r.task})" for r in rows]
    fig = go.Figure()
    kinds = (
        ("steered @ λ*", "at_lambda_star"),
        ("steered ITS", "its"),
        ("self-consistency", "self_consistency"),
    )
    for i, (name, key) in enumerate(kinds):
        gains: list[Gain | None] = [getattr(r, key) for r in rows]
        if all(g is None for g in gains):
            continue
        bar = _gain_bars(name, x, gains, rows, key != "self_consistency", _PALETTE[i])
        fig.add_traces([bar, _bar_labels(bar)])
    if any(r.random_its_delta is not None for r in rows):
        bar = _random_bars(x, rows)
        fig.add_traces([bar, _bar_labels(bar)])
    fig.add_hline(y=0, line=dict(color="black", width=1))
    ends = [  # both whisker ends of every bar, so no interval is cut off
        end
        for t in fig.data
        if isinstance(t, go.Bar)
        for y, up, down in zip(t.y, t.error_y.array, t.error_y.arrayminus)
        for end in (y + up, y - down)
        if not math.isnan(end)
    ]
    low, high = min([*ends, 0.0]), max([*ends, 0.0])
    pad = 0.12 * (high - low or 1.0)
    fig.update_yaxes(range=[low - pad, high + pad])  # room for the p labels beyond the whiskers
    fig.update_layout(
        barmode="group",
        scattermode="group",
        title=dict(
            text=(
                f"Test accuracy gain over baseline — {', '.join(tasks)}<br><sup>Δ with 95% "
                "paired-bootstrap CI; random directions: mean and range over directions<br>"
                "p: exact McNemar, Holm-adjusted across λ* and ITS (self-consistency uncorrected)"
                "</sup>"
            )
        ),
        xaxis_title="parent → child",
        yaxis_title="Δ accuracy vs baseline",
        legend=_LEGEND_BELOW,
        width=max(700, 260 * len(rows)),
        height=580,
        margin=dict(t=120),
    )
    return fig


def _gain_bars(
    name: str, x: list[str], gains: list[Gain | None], rows: list[RunSummary], primary: bool,
    colour: str,
) -> go.Bar:
    nan = float("nan")
    y = [g.delta.value if g else nan for g in gains]
    p_shown = [(g.p_holm if primary else g.mcnemar.p_value) if g else nan for g in gains]
    hover = [
        (
            f"{name}, {r.label}<br>accuracy {g.accuracy}<br>baseline {r.baseline}"
            f"<br>Δ {g.delta.value:+.3f} [{g.delta.low:+.3f}, {g.delta.high:+.3f}]"
            f"<br>McNemar: {g.mcnemar.wrong_to_right} wrong→right, {g.mcnemar.right_to_wrong} "
            f"right→wrong, p = {_p(g.mcnemar.p_value)}"
            + (f", Holm p = {_p(g.p_holm)}" if primary else " (uncorrected)")
            + (f"<br>λ* = {r.lambda_star:g}" if name.endswith("λ*") else "")
        )
        if g
        else ""
        for g, r in zip(gains, rows)
    ]
    return go.Bar(
        name=name,
        x=x,
        y=y,
        marker_color=colour,
        error_y=dict(
            type="data",
            symmetric=False,
            array=[g.delta.high - g.delta.value if g else nan for g in gains],
            arrayminus=[g.delta.value - g.delta.low if g else nan for g in gains],
            thickness=1.2,
            width=3,
        ),
        offsetgroup=name,
        text=[f"p={_p(p)}" if not math.isnan(p) else "" for p in p_shown],
        textposition="none",
        hovertext=hover,
        hoverinfo="text",
    )


def _random_bars(x: list[str], rows: list[RunSummary]) -> go.Bar:
    nan = float("nan")
    sp = [r.random_its_delta for r in rows]
    return go.Bar(
        name="random directions ITS",
        x=x,
        y=[s.mean if s else nan for s in sp],
        marker_color="#9e9e9e",
        error_y=dict(
            type="data",
            symmetric=False,
            array=[s.high - s.mean if s else nan for s in sp],
            arrayminus=[s.mean - s.low if s else nan for s in sp],
            thickness=1.2,
            width=3,
        ),
        offsetgroup="random directions ITS",
        text=[f"k={s.k}" if s else "" for s in sp],
        textposition="none",
        hovertext=[
            f"random directions ITS, {r.label}<br>Δ mean {s.mean:+.3f}, {s.method} "
            f"[{s.low:+.3f}, {s.high:+.3f}] over k={s.k} directions"
            if s
            else ""
            for s, r in zip(sp, rows)
        ],
        hoverinfo="text",
    )


def _bar_labels(bar: go.Bar) -> go.Scatter:
    """The bar's text placed beyond the end of its error bar (above for gains, below for losses)."""
    ends, where = [], []
    for y, up, down in zip(bar.y, bar.error_y.array, bar.error_y.arrayminus):
        negative = not math.isnan(y) and y < 0
        ends.append(y - down if negative else y + up)
        where.append("bottom center" if negative else "top center")
    return go.Scatter(
        x=bar.x,
        y=ends,
        mode="markers+text",
        marker=dict(size=8, opacity=0),  # invisible; keeps the text clear of the whisker cap
        text=bar.text,
        textposition=where,
        textfont=dict(size=10),
        offsetgroup=bar.offsetgroup,
        showlegend=False,
        hoverinfo="skip",
        name=f"{bar.name} labels",
    )


# ---------------------------------------------------------------------------- table


def results_table(
    results: Sequence[TransferResult],
    *,
    kinds: Sequence[str] = ("steered",),
    n_boot: int = 10_000,
    seed: int = 0,
) -> pd.DataFrame:
    """Table 1 as numbers, one row per condition of ``kinds`` per result (test split).

    Accuracies carry 95% bootstrap CIs (``*_low``/``*_high``), deltas paired-bootstrap CIs; ``p_*``
    are exact McNemar p-values and ``p_*_holm`` their Holm adjustment across every λ* and ITS test
    in the table. Missing parts (no λ*, no ITS, no controls) are NaN.
    """
    rows = []
    for s in summarise(results, kinds=kinds, n_boot=n_boot, seed=seed):
        row = dict(
            parent=s.parent,
            child=s.child,
            task=s.task,
            condition=s.condition,
            n_test=s.baseline.n,
            **_est("baseline", s.baseline),
            lambda_star=s.lambda_star if s.lambda_star is not None else np.nan,
            **_gain_cols("star", s.at_lambda_star),
            **_gain_cols("its", s.its),
            random_its_mean=s.random_its.mean if s.random_its else np.nan,
            random_its_low=s.random_its.low if s.random_its else np.nan,
            random_its_high=s.random_its.high if s.random_its else np.nan,
            random_k=s.random_its.k if s.random_its else 0,
            **_est("self_consistency", s.self_consistency.accuracy if s.self_consistency else None),
            p_self_consistency=(
                s.self_consistency.mcnemar.p_value if s.self_consistency else np.nan
            ),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _est(prefix: str, e: Estimate | None) -> dict[str, float]:
    if e is None:
        return {f"{prefix}_acc": np.nan, f"{prefix}_low": np.nan, f"{prefix}_high": np.nan}
    return {f"{prefix}_acc": e.value, f"{prefix}_low": e.low, f"{prefix}_high": e.high}


def _gain_cols(prefix: str, g: Gain | None) -> dict[str, float]:
    cols = _est(prefix, g.accuracy if g else None)
    d = g.delta if g else None
    cols.update(
        {
            f"delta_{prefix}": d.value if d else np.nan,
            f"delta_{prefix}_low": d.low if d else np.nan,
            f"delta_{prefix}_high": d.high if d else np.nan,
            f"p_{prefix}": g.mcnemar.p_value if g else np.nan,
            f"p_{prefix}_holm": g.p_holm if g else np.nan,
        }
    )
    return cols


def format_results_table(table: pd.DataFrame, *, digits: int = 3) -> pd.DataFrame:
    """Display strings of a ``results_table``: accuracies as ``acc [low, high]``, signed deltas,
    Holm-adjusted p-values; the condition column only when some row is not the steered vector."""

    def acc(row: pd.Series, prefix: str) -> str:
        v, lo, hi = row[f"{prefix}_acc"], row[f"{prefix}_low"], row[f"{prefix}_high"]
        return "—" if pd.isna(v) else f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    def num(v: float, fmt: str) -> str:
        return "—" if pd.isna(v) else format(v, fmt)

    out = pd.DataFrame(
        {
            "parent": table["parent"],
            "child": table["child"],
            "task": table["task"],
            "condition": table["condition"],
            "baseline acc [95% CI]": table.apply(acc, axis=1, prefix="baseline"),
            "λ*": table["lambda_star"].map(lambda v: num(v, "g")),
            "acc@λ* [95% CI]": table.apply(acc, axis=1, prefix="star"),
            "Δ@λ*": table["delta_star"].map(lambda v: num(v, f"+.{digits}f")),
            "p@λ* (Holm)": table["p_star_holm"].map(_p),
            "ITS acc [95% CI]": table.apply(acc, axis=1, prefix="its"),
            "Δ ITS": table["delta_its"].map(lambda v: num(v, f"+.{digits}f")),
            "p ITS (Holm)": table["p_its_holm"].map(_p),
            "random ITS mean (k)": [
                "—" if k == 0 else f"{m:.{digits}f} ({k})"
                for m, k in zip(table["random_its_mean"], table["random_k"])
            ],
            "self-consistency acc [95% CI]": table.apply(acc, axis=1, prefix="self_consistency"),
        }
    )
    if (table["condition"] == "steered").all():
        out = out.drop(columns="condition")
    return out


def write_results_table(
    table: pd.DataFrame, path: str | Path, *, caption: str | None = None
) -> list[Path]:
    """Write ``path.csv`` (all numbers), ``path.md`` and ``path.tex`` (formatted Table 1)."""
    path = Path(path)
    if path.suffix in (".csv", ".md", ".tex"):
        path = path.with_suffix("")
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = format_results_table(table)
    out = [path.with_name(path.name + s) for s in (".csv", ".md", ".tex")]
    table.to_csv(out[0], index=False)
    out[1].write_text(to_markdown(shown))
    out[2].write_text(
        to_latex(
            shown,
            caption=caption
            or "Test accuracy with 95% bootstrap CIs; p: exact McNemar, Holm-adjusted.",
        )
    )
    return out


def _p(p: float) -> str:
    if pd.isna(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# ---------------------------------------------------------------------------- relative size


def relative_perturbation_figure(result: TransferResult) -> go.Figure:
    """‖λ·v_l‖ / median ‖h_l‖ per child layer (log axis) at λ* for the steered and child's-own
    vectors; with ``diagnostics["residual_norms"]`` and the λ grid, also at the largest λ."""
    parent, child, task = run_labels(result)
    fig = go.Figure()
    for i, cond in enumerate(
        c for kind in ("steered", "child_own") for c in conditions_of(result, kind)
    ):
        if not cond.relative_size or cond.lambda_star is None:
            continue
        layers = sorted(cond.relative_size)
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=[cond.relative_size[l] for l in layers],
                mode="lines+markers",
                line=dict(color=_PALETTE[i % len(_PALETTE)]),
                name=f"{condition_label(result, cond)} @ λ* = {cond.lambda_star:g}",
                hovertemplate="layer %{x}: %{y:.3g}<extra></extra>",
            )
        )
    top = _largest_lambda_sizes(result)
    if top is not None:
        lam_max, sizes = top
        steered = {l for c in conditions_of(result, "steered") for l in c.relative_size}
        layers = sorted(l for l in sizes if not steered or l in steered)
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=[sizes[l] for l in layers],
                mode="lines",
                line=dict(color="black", dash="dash"),
                name=f"largest λ = {lam_max:g}",
                hovertemplate="layer %{x}: %{y:.3g}<extra></extra>",
            )
        )
    if not fig.data:
        raise ValueError(
            f"Result {parent} → {child} has no relative sizes: no steered or child_own condition "
            "with relative_size and λ*, and no diagnostics['residual_norms'] with config['lambdas']."
        )
    fig.update_yaxes(type="log", title_text="‖λ·v<sub>l</sub>‖ / median ‖h<sub>l</sub>‖")
    ys = [y for t in fig.data for y in t.y if y > 0]
    if ys:
        ticks = _log_ticks(min(ys), max(ys))
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_xaxes(title_text=f"layer of {child} (child)")
    fig.update_layout(
        title=dict(
            text=f"Relative perturbation per layer, {parent} → {child} ({task})<br><sup>scale = "
            f"{result.config.get('scale', 'absolute')}; 1 = the steering vector is as long as the "
            "residual stream</sup>"
        ),
        legend=_LEGEND_BELOW,
        width=750,
        height=520,
    )
    return fig


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 tick values covering ``low``..``high`` (one step beyond each end)."""
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5)]
    below = [t for t in ticks if t <= low]
    above = [t for t in ticks if t >= high]
    return [t for t in ticks if (below[-1] if below else low) <= t <= (above[0] if above else high)]


def _largest_lambda_sizes(result: TransferResult) -> tuple[float, dict[int, float]] | None:
    """(λ_max, relative size per layer at λ_max) from the residual norms, or None without them."""
    norms = result.diagnostics.get("residual_norms")
    lambdas = result.config.get("lambdas")
    if not norms or not lambdas:
        return None
    lam_max = float(max(lambdas))
    norms = {int(l): float(n) for l, n in norms.items()}
    if result.config.get("scale", "absolute") == "relative":
        return lam_max, {l: lam_max for l in norms}
    return lam_max, {l: lam_max / n for l, n in norms.items()}
