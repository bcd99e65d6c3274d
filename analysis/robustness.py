"""How much does transferred steering help, and how robust is it to λ? Figures and the Table-1 style
results table, drawn from saved ``TransferResult``s.

- ``accuracy_vs_lambda``: accuracy against λ per child, one panel per parent (the paper's Fig. 3).
- ``gains_figure``: λ* and ITS gains over the baseline beside their controls (Figs. 1 and 4), with
  the report's statistics.
- ``STYLES``: one colour, dash, marker and bar pattern per condition kind, shared by every figure.
- ``results_table`` / ``format_results_table`` / ``write_results_table``: Table 1.
- ``relative_perturbation_figure``: ‖λ·v_l‖ / ‖h_l‖ per layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.summary import (
    Gain,
    Spread,
    baseline_test_correct,
    condition_label,
    conditions_of,
    run_labels,
    spread,
    summarise_runs,
)
from analysis.tables import to_latex, to_markdown
from xsteer.results import TransferResult
from xsteer.stats import Comparison, Estimate, accuracy_ci

__all__ = [
    "STYLES",
    "KindStyle",
    "accuracy_vs_lambda",
    "format_results_table",
    "gains_figure",
    "relative_perturbation_figure",
    "results_table",
    "style_of",
    "write_results_table",
]

_LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0)


@dataclass(frozen=True)
class KindStyle:
    """How one condition kind is drawn: legend label, colour, line dash and marker symbol (colour
    plus dash plus marker keep the kinds apart in greyscale)."""

    label: str
    colour: str
    dash: str
    symbol: str
    pattern: str  # bar fill pattern


#: One style per condition kind (Okabe–Ito colours); the baseline is drawn as a kind of its own.
STYLES: dict[str, KindStyle] = {
    "baseline": KindStyle("baseline (λ = 0)", "#000000", "dash", "line-ew", ""),
    "transferred": KindStyle("transferred", "#0072B2", "solid", "circle", ""),
    "child_own": KindStyle("child's own vector", "#E69F00", "dashdot", "square", "/"),
    "random": KindStyle("random directions", "#7F7F7F", "dot", "x", "x"),
    "self_consistency": KindStyle("self-consistency", "#009E73", "longdash", "diamond", "."),
}
_OTHER = qualitative.Dark2
_CHILD_SYMBOLS = ("circle", "triangle-up", "star", "hexagon", "cross", "pentagon")


def style_of(kind: str) -> KindStyle:
    """The kind's style; kinds outside ``STYLES`` get a stable colour of their own."""
    if kind in STYLES:
        return STYLES[kind]
    colour = _OTHER[sum(map(ord, kind)) % len(_OTHER)]
    return KindStyle(kind, colour, "dash", "triangle-up", "-")


# ---------------------------------------------------------------------------- accuracy vs λ


