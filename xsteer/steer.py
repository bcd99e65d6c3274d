"""Steering hooks at ``blocks.{l}.hook_resid_post``: by default add λ·v_l at every position; an
operator (``xsteer.operators``), a position mode (``xsteer.positions``) and a per-layer strength
schedule (``xsteer.schedules``) change how, where and how strongly."""

from __future__ import annotations

import contextlib
import weakref
from typing import Iterator, Literal, Sequence

import torch

from xsteer.activations import encode, resid_states
from xsteer.models import n_layers, resid_post_hook
from xsteer.operators import Add, Operator
from xsteer.positions import Positions, check_positions, position_mask
from xsteer.vectors import SteeringVectors

__all__ = ["REFERENCE_TEXTS", "relative_size", "residual_norms", "steer", "steering_hooks"]

Scale = Literal["absolute", "relative"]

#: Neutral texts on which the median residual norm per layer is measured.
REFERENCE_TEXTS = (
    "The museum opens at nine in the morning and closes at five in the evening.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "She bought three apples and two pears at the market on Saturday.",
    "Question: What is 12 plus 30? Answer: 42",
    "The river flows north through the valley before it reaches the sea.",
    "def add(a, b):\n    return a + b",
    "In 1969, astronauts landed on the Moon for the first time.",
    "A triangle has three sides, and its angles add up to 180 degrees.",
)

_NORMS: "weakref.WeakKeyDictionary[torch.nn.Module, dict[int, float]]" = weakref.WeakKeyDictionary()


@torch.inference_mode()
def residual_norms(model, texts: Sequence[str] | None = None) -> dict[int, float]:
    """Median ‖h_l‖ over all real tokens of reference texts, per layer; cached per model."""
    if texts is None and model in _NORMS:
        return _NORMS[model]
    texts = list(texts or REFERENCE_TEXTS)
    enc = encode(model, texts)
    keep = enc["attention_mask"].bool().cpu()
    states = resid_states(model, enc, range(n_layers(model)))
    norms = {l: float(x.norm(dim=-1)[keep].median()) for l, x in states.items()}
    if texts == list(REFERENCE_TEXTS):
        _NORMS[model] = norms
    return norms


def _coefficients(
    model, vectors: SteeringVectors, layers: Sequence[int], scale: Scale
) -> dict[int, float]:
    """Per-layer multiplier of λ: 1 (absolute) or the median residual norm (relative)."""
    if scale == "absolute":
        return {l: 1.0 for l in layers}
    if scale == "relative":
        norms = residual_norms(model)
        return {l: norms[l] for l in layers}
    raise ValueError(f"scale must be 'absolute' or 'relative', not {scale!r}.")


def _layer_factors(model, layers: Sequence[int], schedule) -> dict[int, float]:
    """The schedule's multiplier of λ per layer (1 without a schedule)."""
    if schedule is None:
        return {l: 1.0 for l in layers}
    return schedule.multipliers(model, layers)


def steering_hooks(
    model,
    vectors: SteeringVectors,
    lam: float | torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    scale: Scale = "absolute",
    operator: Operator | None = None,
    positions: Positions = "all",
    schedule=None,
) -> list[tuple[str, callable]]:
    """Forward hooks that apply ``operator`` (default ``Add``: add λ·s_l·c_l·v_l) at each layer:
    c_l from ``scale``, s_l from ``schedule`` (a ``xsteer.schedules.Schedule``; layers it gives 0
    get no hook), only at the ``positions`` chosen; λ a float or one value per batch row."""
    vectors.check_compatible(model)
    layers = list(vectors.layers if layers is None else layers)
    missing = [l for l in layers if l not in vectors.directions]
    if missing:
        raise ValueError(f"No steering vector for layers {missing}; available: {vectors.layers}.")
    check_positions(positions)
    operator = Add() if operator is None else operator
    if not isinstance(operator, Operator):
        raise TypeError(f"operator must be an xsteer.operators.Operator (e.g. Add()), not {operator!r}.")
    coef = _coefficients(model, vectors, layers, scale)
    factor = _layer_factors(model, layers, schedule)
    layers = [l for l in layers if factor[l] != 0.0]
    lam_t = torch.as_tensor(lam, dtype=torch.float32)
    if lam_t.ndim > 1:
        raise ValueError("λ must be a float or a 1-D tensor with one value per batch row.")
    plain_add = type(operator) is Add and positions == "all"

    moved: dict[tuple, torch.Tensor] = {}  # per (what, device, dtype): no host copy per step on a GPU

    def on(t: torch.Tensor, key, x: torch.Tensor) -> torch.Tensor:
        k = (key, x.device, x.dtype)
        if k not in moved:
            moved[k] = t.to(device=x.device, dtype=x.dtype)
        return moved[k]

    def make(layer: int):
        base = vectors[layer] * coef[layer]
        s = factor[layer]
        row_lam = lam_t * s

        def hook(x: torch.Tensor, hook) -> torch.Tensor:
            v = on(base, layer, x)
            if lam_t.ndim == 0:
                lam_x = lam_t.item() * s
            else:
                if lam_t.shape[0] != x.shape[0]:
                    raise ValueError(
                        f"Per-row λ has {lam_t.shape[0]} values but the batch has {x.shape[0]} rows; "
                        "pass one λ per row."
                    )
                lam_x = on(row_lam, ("lam", layer), x)[:, None, None]
            if plain_add:
                return x + lam_x * v
            mask = position_mask(positions, x)
            out = operator(x, v, lam_x)
            return out if mask is None else torch.where(mask[..., None], out, x)

        return hook

    return [(resid_post_hook(l), make(l)) for l in layers]


@contextlib.contextmanager
def steer(
    model,
    vectors: SteeringVectors,
    lam: float | torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    scale: Scale = "absolute",
    operator: Operator | None = None,
    positions: Positions = "all",
    schedule=None,
) -> Iterator[None]:
    """Context manager: every forward pass inside applies ``operator`` (default: add λ·v_l) at each
    chosen layer and position.

    ``scale="absolute"`` adds λ·v (the paper); ``"relative"`` adds λ·m_l·v with m_l the model's
    median residual norm at layer l, so λ is a fraction of the stream; ``schedule`` multiplies λ
    per layer. λ may be a float or a 1-D tensor with one value per batch row. Works under
    KV-cached generation (each step steers its new position). ``positions`` other than "all"
    need the pass's layout (``xsteer.positions.layout``); the Evaluator sets it.
    """
    hooks = steering_hooks(
        model, vectors, lam, layers=layers, scale=scale, operator=operator, positions=positions, schedule=schedule
    )
    if torch.as_tensor(lam).ndim == 0 and float(lam) == 0.0:
        hooks = []  # λ = 0 leaves the model untouched, bit for bit
    with model.hooks(fwd_hooks=hooks):
        yield


def relative_size(
    model,
    vectors: SteeringVectors,
    lam: float,
    *,
    layers: Sequence[int] | None = None,
    scale: Scale = "absolute",
    schedule=None,
) -> dict[int, float]:
    """‖λ·s_l·c_l·v_l‖ / median‖h_l‖ per layer: how far adding the vector moves the residual
    stream (s_l from ``schedule``, 1 without one)."""
    layers = list(vectors.layers if layers is None else layers)
    norms = residual_norms(model)
    coef = _coefficients(model, vectors, layers, scale)
    factor = _layer_factors(model, layers, schedule)
    return {l: abs(lam * factor[l]) * coef[l] * float(vectors[l].norm()) / norms[l] for l in layers}
