"""How a steering vector enters the residual stream: small operator objects the steering hooks call.

Every operator is called as ``op(h, v, lam)`` with ``h`` the residual stream (batch, seq, d),
``v`` the layer's vector as ``Add`` would add it at λ = 1 (the unit vector times the scale's and
the schedule's factor) and ``lam`` a float or a (batch, 1, 1) tensor (one λ per row). λ = 0 leaves
``h`` unchanged bit for bit, for every operator, so a λ = 0 row of a batch is the unsteered model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import torch

from xsteer.checks import as_real

__all__ = ["Add", "Clamp", "NormPreservingAdd", "Operator", "Project", "operator_from_dict", "operator_from_spec"]

Lam = float | torch.Tensor


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)


class Operator:
    """Base of the operators: a name, JSON round trip, and ``__call__(h, v, lam)``."""

    name: ClassVar[str]

    def __call__(self, h: torch.Tensor, v: torch.Tensor, lam: Lam) -> torch.Tensor:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class Add(Operator):
    """h + λ·v (the paper's operator, and the default)."""

    name: ClassVar[str] = "add"

    def __call__(self, h, v, lam):
        return h + lam * v


@dataclass(frozen=True)
class Project(Operator):
    """Directional ablation: h − λ·(h·v̂)v̂ (λ = 1 removes the component along v̂; RepE's
    "project"). The vector's length plays no part, only its direction."""

    name: ClassVar[str] = "project"

    def __call__(self, h, v, lam):
        u = _unit(v)
        return h - lam * (h @ u)[..., None] * u


@dataclass(frozen=True)
class Clamp(Operator):
    """Set the projection on v̂ to ``value``·‖v‖: h + λ·(value·‖v‖ − h·v̂)v̂ (λ = 1 clamps exactly,
    lm-eval's ``clamp``). With ``scale="relative"`` ‖v‖ is the layer's median norm, so ``value``
    is a fraction of the stream."""

    value: float | None = None
    name: ClassVar[str] = "clamp"

    def __post_init__(self):
        if self.value is None:
            raise ValueError("Clamp needs the value to set the projection to: pass Clamp(value=...).")
        object.__setattr__(
            self, "value", as_real("Clamp's value", self.value, "pass a finite number, e.g. Clamp(0.5).")
        )

    def __call__(self, h, v, lam):
        u = _unit(v)
        target = self.value * v.norm()
        return h + lam * (target - h @ u)[..., None] * u


@dataclass(frozen=True)
class NormPreservingAdd(Operator):
    """h + λ·v, rescaled at each position to the unsteered norm ‖h‖ (Fractional Reasoning)."""

    name: ClassVar[str] = "norm_preserving_add"

    def __call__(self, h, v, lam):
        g = h + lam * v
        scale = h.norm(dim=-1, keepdim=True) / g.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(h.dtype).tiny)
        return g * scale


_OPERATORS = {cls.name: cls for cls in (Add, Project, Clamp, NormPreservingAdd)}


def operator_from_dict(spec: dict[str, Any] | str) -> Operator:
    """An operator from ``to_dict()`` output or a bare name ("add", "project", "clamp", ...)."""
    if not isinstance(spec, (str, dict)):
        raise TypeError(f"operator_from_dict needs a dict such as {{'name': 'clamp', 'value': 0.5}} or a name, not {spec!r}.")
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in _OPERATORS:
        raise ValueError(f"Unknown steering operator {name!r}; choose one of {sorted(_OPERATORS)}.")
    unknown = sorted(set(spec) - {f.name for f in fields(_OPERATORS[name])})
    if unknown:
        raise ValueError(f"The {name} operator has no fields {unknown}; write it as its to_dict() output.")
    return _OPERATORS[name](**spec)


#: Short spellings of ``operator_from_spec``.
_ALIASES = {"norm_preserving": "norm_preserving_add", "norm-preserving": "norm_preserving_add"}


def operator_from_spec(spec: str) -> Operator:
    """An operator from a one-word spec (a config field, a command-line option): "add", "project",
    "norm_preserving" (= "norm_preserving_add") or "clamp:VALUE" (e.g. "clamp:0.5"); an
    ``Operator`` is returned as it is."""
    if isinstance(spec, Operator):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"operator must be a spec like 'add', 'project', 'clamp:0.5' or 'norm_preserving', not {spec!r}.")
    name, sep, arg = spec.strip().partition(":")
    name = _ALIASES.get(name.lower(), name.lower())
    if name in ("kv", "kv_cache", "kv-cache"):
        raise ValueError(
            "KV-cache steering edits the cache with its own key/value vectors (xsteer.kv_steer), not the "
            "residual stream, so it is no operator of the λ protocol. Fix: use add, project, clamp:VALUE or "
            "norm_preserving here, and xsteer.kv_steer.kv_generate for KV-cache steering."
        )
    if name not in _OPERATORS:
        raise ValueError(
            f"Unknown steering operator {spec!r}; choose one of add, project, clamp:VALUE, norm_preserving."
        )
    if name == "clamp":
        try:
            value = float(arg)
        except ValueError:
            raise ValueError(
                f"operator {spec!r}: clamp needs the value to set the projection to. Fix: write clamp:VALUE, "
                "e.g. clamp:0.5 (a multiple of the scaled vector's norm)."
            ) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"operator {spec!r}: the clamp value must be finite. Fix: e.g. clamp:0.5.")
        return Clamp(value)
    if sep:
        raise ValueError(f"operator {spec!r}: {name} takes no value. Fix: write just {name!r}.")
    return _OPERATORS[name]()
