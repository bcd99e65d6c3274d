"""Per-layer strength schedules: each steered layer's multiplier of λ (a row's strength × the
schedule), and a budgeted search for a band schedule on a validation objective."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from numbers import Integral, Real
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from xsteer.checks import as_count, as_int_list, as_real

__all__ = [
    "Band", "Constant", "PerLayer", "Ramp", "Schedule", "SearchResult",
    "check_depth", "schedule_from_dict", "schedule_from_spec", "search_band",
]

_FIX = "schedule multipliers are finite numbers, e.g. Band(4, 6, strength=1.0)."


def _number(schedule: str, name: str, value: Any) -> float:
    return as_real(f"The {schedule} schedule's {name}", value, _FIX)




def _depth(model) -> int:
    return int(model.cfg.n_layers)


def _check(model, wanted: Sequence[int], what: str) -> None:
    depth = _depth(model)
    outside = sorted(l for l in wanted if not 0 <= l < depth)
    if outside:
        raise ValueError(
            f"The {what} schedule names layers {outside}, but the model has {depth} blocks (0..{depth - 1}); "
            "fit the schedule to this model's depth."
        )


class Schedule:
    """Base: ``multipliers(model, layers)`` → {layer: factor of λ}; JSON round trip."""

    name: ClassVar[str]

    def multipliers(self, model, layers: Sequence[int]) -> dict[int, float]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    def report(self, model, layers: Sequence[int]) -> dict[str, Any]:
        """The schedule and its multiplier at every steered layer (for a run folder's JSON)."""
        return {**self.to_dict(), "per_layer": {str(l): m for l, m in self.multipliers(model, layers).items()}}


@dataclass(frozen=True)
class Constant(Schedule):
    """The same multiplier at every layer."""

    value: float = 1.0
    name: ClassVar[str] = "constant"

    def __post_init__(self):
        object.__setattr__(self, "value", _number(self.name, "value", self.value))

    def multipliers(self, model, layers):
        _check(model, layers, self.name)
        return {l: float(self.value) for l in layers}


@dataclass(frozen=True)
class Band(Schedule):
    """``strength`` on blocks ``start … start + width − 1``, ``outside`` (default 0: unsteered)
    elsewhere."""

    start: int
    width: int
    strength: float = 1.0
    outside: float = 0.0
    name: ClassVar[str] = "band"

    def __post_init__(self):
        for name in ("start", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f"A band's start and width are block counts (integers), not {name}={value!r}.")
        if self.width < 1 or self.start < 0:
            raise ValueError(f"A band needs start >= 0 and width >= 1, not start {self.start}, width {self.width}.")
        object.__setattr__(self, "start", int(self.start))
        object.__setattr__(self, "width", int(self.width))
        for name in ("strength", "outside"):
            object.__setattr__(self, name, _number(self.name, name, getattr(self, name)))

    def multipliers(self, model, layers):
        if self.width < 1:
            raise ValueError(f"A band needs width >= 1, not {self.width}.")
        _check(model, [*layers, self.start, self.start + self.width - 1], self.name)
        inside = range(self.start, self.start + self.width)
        return {l: float(self.strength if l in inside else self.outside) for l in layers}


@dataclass(frozen=True)
class Ramp(Schedule):
    """Linear in depth: ``first`` at block 0, ``last`` at the model's last block."""

    first: float = 0.0
    last: float = 1.0
    name: ClassVar[str] = "ramp"

    def __post_init__(self):
        for name in ("first", "last"):
            object.__setattr__(self, name, _number(self.name, name, getattr(self, name)))

    def multipliers(self, model, layers):
        _check(model, layers, self.name)
        top = max(1, _depth(model) - 1)
        return {l: float(self.first + (self.last - self.first) * l / top) for l in layers}


@dataclass(frozen=True)
class PerLayer(Schedule):
    """Explicit multipliers; steered layers it does not name get ``default``."""

    values: dict[int, float] = field(default_factory=dict)
    default: float = 0.0
    name: ClassVar[str] = "per_layer"

    def __post_init__(self):
        if not isinstance(self.values, Mapping):
            raise TypeError(f"PerLayer needs a dict layer -> multiplier, not {type(self.values).__name__}. Fix: PerLayer({{4: 1.0, 5: 0.5}}).")
        keys = [int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k for k in self.values]
        layers = as_int_list("PerLayer's layers", keys)
        negative = sorted(l for l in layers if l < 0)
        if negative:
            raise ValueError(f"The per_layer schedule names negative layers {negative}; layers are 0-based block indices.")
        values = {l: _number(self.name, f"multiplier at layer {l}", v) for l, v in zip(layers, self.values.values())}
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "default", _number(self.name, "default", self.default))

    def multipliers(self, model, layers):
        _check(model, [*layers, *self.values], self.name)
        return {l: self.values.get(l, float(self.default)) for l in layers}

    def to_dict(self):
        return {"name": self.name, "values": {str(k): v for k, v in self.values.items()}, "default": self.default}