def accuracy_vs_lambda(
    results: Sequence[TransferResult],
    split: str = "test",
    *,
    kinds: Sequence[str] = ("transferred",),
    n_boot: int = 10_000,
    seed: int = 0,
) -> go.Figure:
    """Accuracy against λ (log axis), one panel per parent: one line per condition of ``kinds``
    with its 95% bootstrap CI band, the baseline (λ = 0) and the random-direction band.

    Colour, dash and legend entry follow the condition kind (``STYLES``); with several children
    in a panel each child gets a marker symbol and a legend entry of its own. Every trace carries
    ``meta = {"kind", "role", "parent", "child", "task", "condition"}`` (role: line, ci, baseline,
    random). The random band spans, per λ, the 2.5–97.5% range of the random conditions'
    accuracies (min–max for fewer than 40 directions). λ ≤ 0 is left out of the log axis.
    """
    if not results:
        raise ValueError("No results given; pass a list of TransferResult (TransferResult.load).")
    labels = [run_labels(r) for r in results]
    parents = list(dict.fromkeys(p for p, _, _ in labels))
    series = list(dict.fromkeys((c, t) for _, c, t in labels))
    tasks = list(dict.fromkeys(t for _, _, t in labels))
    symbol = {s: _CHILD_SYMBOLS[i % len(_CHILD_SYMBOLS)] for i, s in enumerate(series)}
    fig = make_subplots(
        rows=1,
        cols=len(parents),
        shared_yaxes=True,
        subplot_titles=[f"parent: {p}" for p in parents],
        horizontal_spacing=0.06,
    )
    shown: set[str] = set()

    def add(trace: go.Scatter, col: int) -> None:
        entry = trace.legendgroup
        trace.showlegend = trace.showlegend is not False and entry not in shown
        if trace.showlegend:
            shown.add(entry)
        fig.add_trace(trace, row=1, col=col)

    for result, (parent, child, task) in zip(results, labels):
        col = parents.index(parent) + 1
        name = child if len(tasks) == 1 else f"{child} ({task})"
        meta = dict(parent=parent, child=child, task=task)
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
        band = _random_band(result, split, grid)
        if band is not None:
            add(_band_trace(*band, name, meta), col)
        add(_baseline_line(grid, base, name, meta), col)
        for cond in chosen:
            correct = cond.correct.get(split, {})
            lams = [lam for lam in sorted(correct) if lam > 0]
            est = [accuracy_ci(correct[lam], n_boot=n_boot, seed=seed) for lam in lams]
            cmeta = dict(meta, condition=cond.name)
            label = condition_label(result, cond)
            sym = symbol[(child, task)] if len(series) > 1 else None
            for trace in _line_with_band(lams, est, cond.kind, label, name, cmeta, sym):
                add(trace, col)
        if len(series) > 1:  # which marker is which child
            add(
                go.Scatter(
                    x=[None], y=[None], mode="markers", name=name, legendgroup=f"child {name}",
                    marker=dict(symbol=symbol[(child, task)], color="#444444", size=8),
                    meta=dict(meta, kind="child", role="key"),
                ),
                col,
            )
    xs = [x for t in fig.data for x in t.x if x is not None]
    ticks = _log_ticks(min(xs), max(xs))
    fig.update_xaxes(
        type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], title_text="λ (log scale)",
        showline=True, linecolor="black", ticks="outside",
    )
    fig.update_yaxes(showline=True, linecolor="black", ticks="outside")
    fig.update_yaxes(title_text=f"accuracy ({split})", row=1, col=1)
    title = f"Accuracy vs steering strength λ — {', '.join(tasks)}, {split} split"
    fig.update_layout(
        title=dict(
            text=f"{title}<br><sup>shaded: 95% bootstrap CI; baseline: λ = 0; grey band: "
            "random unit directions</sup>"
        ),
        template="simple_white",
        legend=dict(yanchor="top", y=1, xanchor="left", x=1.02, font=dict(size=12)),
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
    lams: list[float], est: list[Estimate], kind: str, label: str, series: str, meta: dict,
    symbol: str | None,
) -> list[go.Scatter]:
    st = style_of(kind)
    legend = st.label if label == kind else f"{st.label} ({label})"
    band = go.Scatter(
        x=lams + lams[::-1],
        y=[e.high for e in est] + [e.low for e in est][::-1],
        mode="lines",
        fill="toself",
        fillcolor=_rgba(st.colour, 0.15),
        line=dict(width=0),
        hoverinfo="skip",
        legendgroup=legend,
        showlegend=False,
        name=f"{legend} 95% CI",
        meta=dict(meta, kind=kind, role="ci"),
    )
    line = go.Scatter(
        x=lams,
        y=[e.value for e in est],
        mode="lines+markers",
        line=dict(color=st.colour, dash=st.dash, width=2.5),
        marker=dict(size=8, symbol=symbol or st.symbol,
                    color=st.colour, line=dict(color="white", width=1)),
        customdata=[[e.low, e.high, e.n] for e in est],
        hovertemplate=(
            f"{legend} → {series}<br>λ = %{{x}}<br>accuracy %{{y:.3f}} "
            "[%{customdata[0]:.3f}, %{customdata[1]:.3f}] (n=%{customdata[2]})<extra></extra>"
        ),
        legendgroup=legend,
        name=legend,
        meta=dict(meta, kind=kind, role="line"),
    )
    return [band, line]


