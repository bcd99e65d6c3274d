"""Where to steer: the child's layer bands at which its own vector moves the judge most per unit of
fluency cost, and a layer map that sends parent vectors to exactly those layers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from xsteer.concepts.base import JudgeLike
from xsteer.fidelity.dose import NEUTRAL_PROMPTS, check_lambda_grid, run_curves, shift_and_cost
from xsteer.concepts.judges import make_judge
from xsteer.transfer import ExplicitMap
from xsteer.vectors import SteeringVectors

__all__ = ["COST_FLOOR", "BandScore", "WhereResult", "layer_bands", "steerable_layers", "targeted_map"]

#: NLL increase (nats/token) below which a band's cost counts as this much: a band that barely
#: changes the text is not "efficient" by dividing a tiny shift by a tinier cost.
COST_FLOOR = 0.1


def layer_bands(n_layers: int, width: int = 5, stride: int = 4) -> list[list[int]]:
    """Contiguous bands of ``width`` layers every ``stride`` layers, the last one ending at the top."""
    if width < 1 or stride < 1:
        raise ValueError(f"Band width and stride must be >= 1 (got width={width}, stride={stride}).")
    width = min(width, n_layers)
    starts = list(range(0, n_layers - width + 1, stride))
    if starts[-1] != n_layers - width:
        starts.append(n_layers - width)
    return [list(range(s, s + width)) for s in starts]


@dataclass(frozen=True)
class BandScore:
    """One band: the child-own vector's mean judge shift and NLL increase per λ, and its score
    max_λ shift(λ) / max(cost(λ), COST_FLOOR)."""

    layers: list[int]
    lambdas: list[float]
    shift: list[float]
    cost: list[float]
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"layers": self.layers, "lambdas": self.lambdas, "shift": self.shift, "cost": self.cost,
                "score": self.score}


@dataclass(frozen=True)
class WhereResult:
    """Band scores of one concept in one child, best first by score."""

    judge: str
    bands: list[BandScore]

    @property
    def best(self) -> list[int]:
        """Layers of the highest-scoring band."""
        return self.bands[0].layers

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"judge": self.judge, "best": self.best, "bands": [b.to_dict() for b in self.bands]}


def steerable_layers(
    child,
    child_own: SteeringVectors,
    judge: JudgeLike,
    *,
    bands: Sequence[Sequence[int]] | None = None,
    width: int = 5,
    stride: int = 4,
    lambdas: Sequence[float] = (0.08, 0.32),
    prompts: Sequence[str] = NEUTRAL_PROMPTS[:8],
    max_new_tokens: int = 32,
    chat: bool = True,
    seed: int = 0,
    batch_size: int = 32,
) -> WhereResult:
    """Score each band (default :func:`layer_bands` over the child's depth) by how far the child's
    own vector moves ``judge`` per unit NLL increase, on a few prompts and λ values."""
    judge = make_judge(judge)
    lambdas = check_lambda_grid(lambdas)
    bands = [sorted({int(l) for l in b}) for b in (bands or layer_bands(child_own.n_layers, width, stride))]
    if not bands or not all(bands):
        raise ValueError("Every band needs at least one layer; pass bands=[[24, 25, 26], ...] or leave bands=None.")
    missing = sorted({l for b in bands for l in b} - set(child_own.layers))
    if missing:
        raise ValueError(f"The child_own vectors have no direction at layers {missing} (they have {child_own.layers}); "
                         "pick bands inside them, or extract vectors at every layer.")
    sets = {f"band{b[0]}-{b[-1]}": child_own.select(b) for b in bands}
    base, curves, _ = run_curves(child, sets, judge, prompts, lambdas, max_new_tokens=max_new_tokens, chat=chat,
                                 batch_size=batch_size)
    scores = []
    for b, label in zip(bands, sets):
        shift, cost = (x[1:] for x in shift_and_cost(curves[label], base))
        # no completion to cost at a λ (every text empty): the band silences the child there
        score = float(np.max(shift / np.maximum(np.nan_to_num(cost, nan=np.inf), COST_FLOOR)))
        scores.append(BandScore(b, curves[label].lambdas, shift.tolist(), cost.tolist(), score))
    return WhereResult(judge.name, sorted(scores, key=lambda s: -s.score))


def targeted_map(child_layers: Sequence[int], n_parent_layers: int, n_child_layers: int):
    """An ``ExplicitMap`` {child layer -> parent layer} for ``child_layers``, each paired with the
    parent layer at the same relative depth (round(l · (P − 1) / (C − 1)))."""
    if not child_layers:
        raise ValueError("targeted_map needs at least one child layer.")
    outside = [l for l in child_layers if not 0 <= int(l) < n_child_layers]
    if outside:
        raise ValueError(f"Child layers {outside} are outside the child's {n_child_layers} blocks (0..{n_child_layers - 1}).")
    scale = (n_parent_layers - 1) / max(1, n_child_layers - 1)
    return ExplicitMap({int(l): int(round(l * scale)) for l in child_layers})
