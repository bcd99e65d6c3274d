"""Dose-response figures from a :class:`xsteer.fidelity.dose.DoseResponse`.

- ``dose_response_figure``: judge shift (or NLL increase) against steering strength λ (log axis):
  single-vector kinds (transferred, child_own, wrong_concept, child_own on k pairs) as lines with 95%
  bootstrap CI bands over prompts, many-vector kinds (random, mapped_random) as their mean with a
  5–95% band across directions. Kinds differ by colour, dash and marker, so the figure reads in
  greyscale.
"""

from __future__ import annotations

import plotly.graph_objects as go

from xsteer.fidelity.dose import DoseResponse

__all__ = ["dose_response_figure"]

#: kind -> (legend name, colour, dash, marker); black / blue / grey differ in greyscale too
_STYLE = {
    "child_own": ("child_own", "rgb(0,0,0)", "solid", "circle"),
    "transferred": ("transferred", "rgb(31,119,180)", "dash", "square"),
    "random": ("random", "rgb(150,150,150)", "dot", "x"),
    "mapped_random": ("mapped_random", "rgb(214,39,40)", "dot", "cross"),
    "wrong_concept": ("wrong_concept", "rgb(148,103,189)", "dashdot", "triangle-up"),
}
_FILL = {"child_own": "rgba(0,0,0,0.15)", "transferred": "rgba(31,119,180,0.2)", "random": "rgba(150,150,150,0.3)",
         "mapped_random": "rgba(214,39,40,0.15)", "wrong_concept": "rgba(148,103,189,0.15)"}
_BANDS = ("random", "mapped_random")
_Y = {"shift": ("shift", "shift_low", "shift_high", "concept shift vs. unsteered"),
      "nll_increase": ("nll_increase", "nll_low", "nll_high", "NLL increase (nats / token)")}


def dose_response_figure(result: DoseResponse, y: str = "shift") -> go.Figure:
    """``y`` ("shift" or "nll_increase") against strength, one colour per vector kind with its band."""
    if y not in _Y:
        raise ValueError(f"y must be one of {sorted(_Y)}, not {y!r}.")
    col, lo, hi, title = _Y[y]
    table = result.table()
    fig = go.Figure()
    group = [kind if k is None or k != k else f"{kind}:{int(k)}" for kind, k in zip(table["kind"], table["k"])]
    for i, key in enumerate(dict.fromkeys(group)):
        rows = table[[g == key for g in group]]
        kind, _, k = key.partition(":")
        name, colour, dash, marker = _STYLE.get(kind, (kind, f"hsl({60 * i},60%,40%)", "dashdot", "diamond"))
        if k:
            name = f"child_own on {k} pairs"
        x = rows["lam"].tolist()
        if kind in _BANDS and y == "shift":
            name = f"{name} (mean of {int(rows['n_vectors'].iloc[0])})"
            low, high, band = rows["shift_p05"].tolist(), rows["shift_p95"].tolist(), f"{kind} 5–95%"
        else:
            low, high, band = rows[lo].tolist(), rows[hi].tolist(), f"{name} 95% CI"
        fig.add_trace(go.Scatter(x=x + x[::-1], y=high + low[::-1], fill="toself", fillcolor=_FILL.get(kind, "rgba(0,0,0,0.1)"),
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