def _baseline_line(lams: list[float], base: Sequence[bool], series: str, meta: dict) -> go.Scatter:
    acc = float(np.mean(base))
    st = STYLES["baseline"]
    return go.Scatter(
        x=[lams[0], lams[-1]],
        y=[acc, acc],
        mode="lines",
        line=dict(color=st.colour, dash=st.dash, width=1.5),
        hovertemplate=f"{series} baseline (λ = 0): {acc:.3f}<extra></extra>",
        legendgroup=st.label,
        name=st.label,
        meta=dict(meta, kind="baseline", role="baseline", condition="baseline"),
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
    lams: list[float], low: list[float], high: list[float], k: int, method: str, series: str,
    meta: dict,
) -> go.Scatter:
    st = STYLES["random"]
    return go.Scatter(
        x=lams + lams[::-1],
        y=high + low[::-1],
        mode="lines",
        fill="toself",
        fillcolor=_rgba(st.colour, 0.22),
        line=dict(color=st.colour, width=1, dash=st.dash),
        hovertemplate=f"{series}: random directions ({k}, {method})<extra></extra>",
        legendgroup=st.label,
        name=f"{st.label} ({k}, {method})",
        meta=dict(meta, kind="random", role="random", condition="random", k=k),
    )


# ---------------------------------------------------------------------------- gains

_STATS = (("lambda_star", "at λ*"), ("its", "ITS vote"))


def gains_figure(results: Sequence[TransferResult]) -> go.Figure:
    """Test accuracy gain over the baseline at λ* and by ITS vote, one bar per condition kind
    (``STYLES``), with the run's own statistics (``TransferResult.statistics``, as in report.md):
    Δ with its 95% paired-bootstrap CI and the exact McNemar p Holm-adjusted over the run's
    non-random conditions. Random directions: mean Δ and range across directions.

    Each bar's value is also marked (so Δ = 0 shows); every trace carries ``meta`` naming its
    kind, role (bar, value, label) and the (condition, statistic) comparisons it draws.
    """
    if not results:
        raise ValueError("No results given; pass a list of TransferResult (TransferResult.load).")
    labels = [run_labels(r) for r in results]
    tasks = list(dict.fromkeys(t for _, _, t in labels))
    runs = [f"{p} → {c}" if len(tasks) == 1 else f"{p} → {c} ({t})" for p, c, t in labels]
    multi = len(results) > 1
    x = ([[run for run in runs for _ in _STATS], [s for _ in runs for _, s in _STATS]] if multi
         else [s for _, s in _STATS])
    series: dict[tuple[str, str], list] = {}  # (kind, legend) -> per x slot: (Δ, low, high, text, hover, key)
    for j, result in enumerate(results):
        stats = result.statistics
        if stats is None:
            baseline_test_correct(result)  # a clear error: nothing to compare against
        for cond in result.conditions.values():
            if cond.kind == "random":
                continue
            legend = style_of(cond.kind).label
            if condition_label(result, cond) != cond.kind:
                legend = f"{legend} ({cond.name})"
            slots = series.setdefault((cond.kind, legend), [None] * (len(_STATS) * len(results)))
            for i, (what, stat) in enumerate(_STATS):
                comp = stats.comparison(cond.name, what)
                if comp is not None:
                    slots[j * len(_STATS) + i] = _comparison_slot(comp, (cond.name, what), runs[j], stat)
        randoms = conditions_of(result, "random")
        if randoms:
            slots = series.setdefault(("random", STYLES["random"].label), [None] * (len(_STATS) * len(results)))
            base = np.mean(baseline_test_correct(result))
            for i, (what, stat) in enumerate(_STATS):
                deltas = [np.mean(c.at_lambda_star() if what == "lambda_star" else c.its_correct) - base
                          for c in randoms if (c.lambda_star is not None if what == "lambda_star" else c.its_correct)]
                if deltas:
                    slots[j * len(_STATS) + i] = _random_slot(spread(deltas), runs[j], stat)
    if not series:
        raise ValueError("No condition to draw: the results hold no steering condition beside the baseline.")
    fig = go.Figure()
    for (kind, legend), slots in series.items():
        fig.add_traces(_gain_traces(kind, legend, x, slots))
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
    pad = 0.14 * (high - low or 1.0)
    fig.update_yaxes(range=[low - pad, high + pad], showline=True, linecolor="black", ticks="outside",
                     zeroline=False)
    fig.update_xaxes(showline=True, linecolor="black")
    fig.update_layout(
        template="simple_white",
        barmode="group",
        scattermode="group",
        title=dict(
            text=(
                f"Test accuracy gain over baseline — {', '.join(tasks)}<br><sup>Δ with 95% "
                "paired-bootstrap CI (random directions: mean and range over directions); markers "
                "mark each Δ<br>p: exact McNemar, Holm-adjusted over each run's non-random "
                "conditions (as in report.md)</sup>"
            )
        ),
        xaxis_title="parent → child" if multi else "",
        yaxis_title="Δ accuracy vs baseline",
        legend=_LEGEND_BELOW,
        width=max(700, 360 * len(results)),
        height=600,
        margin=dict(t=130),
    )
    return fig


