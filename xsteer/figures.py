"""Figures of xsteer's results, drawn with plotly from the numbers the results hold (duck typed: this
room imports no result type, so every result's ``.plot()`` can call it).

- ``STYLES``: one colour, dash, marker and bar pattern per condition kind, shared by every figure.
- ``accuracy_vs_lambda``: accuracy against λ per child, one panel per parent (the paper's Fig. 3: the
  λ-robustness curves), with CI bands, the baseline and the random-direction band.
- ``relative_perturbation_figure``: ‖λ·v_l‖ / ‖h_l‖ per layer.
- ``vector_profile``: a vector set's explained variance and sign agreement per layer.
- ``readout_figure``: held-out AUROC by child layer for one concept of a readout-fidelity result.
- ``dose_response_figure``: concept shift (or NLL cost) against λ for every vector kind of a dose-response.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from xsteer.stats import Estimate, accuracy_ci, spread

__all__ = [
    "STYLES",
    "KindStyle",
    "LEGEND_BELOW",
    "accuracy_vs_lambda",
    "dose_response_figure",
    "readout_figure",
    "relative_perturbation_figure",
    "rgba",
    "strength_figure",
    "style_of",
    "vector_profile",
]

#: A horizontal legend under the plot.
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0)


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
    "mapped_random": KindStyle("mapped random directions", "#D55E00", "dot", "cross", "+"),
    "wrong_concept": KindStyle("wrong concept", "#CC79A7", "longdashdot", "triangle-up", "|"),
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
    results: Sequence,
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
    labels = [r.labels for r in results]
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
        chosen = [c for kind in kinds for c in result.of_kind(kind)]
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
            label = result.label_of(cond)
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


def _split_baseline(result, split: str) -> list[bool]:
    if not result.baseline.get(split):
        parent, child, _ = result.labels
        raise ValueError(
            f"Result {parent} → {child} has no baseline on split {split!r}; its baseline splits "
            f"are {sorted(result.baseline)}. Pass one of those as split=."
        )
    return result.baseline[split]


def rgba(hex_colour: str, alpha: float) -> str:
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
        fillcolor=rgba(st.colour, 0.15),
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
    result, split: str, lams: list[float]
) -> tuple[list[float], list[float], list[float], int, str] | None:
    """Per λ the random conditions' accuracy range, over the λs every random condition has."""
    randoms = [c for c in result.of_kind("random") if c.correct.get(split)]
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
        fillcolor=rgba(st.colour, 0.22),
        line=dict(color=st.colour, width=1, dash=st.dash),
        hovertemplate=f"{series}: random directions ({k}, {method})<extra></extra>",
        legendgroup=st.label,
        name=f"{st.label} ({k}, {method})",
        meta=dict(meta, kind="random", role="random", condition="random", k=k),
    )


# ---------------------------------------------------------------------------- relative size


def relative_perturbation_figure(result) -> go.Figure:
    """‖λ·v_l‖ / median ‖h_l‖ per child layer (log axis) at λ* for the transferred and child's-own
    vectors; with ``diagnostics["residual_norms"]`` and the λ grid, also at the largest λ.

    The child's own vector is drawn first, wide and dash-dotted, the transferred vector on top of
    it, narrower and solid, so the two stay apart where they coincide (transfer anchored on the
    child's own vector gives nearly equal sizes)."""
    parent, child, task = result.labels
    fig = go.Figure()
    widths = {"child_own": 6, "transferred": 2.5}
    for cond in (c for kind in ("child_own", "transferred") for c in result.of_kind(kind)):
        if not cond.relative_size or cond.lambda_star is None:
            continue
        st = style_of(cond.kind)
        layers = sorted(cond.relative_size)
        label = st.label if result.label_of(cond) == cond.kind else f"{st.label} ({cond.name})"
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
        transferred = {l for c in result.of_kind("transferred") for l in c.relative_size}
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
        legend=LEGEND_BELOW,
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


def _largest_lambda_sizes(result) -> tuple[float, dict[int, float]] | None:
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


def strength_figure(strength) -> go.Figure:
    """A ``ConceptStrength``: held-out AUROC [95% CI] of a model's own vector at every layer, the layer
    chosen on train pairs marked, chance at 0.5."""
    layers = [s.layer for s in strength.layers]
    est = [s.auroc for s in strength.layers]
    st = STYLES["child_own"]
    fig = go.Figure(go.Scatter(
        x=layers, y=[e.value for e in est], mode="lines+markers", name="held-out AUROC",
        line=dict(color=st.colour, width=2.5), marker=dict(symbol=st.symbol, size=7),
        error_y=dict(type="data", symmetric=False, array=[e.high - e.value for e in est],
                     arrayminus=[e.value - e.low for e in est], thickness=1, width=2),
    ))
    fig.add_hline(y=0.5, line=dict(color="grey", width=1))
    best = strength.best
    fig.add_vline(x=best.layer, line=dict(color="black", dash="dot", width=1))
    holds = "holds" if strength.holds else "does NOT hold"
    fig.update_layout(
        template="simple_white", width=800, height=420, yaxis=dict(range=[0, 1.02], title="held-out AUROC (95% CI)"),
        xaxis=dict(title=f"layer of {strength.model}"),
        title=f"{strength.model} {holds} '{strength.concept}' (best layer on train pairs: {best.layer})",
    )
    return fig


