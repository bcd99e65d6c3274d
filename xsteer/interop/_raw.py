"""What the peer formats share: they store *raw* per-layer vectors (strength folded in), xsteer stores
unit vectors and a λ. ``scaled`` folds λ (and the scale mode) into raw vectors; ``unscaled`` splits raw
vectors back into unit ``SteeringVectors`` plus per-layer strengths, checking them against the target
model's width and depth with one-line errors that name the fix."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from xsteer.checks import as_count, as_int_list, as_real
from xsteer.models import model_fingerprint
from xsteer.steer import residual_norms
from xsteer.vectors import SteeringVectors

_UNIT_TOL = 1e-4  # as SteeringVectors'


def check_scale(scale: str) -> None:
    if scale not in ("absolute", "relative"):
        raise ValueError(f"scale must be 'absolute' or 'relative', not {scale!r}.")


def relative_norms(
    layers: Sequence[int], model: Any, norms: Mapping[int, float] | None, why: str
) -> dict[int, float]:
    """m_l per layer, from ``norms`` or measured on ``model`` (``xsteer.steer.residual_norms``)."""
    if norms is None:
        if model is None:
            raise ValueError(
                f"scale='relative' {why} the model's median residual norm m_l; pass model= (the model the "
                "vectors steer) or norms= (xsteer.steer.residual_norms(model))."
            )
        norms = residual_norms(model)
    missing = [l for l in layers if l not in norms]
    if missing:
        raise ValueError(f"norms has no value for layers {missing}; pass residual_norms(model) of the steered model.")
    return {l: float(norms[l]) for l in layers}


def scaled(
    vectors: SteeringVectors,
    lam: float,
    *,
    scale: str = "absolute",
    model: Any = None,
    norms: Mapping[int, float] | None = None,
    layers: Sequence[int] | None = None,
    check_model: bool = True,
) -> dict[int, torch.Tensor]:
    """Raw vectors λ·g·c_l·v_l per layer (g the vectors' gain; c_l = 1 for ``"absolute"``, m_l for
    ``"relative"``): what xsteer's ``steer(model, vectors, lam, scale=scale)`` adds to
    ``blocks.{l}.hook_resid_post``."""
    lam, factors = scale_factors(vectors, lam, scale=scale, model=model, norms=norms, layers=layers,
                                 why="folds into each exported vector", check_model=check_model)
    return {l: vectors[l] * (lam * vectors.gain * c) for l, c in factors.items()}


def scale_factors(
    vectors: SteeringVectors,
    lam: float,
    *,
    scale: str,
    model: Any,
    norms: Mapping[int, float] | None,
    layers: Sequence[int] | None,
    why: str,
    check_model: bool = True,
) -> tuple[float, dict[int, float]]:
    """(λ checked finite, c_l per exported layer): c_l = 1 for ``"absolute"``, m_l for ``"relative"``;
    the vectors checked against ``model`` (their identity too, unless ``check_model=False``) and for
    every requested layer."""
    if not isinstance(vectors, SteeringVectors):
        raise TypeError(f"Exports take xsteer SteeringVectors, not {type(vectors).__name__}.")
    lam = as_real("λ", lam, "pass the strength to fold in, e.g. lam=0.5.")
    check_scale(scale)
    if model is not None:
        vectors.check_compatible(model, check_model=check_model)
    layers = list(vectors.layers if layers is None else as_int_list("layers", layers))
    missing = [l for l in layers if l not in vectors.directions]
    if missing:
        raise ValueError(f"No steering vector for layers {missing}; available: {vectors.layers}.")
    if scale == "relative":
        return lam, relative_norms(layers, model, norms, why)
    return lam, {l: 1.0 for l in layers}


def model_shape(model: Any, d_model: int | None, n_layers: int | None) -> tuple[int | None, int | None]:
    """(width, depth) of a bridge / HF model, else the explicit values (checked to be counts)."""
    if model is None:
        return (None if d_model is None else as_count("d_model", d_model),
                None if n_layers is None else as_count("n_layers", n_layers))
    cfg = getattr(model, "cfg", None) or getattr(model, "config", None)
    d = getattr(cfg, "d_model", None) or getattr(cfg, "hidden_size", None)
    n = getattr(cfg, "n_layers", None) or getattr(cfg, "num_hidden_layers", None)
    if d is None or n is None:
        raise TypeError(f"model= must be a loaded bridge or Hugging Face model, not {type(model).__name__}.")
    return int(d), int(n)


def model_label(model: Any) -> str | None:
    cfg = getattr(model, "cfg", None) or getattr(model, "config", None)
    return getattr(cfg, "model_name", None) or getattr(cfg, "_name_or_path", None)


def unscaled(
    raw: Mapping[int, torch.Tensor],
    path: Path,
    what: str,
    *,
    model: Any = None,
    model_name: str | None = None,
    d_model: int | None = None,
    n_layers: int | None = None,
    scale: str = "absolute",
    norms: Mapping[int, float] | None = None,
    method: str,
    provenance: dict | None = None,
    negative_layers: bool = False,
) -> tuple[SteeringVectors, dict[int, float]]:
    """Unit vectors and per-layer strengths from raw vectors read out of ``path`` (a ``what``).

    Steering with ``steer(model, vectors, 1.0, schedule=PerLayer(strengths))`` adds exactly the raw
    vectors (absolute scale); with ``scale="relative"`` the strengths are divided by m_l so that
    ``steer(..., scale="relative", schedule=PerLayer(strengths))`` does. ``negative_layers``: the
    format allows Python-style negative layer numbers (counted from the last block).
    """
    check_scale(scale)
    if not raw:
        raise ValueError(f"{path} holds no vectors; it is an empty {what}.")
    vecs = {}
    for layer, vec in raw.items():
        vec = torch.as_tensor(vec).detach().to("cpu", torch.float32)
        if vec.ndim == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if vec.ndim != 1:
            raise ValueError(
                f"{path}: the vector at layer {layer} has shape {tuple(vec.shape)}; expected (d_model,)."
            )
        vecs[int(layer)] = vec
    widths = sorted({v.shape[0] for v in vecs.values()})
    if len(widths) > 1:
        raise ValueError(f"{path}: vectors of different widths {widths}; one {what} must steer one model.")
    width = widths[0]
    want_d, depth = model_shape(model, d_model, n_layers)
    target = repr(model_label(model)) if model is not None else "the model"
    if want_d is not None and want_d != width:
        raise ValueError(
            f"Width mismatch: {path} is a {width}-wide {what} but {target} is {want_d}-wide. Fix: export the "
            "vectors of this model (transfer them first with xsteer.transfer.Transfer), or pass the model it was made for."
        )
    if depth is None:
        raise ValueError(f"{path} does not say how deep its model is; pass model= (the steered model) or n_layers=.")
    if negative_layers:
        vecs = {(l + depth if l < 0 else l): v for l, v in vecs.items()}
    outside = sorted(l for l in vecs if not 0 <= l < depth)
    if outside:
        raise ValueError(
            f"Layer mismatch: {path} steers layers {outside}, but {target} has {depth} blocks (0..{depth - 1}). "
            "Fix: use the control vector made for this model, or drop those layers."
        )
    directions, strengths = {}, {}
    for layer, vec in sorted(vecs.items()):
        norm = float(vec.norm())
        if not math.isfinite(norm):
            raise ValueError(f"{path}: the vector at layer {layer} has NaN or infinite entries.")
        if norm == 0.0:
            continue  # adds nothing: no direction to keep
        if abs(norm - 1.0) <= _UNIT_TOL:  # already unit: kept bit for bit
            directions[layer], strengths[layer] = vec, 1.0
        else:
            directions[layer], strengths[layer] = vec / norm, norm
    if not directions:
        raise ValueError(f"{path}: every vector is zero; the {what} steers nothing.")
    if scale == "relative":
        factors = relative_norms(list(strengths), model, norms, "divides each strength by")
        strengths = {l: s / factors[l] for l, s in strengths.items()}
    vectors = SteeringVectors(
        directions=directions,
        model_name=model_name or model_label(model) or path.stem,
        d_model=width,
        n_layers=int(depth),
        method=method,
        provenance=provenance or {"source": f"{what} {path.name}"},
        fingerprint=None if model is None else model_fingerprint(model),
    )
    return vectors, strengths
