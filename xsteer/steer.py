"""Steering hooks at ``blocks.{l}.hook_resid_post``: by default add λ·v_l at every position; an
operator (``xsteer.operators``), a position mode (``xsteer.positions``) and a per-layer strength
schedule (``xsteer.schedules``) change how, where and how strongly.

Steering takes any vectors object with ``.layers``, ``[layer]`` (a (d_model,) tensor),
``.check_compatible(model, check_model=...)`` and optionally ``.gain`` (``xsteer.vectors.SteeringVectors``
is one); this room does not import the vectors room, which sits above it.
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from xsteer.activations import encode, resid_states, steering_allowed, unsteered
from xsteer.checks import FLOAT32_MAX, as_int_list, as_real, as_texts
from xsteer.models import Fingerprint, check_bridge, model_fingerprint, n_layers, resid_post_hook
from xsteer.operators import Add, Operator, operator_from_spec
from xsteer.positions import Positions, check_positions, position_mask
from xsteer.schedules import Schedule, schedule_from_spec

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

_LAM_FIX = "pass a finite number such as lam=0.5 (or one per batch row as a 1-D tensor)."

#: Per model: the norms of the reference texts and the model state they were measured on.
_NORMS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, dict[int, float]]]" = weakref.WeakKeyDictionary()


def _state(model) -> tuple[Fingerprint | None, str, str]:
    """What the cached norms of ``model`` depend on: its weights' fingerprint, device and dtype."""
    param = next(model.original_model.parameters(), None) if hasattr(model, "original_model") else None
    return model_fingerprint(model), str(getattr(param, "device", "")), str(getattr(param, "dtype", ""))


@torch.inference_mode()
def residual_norms(model, texts: Sequence[str] | None = None) -> dict[int, float]:
    """Median ‖h_l‖ over all real tokens of reference texts, per layer, always of the unsteered
    model (steering hooks stand aside while it measures); cached per model and its weights."""
    check_bridge(model, "residual_norms")
    if texts is not None:
        texts = as_texts("texts", texts)
        if not texts:
            raise ValueError("residual_norms got texts=[]; pass reference texts, or None for REFERENCE_TEXTS.")
    reference = texts is None or texts == list(REFERENCE_TEXTS)
    state = _state(model) if reference else None
    cached = _NORMS.get(model) if reference else None
    if cached is not None and cached[0] == state:
        return dict(cached[1])
    enc = encode(model, texts or list(REFERENCE_TEXTS))
    keep = enc["attention_mask"].bool().cpu()
    with unsteered():
        states = resid_states(model, enc, range(n_layers(model)))
    norms = {l: float(x.norm(dim=-1)[keep].median()) for l, x in states.items()}
    if reference:
        _NORMS[model] = (state, norms)
    return dict(norms)


def _check_vectors(vectors, model, check_model: bool, who: str) -> None:
    if not all(hasattr(vectors, a) for a in ("layers", "__getitem__", "check_compatible")):
        raise TypeError(
            f"{who} needs steering vectors (xsteer.vectors.SteeringVectors, or an object with .layers, "
            f"[layer] and .check_compatible(model)), not {type(vectors).__name__}. Fix: build them with "
            "SteeringVectors.from_raw({layer: tensor, ...}, model_name=..., d_model=..., n_layers=..., method=...)."
        )
    vectors.check_compatible(model, check_model=check_model)


def _steered_layers(vectors, layers) -> list[int]:
    """The layers to steer: every layer of ``vectors``, or ``layers`` (each once, each with a vector)."""
    if layers is None:
        return list(vectors.layers)
    layers = as_int_list("layers", layers)
    if not layers:
        raise ValueError("layers=[] steers nothing. Fix: name layers with a vector, or None for all of them.")
    missing = [l for l in layers if l not in vectors.layers]
    if missing:
        raise ValueError(f"No steering vector for layers {missing}; available: {list(vectors.layers)}.")
    return layers


