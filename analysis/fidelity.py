"""Readout-fidelity figures from a :class:`xsteer.fidelity.FidelityResult`.

- ``readout_figure``: held-out AUROC by child layer for one concept — the child's own vector, the
  transferred vector of every (layer map, adapter), and the random-direction null as a shaded
  5–95% band with its median. Kinds differ by colour *and* by dash and marker, so the figure reads
  in greyscale.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative

from xsteer.fidelity import FidelityResult

__all__ = ["readout_figure"]

_PALETTE = qualitative.D3
_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot", "5px,2px,1px,2px")
_SYMBOLS = ("square", "diamond", "triangle-up", "x", "triangle-down", "star")


def readout_figure(result: FidelityResult, concept: str) -> go.Figure:
    """AUROC vs. child layer for ``concept``: child-own, each transferred (map + adapter), random band."""
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
        line=dict(color="black", width=2.5), marker=dict(symbol="circle", size=6),
        error_y=dict(type="data", symmetric=False, array=[r.child_own.high - r.child_own.value for r in c.child_layers],
                     arrayminus=[r.child_own.value - r.child_own.low for r in c.child_layers], thickness=1, width=2),
    ))
    kinds = list(dict.fromkeys((t.layer_map, t.adapter) for t in c.transferred))
    for i, (lm, ad) in enumerate(kinds):
        ts = sorted((t for t in c.transferred if (t.layer_map, t.adapter) == (lm, ad)), key=lambda t: t.child_layer)
        fig.add_trace(go.Scatter(
            x=[t.child_layer for t in ts], y=[t.auroc.value for t in ts], mode="lines+markers",
            name=f"transferred {lm} + {ad}",
            line=dict(color=_PALETTE[i % len(_PALETTE)], dash=_DASHES[i % len(_DASHES)], width=2),
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
