"""How a steering vector enters the residual stream: small operator objects the steering hooks call.

Every operator is called as ``op(h, v, lam)`` with ``h`` the residual stream (batch, seq, d),
``v`` the layer's vector as ``Add`` would add it at λ = 1 (the unit vector times the scale's and
the schedule's factor) and ``lam`` a float or a (batch, 1, 1) tensor (one λ per row). λ = 0 leaves
``h`` unchanged bit for bit, for every operator, so a λ = 0 row of a batch is the unsteered model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

__all__ = ["Add", "Clamp", "NormPreservingAdd", "Operator", "Project", "operator_from_dict"]

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
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in _OPERATORS:
        raise ValueError(f"Unknown steering operator {name!r}; choose one of {sorted(_OPERATORS)}.")
    return _OPERATORS[name](**spec)