def _lam(lam) -> torch.Tensor:
    """λ as a float32 tensor: 0-d, or 1-D with one value per batch row; finite."""
    if isinstance(lam, (torch.Tensor, np.ndarray, list, tuple)) and np.ndim(lam) > 0:
        try:
            t = torch.as_tensor(lam)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"λ must be a number or a 1-D tensor of numbers, not {lam!r}. Fix: {_LAM_FIX}") from None
        if t.dtype == torch.bool or t.is_complex():
            raise TypeError(f"λ must hold real numbers, not {t.dtype}. Fix: {_LAM_FIX}")
        if t.ndim > 1:
            raise ValueError(f"λ must be a float or a 1-D tensor with one value per batch row, not shape {tuple(t.shape)}.")
        t = t.detach().double()
        if not torch.isfinite(t).all() or t.abs().max() > FLOAT32_MAX:
            raise ValueError(f"λ holds NaN, infinite or float32-overflowing values: {t.tolist()}. Fix: {_LAM_FIX}")
        return t.float()
    return torch.tensor(as_real("λ", lam, _LAM_FIX), dtype=torch.float32)


def _operator(operator) -> Operator:
    if operator is None:
        return Add()
    if isinstance(operator, str):
        return operator_from_spec(operator)
    if not isinstance(operator, Operator):
        raise TypeError(f"operator must be an xsteer.operators.Operator (e.g. Add()) or a spec like 'project', not {operator!r}.")
    return operator


def _schedule(schedule) -> Schedule | None:
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, (str, dict)):
        return schedule_from_spec(schedule)
    raise TypeError(
        f"schedule must be an xsteer.schedules.Schedule (e.g. Band(4, 6)), a spec like 'band:4:6' or None, "
        f"not {type(schedule).__name__}."
    )


def _check_scale(scale) -> None:
    if scale not in ("absolute", "relative"):
        raise ValueError(f"scale must be 'absolute' or 'relative', not {scale!r}.")


def _coefficients(model, layers: Sequence[int], scale: Scale) -> dict[int, float]:
    """Per-layer multiplier of λ: 1 (absolute) or the median residual norm (relative)."""
    if scale == "absolute":
        return {l: 1.0 for l in layers}
    norms = residual_norms(model)
    return {l: norms[l] for l in layers}


def _layer_factors(model, layers: Sequence[int], schedule: Schedule | None) -> dict[int, float]:
    """The schedule's multiplier of λ per layer (1 without a schedule)."""
    if schedule is None:
        return {l: 1.0 for l in layers}
    return schedule.multipliers(model, layers)


def _gain(vectors) -> float:
    return float(getattr(vectors, "gain", 1.0))


def steering_hooks(
    model,
    vectors: Any,
    lam: float | torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    scale: Scale = "absolute",
    operator: Operator | str | None = None,
    positions: Positions = "all",
    schedule: Schedule | str | None = None,
    check_model: bool = True,
) -> list[tuple[str, callable]]:
    """Forward hooks that apply ``operator`` (default ``Add``: add λ·g·s_l·c_l·v_l) at each layer:
    g the vectors' gain, c_l from ``scale``, s_l from ``schedule`` (a ``xsteer.schedules.Schedule``
    or its spec; layers it gives 0 get no hook, and a schedule that gives 0 at every layer warns),
    only at the ``positions`` chosen; λ a float or one value per batch row. ``check_model=False``
    lets vectors of another model of the same shape steer this one (see ``check_compatible``).
    Every check runs here, before a forward pass."""
    check_bridge(model, "steering_hooks")
    _check_vectors(vectors, model, check_model, "steering_hooks")
    layers = _steered_layers(vectors, layers)
    _check_scale(scale)
    check_positions(positions)
    operator = _operator(operator)
    schedule = _schedule(schedule)
    lam_t = _lam(lam)
    coef = _coefficients(model, layers, scale)
    factor = _layer_factors(model, layers, schedule)
    gain = _gain(vectors)
    steered = [l for l in layers if factor[l] != 0.0]
    if not steered:
        warnings.warn(
            f"The schedule {schedule!r} gives 0 at every layer with a vector ({layers}); nothing is steered. "
            "Fix: a schedule that covers those layers (e.g. Band(start, width) over them).",
            UserWarning, stacklevel=3,
        )
    plain_add = type(operator) is Add and positions == "all"

    moved: dict[tuple, torch.Tensor] = {}  # per (what, device, dtype): no host copy per step on a GPU

    def on(t: torch.Tensor, key, x: torch.Tensor) -> torch.Tensor:
        k = (key, x.device, x.dtype)
        if k not in moved:
            moved[k] = t.to(device=x.device, dtype=x.dtype)
        return moved[k]

    def make(layer: int):
        base = vectors[layer] * (coef[layer] * gain)
        s = factor[layer]
        row_lam = lam_t * s

        def hook(x: torch.Tensor, hook) -> torch.Tensor:
            if not steering_allowed():  # a measurement of the model itself is running
                return x
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

    return [(resid_post_hook(l), make(l)) for l in steered]


