"""How much does transferred steering help? Gains over the baseline and the Table-1 style results
table across runs, drawn from saved ``TransferResult``s (the per-run figures, λ-robustness curves
included, are in ``xsteer.figures``).

- ``gains_figure``: λ* and ITS gains over the baseline beside their controls (Figs. 1 and 4), with
  the runs' own statistics.
- ``results_table`` / ``format_results_table`` / ``write_results_table``: Table 1.
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

from analysis.summary import Gain, summarise_runs
from analysis.tables import to_latex, to_markdown
from xsteer.figures import STYLES, LEGEND_BELOW, rgba, style_of
from xsteer.results import TransferResult
from xsteer.stats import Comparison, Estimate, Spread, accuracy_ci, spread

__all__ = [
    "format_results_table",
    "gains_figure",
    "results_table",
    "write_results_table",
]

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
    labels = [r.labels for r in results]
    tasks = list(dict.fromkeys(t for _, _, t in labels))
    runs = [f"{p} → {c}" if len(tasks) == 1 else f"{p} → {c} ({t})" for p, c, t in labels]
    multi = len(results) > 1
    x = ([[run for run in runs for _ in _STATS], [s for _ in runs for _, s in _STATS]] if multi
         else [s for _, s in _STATS])
    series: dict[tuple[str, str], list] = {}  # (kind, legend) -> per x slot: (Δ, low, high, text, hover, key)
    for j, result in enumerate(results):
        stats = result.statistics
        if stats is None:
            result.test_baseline()  # a clear error: nothing to compare against
        for cond in result.conditions.values():
            if cond.kind == "random":
                continue
            legend = style_of(cond.kind).label
            if result.label_of(cond) != cond.kind:
                legend = f"{legend} ({cond.name})"
            slots = series.setdefault((cond.kind, legend), [None] * (len(_STATS) * len(results)))
            for i, (what, stat) in enumerate(_STATS):
                comp = stats.comparison(cond.name, what)
                if comp is not None:
                    slots[j * len(_STATS) + i] = _comparison_slot(comp, (cond.name, what), runs[j], stat)
        randoms = result.of_kind("random")
        if randoms:
            slots = series.setdefault(("random", STYLES["random"].label), [None] * (len(_STATS) * len(results)))
            base = np.mean(result.test_baseline())
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
        legend=LEGEND_BELOW,
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
        marker=dict(color=rgba(st.colour, 0.75), line=dict(color=st.colour, width=1.5),
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