def _comparison_slot(comp: Comparison, key: tuple[str, str], run: str, stat: str) -> dict:
    d, f = comp.delta, comp.flips
    return dict(
        y=d.value, low=d.low, high=d.high, key=key,
        text=f"p={_p(comp.p_holm)}",
        hover=(
            f"{key[0]} ({key[1]}), {run} ({stat})<br>accuracy {comp.accuracy.value:.3f}, baseline "
            f"{comp.baseline.value:.3f}<br>Δ {d.value:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
            f"<br>McNemar: {f.wrong_to_right} wrong→right, {f.right_to_wrong} right→wrong, "
            f"p = {_p(comp.mcnemar.p_value)}, Holm p = {_p(comp.p_holm)}"
        ),
    )


def _random_slot(s: Spread, run: str, stat: str) -> dict:
    return dict(
        y=s.mean, low=s.low, high=s.high, key=("random", stat), text=f"k={s.k}",
        hover=f"random directions, {run} ({stat})<br>Δ mean {s.mean:+.3f}, {s.method} "
        f"[{s.low:+.3f}, {s.high:+.3f}] over k={s.k} directions",
    )


def _gain_traces(kind: str, legend: str, x: list, slots: list[dict | None]) -> list[go.BaseTraceType]:
    """The kind's bars (with whiskers), a marker at each bar's value and the p / k labels."""
    st = style_of(kind)
    nan = float("nan")
    y = [s["y"] if s else nan for s in slots]
    up = [s["high"] - s["y"] if s else nan for s in slots]
    down = [s["y"] - s["low"] if s else nan for s in slots]
    meta = dict(kind=kind, keys=[s["key"] if s else None for s in slots])
    bar = go.Bar(
        name=legend,
        x=x,
        y=y,
        marker=dict(color=_rgba(st.colour, 0.75), line=dict(color=st.colour, width=1.5),
                    pattern=dict(shape=st.pattern, fgcolor="white", size=7)),
        error_y=dict(type="data", symmetric=False, array=up, arrayminus=down, thickness=1.3,
                     width=4, color="black"),
        offsetgroup=legend,
        legendgroup=legend,
        hovertext=[s["hover"] if s else "" for s in slots],
        hoverinfo="text",
        meta=dict(meta, role="bar"),
    )
    value = go.Scatter(  # the value itself, visible also where Δ = 0 and the bar has no height
        x=x, y=y, mode="markers", offsetgroup=legend, legendgroup=legend, showlegend=False,
        marker=dict(symbol=st.symbol, size=10, color=st.colour, line=dict(color="black", width=1)),
        hoverinfo="skip", name=f"{legend} value", meta=dict(meta, role="value"),
    )
    negative = [not math.isnan(v) and v < 0 for v in y]
    labels = go.Scatter(
        x=x,
        y=[v - d if neg else v + u for v, u, d, neg in zip(y, up, down, negative)],
        mode="markers+text",
        marker=dict(size=8, opacity=0),  # invisible; keeps the text clear of the whisker cap
        text=[s["text"] if s else "" for s in slots],
        textposition=["bottom center" if neg else "top center" for neg in negative],
        textfont=dict(size=10),
        offsetgroup=legend,
        legendgroup=legend,
        showlegend=False,
        hoverinfo="skip",
        name=f"{legend} labels",
        meta=dict(meta, role="label"),
    )
    return [bar, value, labels]