_SCHEDULES = {cls.name: cls for cls in (Constant, Band, Ramp, PerLayer)}


def schedule_from_dict(spec: dict[str, Any]) -> Schedule:
    """A schedule from ``to_dict()`` (or ``report()``) output."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"schedule_from_dict needs a dict such as {{'name': 'band', 'start': 4, 'width': 6}}, not {spec!r}.")
    spec = dict(spec)
    spec.pop("per_layer", None)
    name = spec.pop("name", None)
    if name == "relative_norm":
        raise ValueError(
            "The relative_norm schedule is gone: it did what scale='relative' does. Fix: steer with "
            "scale='relative' and a Constant(value) schedule (or none)."
        )
    if name not in _SCHEDULES:
        raise ValueError(f"Unknown schedule {name!r}; choose one of {sorted(_SCHEDULES)}.")
    return _SCHEDULES[name](**spec)


_SPEC_FIX = (
    "Fix: write band:START:WIDTH[:STRENGTH] (e.g. band:4:6), ramp:FIRST:LAST (e.g. ramp:0:1), "
    "constant:VALUE, or the path of a JSON file holding a schedule's to_dict()."
)


def schedule_from_spec(spec: str | dict[str, Any]) -> Schedule:
    """A schedule from a short spec ("band:START:WIDTH[:STRENGTH]", "ramp:FIRST:LAST",
    "constant:VALUE"), a JSON file of ``to_dict()`` output (or a run folder's schedule.json), a
    ``to_dict()`` dict or a ``Schedule``; checked as far as it can be without a model (widths, negative layers,
    finite numbers)."""
    if isinstance(spec, Schedule):
        data = spec.to_dict()
    elif isinstance(spec, dict):
        data = dict(spec)
    elif isinstance(spec, str) and (spec.endswith(".json") or Path(spec).is_file()):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Schedule file {path} does not exist. {_SPEC_FIX}")
        try:
            data = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"Schedule file {path} is not valid JSON ({err}). {_SPEC_FIX}") from None
        if isinstance(data, dict) and isinstance(data.get("schedule"), dict):  # a run's schedule.json
            data = data["schedule"]
        if not isinstance(data, dict):
            raise ValueError(f"Schedule file {path} does not hold a JSON object. {_SPEC_FIX}")
    elif isinstance(spec, str):
        name, *args = spec.strip().split(":")
        arity = {"band": (2, 3), "ramp": (2, 2), "constant": (1, 1)}
        if name not in arity or not arity[name][0] <= len(args) <= arity[name][1]:
            raise ValueError(f"Bad schedule spec {spec!r}. {_SPEC_FIX}")
        try:
            if name == "band":
                data = {"name": "band", "start": int(args[0]), "width": int(args[1])}
                if len(args) == 3:
                    data["strength"] = float(args[2])
            elif name == "ramp":
                data = {"name": "ramp", "first": float(args[0]), "last": float(args[1])}
            else:
                data = {"name": "constant", "value": float(args[0])}
        except ValueError:
            raise ValueError(f"Bad schedule spec {spec!r}: its fields must be numbers. {_SPEC_FIX}") from None
    else:
        raise ValueError(f"A schedule must be a spec string or a to_dict() dict, not {spec!r}. {_SPEC_FIX}")
    try:
        schedule = schedule_from_dict(data)
    except TypeError as err:
        raise ValueError(f"Bad schedule {data!r} ({err}). {_SPEC_FIX}") from None
    return schedule


class _Depth:
    """Stands in for a model whose depth is known without loading it."""

    def __init__(self, n_layers: int):
        self.cfg = type("cfg", (), {"n_layers": n_layers})()


def check_depth(schedule: Schedule, n_layers: int) -> None:
    """Raise (with the message ``multipliers`` gives) if ``schedule`` names a block a model of
    ``n_layers`` blocks lacks; needs only the depth, not the model."""
    if isinstance(schedule, (Band, PerLayer)):
        schedule.multipliers(_Depth(n_layers), [])


@dataclass
class SearchResult:
    """The best band found, its objective, and every band tried in order with its score."""

    best: Band
    score: float
    history: list[tuple[Band, float]]


def search_band(
    objective: Callable[[Band], float],
    n_layers: int,
    *,
    strengths: Sequence[float],
    budget: int = 30,
    widths: Sequence[int] | None = None,
) -> SearchResult:
    """Coordinate ascent over a band's start, width and strength, maximising ``objective`` (a
    validation score; the caller keeps the test split out of it) with at most ``budget`` distinct
    evaluations. Starts from the middle third of the model at the median strength; each round
    tries every value of one coordinate with the others fixed, until a full round improves
    nothing or the budget is spent."""
    if not callable(objective):
        raise TypeError(f"search_band needs an objective function band -> score, not {type(objective).__name__}.")
    n_layers = as_count("n_layers", n_layers)
    budget = as_count("budget", budget)
    if isinstance(strengths, (str, bytes)) or not isinstance(strengths, Sequence) or not strengths:
        raise ValueError(f"search_band needs a non-empty list of strengths (λ values), not {strengths!r}.")
    strengths = sorted({as_real("A strength", s, "pass finite λ values, e.g. strengths=[0.1, 0.5, 1].") for s in strengths})
    widths = sorted(set(range(1, n_layers + 1) if widths is None else as_int_list("widths", widths, distinct=False)))
    if not widths or not all(1 <= w <= n_layers for w in widths):
        raise ValueError(f"widths must lie in 1..{n_layers} (the model's blocks), not {widths}.")
    scores: dict[Band, float] = {}
    history: list[tuple[Band, float]] = []

    def score(band: Band) -> float | None:
        if band not in scores:
            if len(scores) >= budget:
                return None
            value = objective(band)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise ValueError(
                    f"The objective returned {value!r} for {band}; it must return a finite number (e.g. a "
                    "validation accuracy). Fix the objective."
                )
            scores[band] = float(value)
            history.append((band, scores[band]))
        return scores[band]

    width = min(widths, key=lambda w: abs(w - max(1, n_layers // 3)))
    best = Band(start=(n_layers - width) // 2, width=width, strength=strengths[len(strengths) // 2])
    best_score = score(best)
    improved = True
    while improved and len(scores) < budget:
        improved = False
        for coord in ("strength", "start", "width"):
            if coord == "strength":
                cands = [Band(best.start, best.width, s) for s in strengths]
            elif coord == "start":
                cands = [Band(s, best.width, best.strength) for s in range(0, n_layers - best.width + 1)]
            else:
                cands = [Band(best.start, w, best.strength) for w in widths if best.start + w <= n_layers]
            for cand in cands:
                value = score(cand)
                if value is None:
                    break
                if value > best_score:
                    best, best_score, improved = cand, value, True
    return SearchResult(best, best_score, history)
