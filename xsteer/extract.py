"""Concept extraction (Algorithm 1): contrast pairs -> per-layer unit steering vectors."""

from __future__ import annotations

import warnings
from collections import Counter
from numbers import Real
from typing import Literal, Sequence

import numpy as np
import torch

from xsteer.activations import check_layers, collect_activations
from xsteer.checks import as_count
from xsteer.contrast import ContrastPair, pairs_hash
from xsteer.splits import held_out_split
from xsteer.models import check_bridge, d_model, model_fingerprint, n_layers
from xsteer.vectors import SteeringVectors

__all__ = ["METHODS", "extract_vectors", "fit_direction", "random_vectors", "sign_agreement", "sign_vote"]

METHODS = ("pca", "mean_diff", "random")


def _explained(diffs: np.ndarray, v: np.ndarray) -> float:
    """Share of the variance of the (recentred) differences that lies along unit ``v``."""
    total = float((diffs**2).sum())
    return float(((diffs @ v) ** 2).sum() / total) if total > 0 else float("nan")


def random_vectors(like: SteeringVectors, seed: int) -> SteeringVectors:
    """Seeded random unit directions at the layers of ``like`` (the random-direction control; see
    :meth:`SteeringVectors.random`)."""
    return SteeringVectors.random(like, seed)


def _check_diffs(diffs, who: str) -> np.ndarray:
    """(n, d) finite float64 pair differences with n >= 1."""
    diffs = np.asarray(diffs, dtype=np.float64)
    if diffs.ndim != 2 or len(diffs) < 1:
        raise ValueError(f"{who} needs (n_pairs, d) differences, got shape {diffs.shape}.")
    if not np.isfinite(diffs).all():
        raise ValueError(
            f"{who} got pair differences with NaN or infinite entries; check the activations they came "
            "from (load the model in float32)."
        )
    return diffs


def _check_against(v, diffs, who: str) -> tuple[np.ndarray, np.ndarray]:
    v, diffs = np.array(v, dtype=float), _check_diffs(diffs, who)
    if v.ndim not in (1, 2) or v.shape[0] != diffs.shape[1]:
        raise ValueError(
            f"{who}: the direction has shape {v.shape} but the differences are {diffs.shape[1]}-wide; "
            "pass a (d,) or (d, k) direction of the differences' model."
        )
    return v, diffs


def sign_agreement(v: np.ndarray, diffs: np.ndarray) -> np.ndarray | float:
    """Share of pairs whose positive side projects higher on ``v`` (unit (d,) or one per column
    (d, k)); ``diffs`` are (positive − negative) rows (n, d)."""
    v, diffs = _check_against(v, diffs, "sign_agreement")
    share = (diffs @ v > 0).mean(0)
    return float(share) if np.ndim(share) == 0 else share


def sign_vote(v: np.ndarray, diffs: np.ndarray) -> np.ndarray:
    """RepE's label vote: ``v`` or ``-v`` (per column of a (d, k) ``v``), whichever has the positive
    side projecting higher on most pairs; a tie goes to the sign with the larger mean margin."""
    v, diffs = _check_against(v, diffs, "sign_vote")
    margin = diffs @ v
    agree = (margin > 0).mean(0)
    flip = (agree < 0.5) | ((agree == 0.5) & (margin.mean(0) < 0))
    return np.where(flip, -v, v)


def flipped_differences(diffs: np.ndarray, seed: int) -> np.ndarray:
    """RepE's PCA input: each pair's difference with its order flipped at random (seeded), recentred."""
    flips = np.where(np.random.default_rng(seed).random(len(diffs)) < 0.5, -1.0, 1.0)[:, None]
    centred = np.asarray(diffs, dtype=np.float64) * flips
    return centred - centred.mean(0)