# ---------------------------------------------------------------------------- table


def results_table(
    results: Sequence[TransferResult],
    *,
    kinds: Sequence[str] = ("transferred",),
    n_boot: int = 10_000,
    seed: int = 0,
    family: str = "summary",
) -> pd.DataFrame:
    """Table 1 as numbers, one row per condition of ``kinds`` per result (test split).

    Accuracies carry 95% bootstrap CIs (``*_low``/``*_high``), deltas paired-bootstrap CIs; ``p_*``
    are exact McNemar p-values and ``p_*_holm`` their Holm adjustment across every λ* and ITS test
    in the table (``family="summary"``) or within each run as in its report.md
    (``family="report"``). Missing parts (no λ*, no ITS, no controls) are NaN.
    """
    rows = []
    for s in summarise_runs(results, kinds=kinds, n_boot=n_boot, seed=seed, family=family):
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
    Holm-adjusted p-values; the condition column only when some row is not the transferred vector."""

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
    if (table["condition"] == "transferred").all():
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
    """‖λ·v_l‖ / median ‖h_l‖ per child layer (log axis) at λ* for the transferred and child's-own
    vectors; with ``diagnostics["residual_norms"]`` and the λ grid, also at the largest λ.

    The child's own vector is drawn first, wide and dash-dotted, the transferred vector on top of
    it, narrower and solid, so the two stay apart where they coincide (transfer anchored on the
    child's own vector gives nearly equal sizes)."""
    parent, child, task = run_labels(result)
    fig = go.Figure()
    widths = {"child_own": 6, "transferred": 2.5}
    for cond in (c for kind in ("child_own", "transferred") for c in conditions_of(result, kind)):
        if not cond.relative_size or cond.lambda_star is None:
            continue
        st = style_of(cond.kind)
        layers = sorted(cond.relative_size)
        label = st.label if condition_label(result, cond) == cond.kind else f"{st.label} ({cond.name})"
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=[cond.relative_size[l] for l in layers],
                mode="lines+markers",
                line=dict(color=st.colour, dash=st.dash, width=widths[cond.kind]),
                marker=dict(symbol=st.symbol, size=8 if cond.kind == "transferred" else 13,
                            color=st.colour, line=dict(color="white", width=1)),
                name=f"{label} @ λ* = {cond.lambda_star:g}",
                hovertemplate="layer %{x}: %{y:.3g}<extra></extra>",
                meta=dict(kind=cond.kind, condition=cond.name, role="lambda_star"),
            )
        )
    top = _largest_lambda_sizes(result)
    if top is not None:
        lam_max, sizes = top
        transferred = {l for c in conditions_of(result, "transferred") for l in c.relative_size}
        layers = sorted(l for l in sizes if not transferred or l in transferred)
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=[sizes[l] for l in layers],
                mode="lines",
                line=dict(color="black", dash="dot", width=1.5),
                name=f"largest λ = {lam_max:g}",
                hovertemplate="layer %{x}: %{y:.3g}<extra></extra>",
                meta=dict(kind="largest_lambda", role="largest_lambda"),
            )
        )
    if not fig.data:
        raise ValueError(
            f"Result {parent} → {child} has no relative sizes: no transferred or child_own condition "
            "with relative_size and λ*, and no diagnostics['residual_norms'] with config['lambdas']."
        )
    fig.update_yaxes(type="log", title_text="‖λ·v<sub>l</sub>‖ / median ‖h<sub>l</sub>‖",
                     showline=True, linecolor="black", ticks="outside")
    ys = [y for t in fig.data for y in t.y if y > 0]
    if ys:
        ticks = _log_ticks(min(ys), max(ys))
        fig.update_yaxes(tickvals=ticks, ticktext=[f"{t:g}" for t in ticks])
    fig.update_xaxes(title_text=f"layer of {child} (child)", dtick=1, showline=True,
                     linecolor="black", ticks="outside")
    fig.update_layout(
        template="simple_white",
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