def vector_profile(vectors) -> go.Figure:
    """Per layer of a vector set (``SteeringVectors``): PC1 explained variance and held-out sign
    agreement (0.5 = chance), the two numbers that say whether a layer's vector is worth steering with."""
    layers = list(vectors.layers)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["PC1 explained variance", "held-out sign agreement"],
                        horizontal_spacing=0.12)
    for col, (values, chance) in enumerate(((vectors.explained_variance, None), (vectors.sign_agreement, 0.5)), 1):
        ys = [values.get(l, float("nan")) for l in layers]
        fig.add_trace(go.Scatter(x=layers, y=ys, mode="lines+markers", name=("explained variance", "sign agreement")[col - 1],
                                 line=dict(color=STYLES["transferred"].colour), showlegend=False), row=1, col=col)
        if chance is not None:
            fig.add_hline(y=chance, line=dict(color="black", dash="dash", width=1), row=1, col=col)
    fig.update_xaxes(title_text=f"layer of {vectors.model_name}", dtick=max(1, len(layers) // 10), showline=True,
                     linecolor="black", ticks="outside")
    fig.update_yaxes(showline=True, linecolor="black", ticks="outside")
    fig.update_layout(template="simple_white", width=900, height=380,
                      title=f"{vectors.method} vectors of {vectors.model_name} ({len(layers)} layers)")
    return fig


# ---------------------------------------------------------------------------- fidelity

_PALETTE = qualitative.D3
_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot", "5px,2px,1px,2px")
_SYMBOLS = ("square", "diamond", "triangle-up", "x", "triangle-down", "star")


def readout_figure(result, concept: str) -> go.Figure:
    """Held-out AUROC by child layer for ``concept`` of a ``FidelityResult``: the child's own vector, the
    transferred vector of every (layer map, adapter), and the random-direction null as a shaded 5–95%
    band with its median. Kinds differ by colour and by dash and marker (readable in greyscale)."""
    found = [c for c in result.concepts if c.concept.name == concept]
    if not found:
        raise ValueError(f"No concept {concept!r} in this result; it has {[c.concept.name for c in result.concepts]}.")
    c = found[0]
    layers = [r.layer for r in c.child_layers]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=layers, y=[r.random.p95 for r in c.child_layers], mode="lines",
                             line=dict(width=0), showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=layers, y=[r.random.p05 for r in c.child_layers], mode="lines", line=dict(width=0),
                             fill="tonexty", fillcolor="rgba(128,128,128,0.3)",
                             name=f"random 5–95% ({c.child_layers[0].random.n} directions)"))
    fig.add_trace(go.Scatter(x=layers, y=[r.random.p50 for r in c.child_layers], mode="lines",
                             line=dict(color="grey", dash="dot", width=1), name="random median"))
    fig.add_trace(go.Scatter(
        x=layers, y=[r.child_own.value for r in c.child_layers], mode="lines+markers", name="child_own",
        line=dict(color=STYLES["child_own"].colour, width=2.5), marker=dict(symbol="circle", size=6),
        error_y=dict(type="data", symmetric=False, array=[r.child_own.high - r.child_own.value for r in c.child_layers],
                     arrayminus=[r.child_own.value - r.child_own.low for r in c.child_layers], thickness=1, width=2),
    ))
    kinds = list(dict.fromkeys((t.layer_map, t.adapter) for t in c.transferred))
    for i, (lm, ad) in enumerate(kinds):
        ts = sorted((t for t in c.transferred if (t.layer_map, t.adapter) == (lm, ad)), key=lambda t: t.child_layer)
        fig.add_trace(go.Scatter(
            x=[t.child_layer for t in ts], y=[t.auroc.value for t in ts], mode="lines+markers",
            name=f"transferred {lm} + {ad}",
            line=dict(color=STYLES["transferred"].colour if i == 0 else _PALETTE[i % len(_PALETTE)],
                      dash=_DASHES[i % len(_DASHES)], width=2),
            marker=dict(symbol=_SYMBOLS[i % len(_SYMBOLS)], size=7),
            error_y=dict(type="data", symmetric=False, array=[t.auroc.high - t.auroc.value for t in ts],
                         arrayminus=[t.auroc.value - t.auroc.low for t in ts], thickness=1, width=2),
        ))
    holds = "holds" if c.parent.holds else "does NOT hold"
    fig.update_layout(
        title=f"Readout of '{concept}' in {result.child} (parent {result.parent} {holds} it)",
        xaxis_title="child layer", yaxis_title="held-out AUROC (95% CI)", template="plotly_white",
        yaxis=dict(range=[0, 1.02]), legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
        width=900, height=560,
    )
    fig.add_hline(y=0.5, line=dict(color="grey", width=1))
    return fig