def fit_direction(diffs: np.ndarray, method: str = "mean_diff", seed: int = 0) -> np.ndarray:
    """The one direction fitter: a unit vector from (positive − negative) rows ``diffs`` (n, d),
    signed by :func:`sign_vote`. ``mean_diff`` is CAA's mean difference; ``pca`` is RepE's PC1 of
    the differences after a seeded random flip of each pair's order and recentring."""
    diffs = _check_diffs(diffs, "fit_direction")
    if method == "mean_diff":
        v = diffs.mean(0)
    elif method == "pca":
        _, s, vt = np.linalg.svd(flipped_differences(diffs, seed), full_matrices=False)
        if len(diffs) < 2 or not s[0] > 0:
            raise ValueError(
                f"PCA needs at least 2 distinct pair differences, got {len(diffs)} pair(s) whose recentred "
                "differences are all zero; PC1 would be an arbitrary direction. Fix: give more (and distinct) "
                "pairs, or use method='mean_diff'."
            )
        v = vt[0]
    else:
        raise ValueError(f"Unknown method {method!r}; choose one of ('pca', 'mean_diff').")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(
            "The pairs give a zero direction: their positive and negative activations are identical on "
            "average. Fix: check that the pairs differ in the concept."
        )
    return sign_vote(v / norm, diffs)


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
    check_bridge(model, "extract_vectors")
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")
    pairs = _check_pairs(pairs)
    if len(pairs) < 2:
        raise ValueError(f"extract_vectors needs at least 2 contrast pairs, got {len(pairs)}.")
    if isinstance(held_out, bool) or not isinstance(held_out, Real) or not 0 <= held_out < 1:
        raise ValueError(f"held_out must be a fraction in [0, 1), not {held_out!r}; e.g. held_out=0.25.")
    seed = as_count("seed", seed, 0)
    batch_size = as_count("batch_size", batch_size)
    layers = check_layers(model, layers)
    texts = [p.positive for p in pairs] + [p.negative for p in pairs]
    acts = collect_activations(model, texts, layers, batch_size=batch_size, progress=progress)

    n = len(pairs)
    fit_idx, test_idx = held_out_split(n, held_out, seed)
    if len(fit_idx) < 2 or len(test_idx) == 0:  # nothing (or too little) to hold out: in-sample
        fit_idx = test_idx = np.arange(n)
        if held_out > 0:
            warnings.warn(
                f"{n} pairs are too few to hold {held_out:g} of them out and still fit on 2: the sign "
                "agreement is measured on the pairs the direction was fitted on (in-sample). Fix: give more pairs.",
                UserWarning, stacklevel=2,
            )
    random_dirs = SteeringVectors.random(model, seed, layers) if method == "random" else None

    directions, evr, agree = {}, {}, {}
    for l in layers:
        a = acts[l].double().numpy()
        diff = a[:n] - a[n:]
        fit = diff[fit_idx]
        if method == "random":
            v = sign_vote(random_dirs[l].double().numpy(), fit)
        else:
            v = fit_direction(fit, method, seed)
        directions[l] = torch.from_numpy(v).float()
        evr[l] = _explained(flipped_differences(fit, seed), v)
        agree[l] = sign_agreement(v, diff[test_idx])
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
        fingerprint=model_fingerprint(model),
    )


def _check_pairs(pairs) -> list[ContrastPair]:
    """``pairs`` as ContrastPairs ((positive, negative) string tuples are taken as such), with a
    warning for repeated pairs: a pair in both the fit and the held-out part inflates sign agreement."""
    if isinstance(pairs, (str, bytes, ContrastPair)) or not isinstance(pairs, Sequence):
        raise TypeError(
            f"pairs must be a list of ContrastPair(positive, negative), not {type(pairs).__name__}. "
            "Fix: [ContrastPair(pos, neg), ...] (xsteer.contrast), or a list of (positive, negative) tuples."
        )
    out = []
    for i, p in enumerate(pairs):
        if isinstance(p, tuple) and len(p) == 2 and all(isinstance(t, str) for t in p):
            p = ContrastPair(*p)
        if not isinstance(p, ContrastPair):
            raise TypeError(
                f"pairs[{i}] is a {type(p).__name__}, not a ContrastPair. Fix: ContrastPair(positive, negative)."
            )
        out.append(p)
    repeated = sum(c - 1 for c in Counter((p.positive, p.negative) for p in out).values())
    if repeated:
        warnings.warn(
            f"{repeated} contrast pairs repeat earlier ones: a pair in both the fit and the held-out part "
            "inflates the sign agreement. Fix: de-duplicate the pairs.",
            UserWarning, stacklevel=3,
        )
    return out
