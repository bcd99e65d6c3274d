"""Do two models' concept directions agree? Per-layer comparisons between two parents (or a parent
and a child) as layer-by-layer matrices and heatmaps.

- ``pc1_correlation_heatmap``: Pearson correlation of PC1 coordinates (the paper's heatmap); only
  meaningful when both models share one width, shown beside its random-direction expectation.
- ``projection_agreement``: width-agnostic; Spearman correlation of the per-pair projection scores
  of the same contrast pairs, with permutation p-values.
- ``difference_cka``: width-agnostic; linear CKA of the pair-difference matrices.
- ``cka_layer_map_figure``: a child × parent CKA matrix with the chosen layer map drawn on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from numpy.typing import ArrayLike
from plotly.subplots import make_subplots
from scipy.stats import rankdata

from xsteer.transfer.cka import cka_matrix
from xsteer.vectors import SteeringVectors

__all__ = [
    "DifferenceCKA",
    "ProjectionAgreement",
    "cka_layer_map_figure",
    "difference_cka",
    "difference_cka_heatmap",
    "pc1_correlation",
    "pc1_correlation_heatmap",
    "projection_agreement",
    "projection_agreement_heatmap",
    "random_correlation_scale",
]

_WIDTH_AGNOSTIC = (
    "compare models of different widths with analysis.similarity.projection_agreement (Spearman "
    "correlation of per-pair projection scores) or analysis.similarity.difference_cka (linear CKA "
    "of pair-difference matrices)"
)


# ---------------------------------------------------------------------------- PC1 correlation


def pc1_correlation(a: SteeringVectors, b: SteeringVectors) -> np.ndarray:
    """Pearson correlation of the PC1 coordinates of every layer of ``a`` (rows) with every layer
    of ``b`` (columns), layers ascending; needs ``a.d_model == b.d_model``."""
    if a.d_model != b.d_model:
        raise ValueError(
            f"PC1 coordinates are only comparable within one width: {a.model_name!r} has "
            f"d_model={a.d_model} but {b.model_name!r} has d_model={b.d_model}; {_WIDTH_AGNOSTIC}."
        )
    return _row_correlation(_stack(a), _stack(b))


def random_correlation_scale(d_model: int) -> float:
    """Expected |Pearson r| between the coordinates of two independent random directions in
    ``d_model`` dimensions: sqrt(2 / (π (d − 1))), i.e. of order 1/sqrt(d)."""
    if d_model < 3:
        raise ValueError(f"d_model must be at least 3 for a correlation scale, got {d_model}.")
    return math.sqrt(2.0 / (math.pi * (d_model - 1)))


def pc1_correlation_heatmap(
    a: SteeringVectors, b: SteeringVectors, *, seed: int = 0
) -> go.Figure:
    """Heatmap of ``pc1_correlation(a, b)`` beside the same matrix for random unit directions of the
    same width and layer counts (drawn with ``seed``), on one colour scale."""
    z = pc1_correlation(a, b)
    rng = np.random.default_rng(seed)
    z_rand = _row_correlation(
        rng.standard_normal((len(a.layers), a.d_model)),
        rng.standard_normal((len(b.layers), b.d_model)),
    )
    scale = random_correlation_scale(a.d_model)
    zmax = float(max(np.abs(z).max(), np.abs(z_rand).max()))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            f"PC1 correlation, {a.model_name} vs {b.model_name}",
            f"random unit directions, d={a.d_model} (seed {seed})",
        ),
        horizontal_spacing=0.12,
    )
    for col, matrix in ((1, z), (2, z_rand)):
        fig.add_trace(
            go.Heatmap(
                z=matrix,
                x=b.layers,
                y=a.layers,
                coloraxis="coloraxis",
                hovertemplate="layer %{y} vs layer %{x}<br>r = %{z:.3f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text=f"layer of {b.model_name}", row=1, col=col)
        fig.update_yaxes(title_text=f"layer of {a.model_name}", row=1, col=col)
    fig.update_layout(
        title=dict(
            text=(
                f"Per-layer PC1 correlation (Pearson over {a.d_model} coordinates)<br><sup>"
                f"random-direction expectation E|r| = sqrt(2/(π(d−1))) = {scale:.3f}; "
                f"observed mean |r| = {np.abs(z).mean():.3f}, max |r| = {np.abs(z).max():.3f}</sup>"
            )
        ),
        coloraxis=dict(
            colorscale="RdBu_r", cmin=-zmax, cmax=zmax, colorbar=dict(title="Pearson r")
        ),
        width=1100,
        height=520,
        margin=dict(t=110),
    )
    return fig


def _stack(vectors: SteeringVectors) -> np.ndarray:
    return np.stack([vectors[l].double().numpy() for l in vectors.layers])


def _row_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``x`` with every row of ``y``."""
    x = x - x.mean(1, keepdims=True)
    y = y - y.mean(1, keepdims=True)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return x @ y.T