@contextlib.contextmanager
def steer(
    model,
    vectors: Any,
    lam: float | torch.Tensor,
    *,
    layers: Sequence[int] | None = None,
    scale: Scale = "absolute",
    operator: Operator | str | None = None,
    positions: Positions = "all",
    schedule: Schedule | str | None = None,
    check_model: bool = True,
) -> Iterator[None]:
    """Context manager: every forward pass inside applies ``operator`` (default: add λ·g·v_l, g
    the vectors' gain) at each chosen layer and position.

    ``scale="absolute"`` adds λ·v (the paper); ``"relative"`` adds λ·m_l·v with m_l the model's
    median residual norm at layer l, so λ is a fraction of the stream; ``schedule`` multiplies λ
    per layer. λ may be a float or a 1-D tensor with one value per batch row. Works under
    KV-cached generation (each step steers its new position). ``positions`` other than "all"
    need the pass's layout (``xsteer.positions.layout``); the Evaluator sets it. Vectors of another
    model of the same shape are refused unless ``check_model=False``. Every argument is checked on
    entry, before any forward pass; the hooks are removed on exit, however the block ends.
    """
    hooks = steering_hooks(
        model, vectors, lam, layers=layers, scale=scale, operator=operator, positions=positions,
        schedule=schedule, check_model=check_model,
    )
    lam_t = _lam(lam)
    if lam_t.ndim == 0 and float(lam_t) == 0.0:
        hooks = []  # λ = 0 leaves the model untouched, bit for bit
    with model.hooks(fwd_hooks=hooks):
        yield


def relative_size(
    model,
    vectors: Any,
    lam: float,
    *,
    layers: Sequence[int] | None = None,
    scale: Scale = "absolute",
    schedule: Schedule | str | None = None,
    check_model: bool = True,
) -> dict[int, float]:
    """‖λ·g·s_l·c_l·v_l‖ / median‖h_l‖ per layer: how far adding the vector moves the residual
    stream (g the vectors' gain, s_l from ``schedule``, 1 without one); the vectors are checked
    against ``model`` as ``steer`` checks them."""
    check_bridge(model, "relative_size")
    _check_vectors(vectors, model, check_model, "relative_size")
    layers = _steered_layers(vectors, layers)
    _check_scale(scale)
    lam = as_real("λ", lam, "pass one finite strength, e.g. lam=0.5.")
    schedule = _schedule(schedule)
    norms = residual_norms(model)
    coef = _coefficients(model, layers, scale)
    factor = _layer_factors(model, layers, schedule)
    gain = abs(_gain(vectors))
    return {l: abs(lam * factor[l]) * gain * coef[l] * float(vectors[l].norm()) / norms[l] for l in layers}