_BANDS = ("random", "mapped_random")
_Y = {"shift": ("shift", "shift_low", "shift_high", "concept shift vs. unsteered"),
      "nll_increase": ("nll_increase", "nll_low", "nll_high", "NLL increase (nats / token)")}


def dose_response_figure(result, y: str = "shift") -> go.Figure:
    """A ``DoseResponse``: ``y`` ("shift" or "nll_increase") against λ (log axis); single-vector kinds
    (transferred, child_own, wrong_concept, child_own on k pairs) as lines with 95% bootstrap CI bands
    over prompts, many-vector kinds (random, mapped_random) as their mean with a 5–95% band across
    directions. Kinds differ by colour, dash and marker (readable in greyscale)."""
    if y not in _Y:
        raise ValueError(f"y must be one of {sorted(_Y)}, not {y!r}.")
    col, lo, hi, title = _Y[y]
    table = result.table()
    fig = go.Figure()
    group = [kind if k is None or k != k else f"{kind}:{int(k)}" for kind, k in zip(table["kind"], table["k"])]
    for i, key in enumerate(dict.fromkeys(group)):
        rows = table[[g == key for g in group]]
        kind, _, k = key.partition(":")
        st = style_of(kind)
        name, colour, dash, marker = kind, st.colour, st.dash, st.symbol
        if k:
            name, dash = f"child_own on {k} pairs", _DASHES[i % len(_DASHES)]
        x = rows["lam"].tolist()
        if kind in _BANDS and y == "shift":
            name = f"{name} (mean of {int(rows['n_vectors'].iloc[0])})"
            low, high, band = rows["shift_p05"].tolist(), rows["shift_p95"].tolist(), f"{kind} 5–95%"
        else:
            low, high, band = rows[lo].tolist(), rows[hi].tolist(), f"{name} 95% CI"
        fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", fillcolor=rgba(colour, 0.3 if kind in _BANDS else 0.15),
                                 line=dict(width=0), name=band, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=rows[col].tolist(), mode="lines+markers", name=name,
                                 line=dict(color=colour, dash=dash, width=2.5), marker=dict(symbol=marker, size=8)))
    fig.add_hline(y=0, line=dict(color="grey", width=1))
    fig.update_layout(
        title=f"{result.concept or result.judge} in {result.child}: steering at layers "
        f"{result.layers[0]}–{result.layers[-1]} ({len(result.prompts)} prompts)",
        xaxis=dict(title="λ (fraction of the median residual norm)", type="log"),
        yaxis=dict(title=f"{title} [{result.judge} judge]" if y == "shift" else title),
        template="simple_white", legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
    )
    return fig


# ---------------------------------------------------------------------------- the fidelity suite


def suite_figure(table) -> go.Figure:
    """A suite's table (one row per estimator × concept × direction): readout over all child layers of
    the transferred vector beside the child's own vector and the random 95th percentile, and the steering
    efficiency [95% CI] with 1 (the child's own vector) marked."""
    labels = [f"{r.estimator} · {r.concept} · {r.direction.replace('_', ' ')}" for r in table.itertuples()]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("readout AUROC over all child layers",
                                                        "steering efficiency (transferred ÷ child's own)"))
    for column, kind in (("readout_transferred_all_layers", "transferred"), ("readout_child_own_all_layers", "child_own"),
                         ("readout_random_p95_all_layers", "random")):
        st = style_of(kind)
        name = "random (95th percentile)" if kind == "random" else st.label
        fig.add_trace(go.Bar(x=labels, y=table[column], name=name, marker=dict(color=st.colour, pattern_shape=st.pattern)),
                      row=1, col=1)
    if "steer_efficiency" in table:
        eff = table["steer_efficiency"]
        st = STYLES["transferred"]
        fig.add_trace(go.Scatter(
            x=labels, y=eff, mode="markers", name="efficiency [95% CI]", marker=dict(color=st.colour, size=9),
            error_y=dict(type="data", symmetric=False, array=table["steer_efficiency_high"] - eff,
                         arrayminus=eff - table["steer_efficiency_low"], thickness=1, width=3),
        ), row=1, col=2)
        fig.add_hline(y=1.0, line=dict(color=STYLES["child_own"].colour, dash="dash", width=1), row=1, col=2)
    fig.add_hline(y=0.5, line=dict(color="grey", width=1), row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_layout(template="simple_white", width=1100, height=460, barmode="group")
    return fig