# ---------------------------------------------------------------------------- projection agreement


@dataclass(frozen=True)
class ProjectionAgreement:
    """Spearman ρ of per-pair projection scores for every (layer of a, layer of b).

    ``p`` holds two-sided permutation p-values per cell, (1 + #{|ρ_perm| ≥ |ρ|}) / (1 + n_perm),
    uncorrected for the number of cells.
    """

    rho: np.ndarray  # (len(layers_a), len(layers_b))
    p: np.ndarray  # same shape
    layers_a: list[int]
    layers_b: list[int]
    n_pairs: int
    n_perm: int
    seed: int


def projection_agreement(
    scores_a: Mapping[int, ArrayLike],
    scores_b: Mapping[int, ArrayLike],
    *,
    n_perm: int = 1000,
    seed: int = 0,
) -> ProjectionAgreement:
    """Spearman correlation of two models' projection scores of the same contrast pairs, per layer
    pair, with permutation p-values.

    ``scores_x[l]`` is one score per pair at layer ``l`` (PC1 · (pos − neg) activation), pairs in
    the same order for both models. The same ``n_perm`` permutations (drawn with ``seed``) of the
    pairs are used for every cell.
    """
    la, ra = _ranked(scores_a, "scores_a")
    lb, rb = _ranked(scores_b, "scores_b")
    n = ra.shape[1]
    if rb.shape[1] != n:
        raise ValueError(
            f"scores_a has {n} pairs per layer but scores_b has {rb.shape[1]}; score the same "
            "contrast pairs, in the same order, with both models."
        )
    if isinstance(n_perm, bool) or not isinstance(n_perm, (int, np.integer)) or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}; e.g. n_perm=1000.")
    rho = ra @ rb.T / n
    rng = np.random.default_rng(seed)
    exceed = np.zeros_like(rho)
    for _ in range(n_perm):
        exceed += np.abs(ra @ rb[:, rng.permutation(n)].T / n) >= np.abs(rho) - 1e-12
    p = (1.0 + exceed) / (1.0 + n_perm)
    return ProjectionAgreement(rho, p, la, lb, n, int(n_perm), seed)


