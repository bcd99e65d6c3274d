"""Concept extraction (Algorithm 1): contrast pairs -> per-layer unit steering vectors."""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import torch

from xsteer.activations import check_layers, collect_activations
from xsteer.contrast import ContrastPair, pairs_hash
from xsteer.models import d_model, n_layers
from xsteer.vectors import SteeringVectors

__all__ = ["METHODS", "extract_vectors", "random_vectors", "split_pairs"]

METHODS = ("pca", "mean_diff", "random")


def _explained(diffs: np.ndarray, v: np.ndarray) -> float:
    """Share of the variance of the (recentred) differences that lies along unit ``v``."""
    total = float((diffs**2).sum())
    return float(((diffs @ v) ** 2).sum() / total) if total > 0 else float("nan")


def _random_unit(d: int, seed: int, layer: int) -> np.ndarray:
    v = np.random.default_rng([seed, layer]).standard_normal(d)
    return v / np.linalg.norm(v)


def random_vectors(like: SteeringVectors, seed: int) -> SteeringVectors:
    """Seeded random unit directions at the layers of ``like`` (the random-direction control)."""
    return SteeringVectors(
        directions={l: torch.from_numpy(_random_unit(like.d_model, seed, l)).float() for l in like.layers},
        model_name=like.model_name,
        d_model=like.d_model,
        n_layers=like.n_layers,
        method="random",
        seed=seed,
    )


def split_pairs(n: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of ``n`` pairs into (fit indices, held-out indices, ±1 order flips of fit pairs).

    With too few pairs to hold any out, the held-out indices are the fit indices (in-sample).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = int(math.floor(n * held_out))
    fit_idx, test_idx = perm[n_test:], perm[:n_test]
    flips = np.where(rng.random(len(fit_idx)) < 0.5, -1.0, 1.0)
    return fit_idx, (test_idx if n_test else fit_idx), flips


def extract_vectors(
    model,
    pairs: Sequence[ContrastPair],
    method: Literal["pca", "mean_diff", "random"] = "pca",
    layers: Sequence[int] | None = None,
    *,
    seed: int = 0,
    held_out: float = 0.25,
    batch_size: int = 16,
    progress: bool = False,
) -> SteeringVectors:
    """Per-layer unit steering vectors from contrast pairs, signed so +v points to the positive side.

    ``pca`` reads like RepE: pair order is flipped at random (seeded), differences are recentred and
    PC1 taken; ``mean_diff`` is CAA's mean of (positive - negative); ``random`` gives seeded unit
    directions (the control). A ``held_out`` share of the pairs is kept out of fitting and measures
    sign agreement: how often the positive text projects higher than the negative one.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")
    if len(pairs) < 2:
        raise ValueError(f"extract_vectors needs at least 2 contrast pairs, got {len(pairs)}.")
    if not 0 <= held_out < 1:
        raise ValueError("held_out must be in [0, 1).")
    layers = check_layers(model, layers)
    texts = [p.positive for p in pairs] + [p.negative for p in pairs]
    acts = collect_activations(model, texts, layers, batch_size=batch_size, progress=progress)

    n = len(pairs)
    fit_idx, test_idx, flips = split_pairs(n, held_out, seed)
    flips = flips[:, None]

    directions, evr, agree = {}, {}, {}
    for l in layers:
        a = acts[l].double().numpy()
        diff = a[:n] - a[n:]
        fit = diff[fit_idx]
        centred = fit * flips
        centred = centred - centred.mean(0)
        if method == "pca":
            v = np.linalg.svd(centred, full_matrices=False)[2][0]
        elif method == "mean_diff":
            v = fit.mean(0)
        else:
            v = _random_unit(a.shape[1], seed, l)
        v = v / np.linalg.norm(v)
        if np.mean(fit @ v > 0) < 0.5:  # RepE's label vote fixes the sign
            v = -v
        directions[l] = torch.from_numpy(v).float()
        evr[l] = _explained(centred, v)
        agree[l] = float(np.mean(diff[test_idx] @ v > 0))
    return SteeringVectors(
        directions=directions,
        model_name=model.cfg.model_name,
        d_model=d_model(model),
        n_layers=n_layers(model),
        method=method,
        seed=seed,
        data_hash=pairs_hash(pairs),
        explained_variance=evr,
        sign_agreement=agree,
        provenance={"n_pairs": n, "n_held_out": int(n - len(fit_idx)), "pooling": "last"},
    )