def projection_agreement_heatmap(
    agreement: ProjectionAgreement,
    *,
    name_a: str = "model A",
    name_b: str = "model B",
    alpha: float = 0.05,
) -> go.Figure:
    """Heatmap of Spearman ρ with dots on the cells whose permutation p < ``alpha`` (uncorrected)."""
    ag = agreement
    fig = go.Figure(
        go.Heatmap(
            z=ag.rho,
            x=ag.layers_b,
            y=ag.layers_a,
            customdata=ag.p,
            colorscale="RdBu_r",
            zmin=-1,
            zmax=1,
            colorbar=dict(title="Spearman ρ"),
            hovertemplate=(
                f"{name_a} layer %{{y}} vs {name_b} layer %{{x}}<br>ρ = %{{z:.3f}}, "
                "p = %{customdata:.4f}<extra></extra>"
            ),
        )
    )
    rows, cols = np.nonzero(ag.p < alpha)
    fig.add_trace(
        go.Scatter(
            x=[ag.layers_b[c] for c in cols],
            y=[ag.layers_a[r] for r in rows],
            mode="markers",
            marker=dict(symbol="circle", size=4, color="black"),
            name=f"p < {alpha} (permutation, uncorrected)",
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=(
            f"Projection-score agreement, {name_a} vs {name_b}<br><sup>Spearman ρ over "
            f"{ag.n_pairs} contrast pairs; {ag.n_perm} permutations (seed {ag.seed})</sup>"
        ),
        xaxis_title=f"layer of {name_b}",
        yaxis_title=f"layer of {name_a}",
        showlegend=True,
        legend=dict(orientation="h", yanchor="top", y=-0.15, xanchor="left", x=0),
        width=700,
        height=680,
    )
    _fit_axes_to_cells(fig, ag.layers_b, ag.layers_a)
    return fig


def _fit_axes_to_cells(fig: go.Figure, x: list[int], y: list[int]) -> None:
    """Axis ranges that end at the heatmap's outer cell edges, without grid lines over the cells."""
    for axis, values in ((fig.update_xaxes, x), (fig.update_yaxes, y)):
        first = (values[1] - values[0]) / 2 if len(values) > 1 else 0.5
        last = (values[-1] - values[-2]) / 2 if len(values) > 1 else 0.5
        axis(range=[values[0] - first, values[-1] + last], showgrid=False, zeroline=False)


def _ranked(scores: Mapping[int, ArrayLike], what: str) -> tuple[list[int], np.ndarray]:
    """Layers ascending and their scores as standardised average ranks, one row per layer."""
    if not scores:
        raise ValueError(f"{what} is empty; pass layer -> one projection score per contrast pair.")
    layers = sorted(scores)
    rows = []
    for l in layers:
        s = np.asarray(scores[l], dtype=float)
        if s.ndim != 1 or s.size < 3:
            raise ValueError(
                f"{what}[{l}] must be a flat array of at least 3 per-pair scores, got shape "
                f"{s.shape}; pass one projection score per contrast pair."
            )
        if not np.all(np.isfinite(s)):
            raise ValueError(f"{what}[{l}] has NaN or infinite scores; check the activations.")
        r = rankdata(s)
        r = r - r.mean()
        norm = np.sqrt((r**2).mean())
        if norm == 0:
            raise ValueError(
                f"{what}[{l}] is constant across pairs, so its rank correlation is undefined; "
                "drop that layer."
            )
        rows.append(r / norm)
    lengths = {r.size for r in rows}
    if len(lengths) != 1:
        raise ValueError(
            f"{what} has different numbers of pairs across layers ({sorted(lengths)}); score the "
            "same pairs at every layer."
        )
    return layers, np.stack(rows)


# ---------------------------------------------------------------------------- difference CKA


@dataclass(frozen=True)
class DifferenceCKA:
    """Linear CKA of pair-difference matrices for every (layer of a, layer of b)."""

    cka: np.ndarray  # (len(layers_a), len(layers_b))
    layers_a: list[int]
    layers_b: list[int]
    n_pairs: int


def difference_cka(
    diffs_a: Mapping[int, ArrayLike], diffs_b: Mapping[int, ArrayLike]
) -> DifferenceCKA:
    """Linear CKA between two models' (n_pairs, d) matrices of pos − neg activations, per layer pair;
    widths may differ, pairs must be the same and in the same order."""
    for what, diffs in (("diffs_a", diffs_a), ("diffs_b", diffs_b)):
        if not diffs:
            raise ValueError(f"{what} is empty; pass layer -> (n_pairs, d_model) differences.")
    a = {l: np.asarray(diffs_a[l], dtype=float) for l in sorted(diffs_a)}
    b = {l: np.asarray(diffs_b[l], dtype=float) for l in sorted(diffs_b)}
    return DifferenceCKA(cka_matrix(a, b), list(a), list(b), next(iter(a.values())).shape[0])


def difference_cka_heatmap(
    result: DifferenceCKA, *, name_a: str = "model A", name_b: str = "model B"
) -> go.Figure:
    """Heatmap of a ``DifferenceCKA`` on a 0..1 scale."""
    fig = go.Figure(
        go.Heatmap(
            z=result.cka,
            x=result.layers_b,
            y=result.layers_a,
            colorscale="Viridis",
            zmin=0,
            zmax=1,
            colorbar=dict(title="linear CKA"),
            hovertemplate=(
                f"{name_a} layer %{{y}} vs {name_b} layer %{{x}}<br>CKA = %{{z:.3f}}<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        title=(
            f"Linear CKA of contrast-pair differences, {name_a} vs {name_b}"
            f"<br><sup>{result.n_pairs} pairs</sup>"
        ),
        xaxis_title=f"layer of {name_b}",
        yaxis_title=f"layer of {name_a}",
        width=700,
        height=620,
    )
    return fig


# ---------------------------------------------------------------------------- layer map on CKA


def cka_layer_map_figure(
    similarity: ArrayLike,
    mapping: Mapping[int, int],
    *,
    child_layers: list[int] | None = None,
    parent_layers: list[int] | None = None,
    child_name: str = "child",
    parent_name: str = "parent",
) -> go.Figure:
    """A (child layers × parent layers) similarity matrix with ``mapping`` (child layer -> parent
    layer) drawn as markers; layers default to 0..n−1."""
    z = np.asarray(similarity, dtype=float)
    if z.ndim != 2:
        raise ValueError(
            f"similarity must be a (n_child_layers, n_parent_layers) matrix, got shape {z.shape}."
        )
    child_layers = list(range(z.shape[0])) if child_layers is None else list(child_layers)
    parent_layers = list(range(z.shape[1])) if parent_layers is None else list(parent_layers)
    if (len(child_layers), len(parent_layers)) != z.shape:
        raise ValueError(
            f"similarity has shape {z.shape} but {len(child_layers)} child and "
            f"{len(parent_layers)} parent layers were given; rows are child layers, columns parent "
            "layers (transpose it if needed)."
        )
    outside = {c: p for c, p in mapping.items() if c not in child_layers or p not in parent_layers}
    if outside:
        raise ValueError(
            f"mapping pairs {outside} fall outside the matrix (child layers {child_layers[0]}.."
            f"{child_layers[-1]}, parent layers {parent_layers[0]}..{parent_layers[-1]}); "
            "mapping is child layer -> parent layer, as in LayerMap.mapping_."
        )
    pairs = sorted(mapping.items())
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=parent_layers,
            y=child_layers,
            colorscale="Viridis",
            colorbar=dict(title="similarity"),
            hovertemplate=(
                f"{child_name} layer %{{y}}, {parent_name} layer %{{x}}<br>%{{z:.3f}}<extra></extra>"
            ),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[p for _, p in pairs],
            y=[c for c, _ in pairs],
            mode="markers+lines",
            marker=dict(symbol="x", size=9, color="white", line=dict(width=1.5, color="black")),
            line=dict(color="white", width=1),
            name="layer map (child ← parent)",
            hovertemplate=f"{child_name} %{{y}} ← {parent_name} %{{x}}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Layer similarity and chosen layer map, {child_name} ← {parent_name}",
        xaxis_title=f"layer of {parent_name} (parent)",
        yaxis_title=f"layer of {child_name} (child)",
        showlegend=True,
        legend=dict(orientation="h", yanchor="top", y=-0.15, xanchor="left", x=0),
        width=700,
        height=680,
    )
    _fit_axes_to_cells(fig, parent_layers, child_layers)
    return fig
