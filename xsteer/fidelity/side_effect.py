"""Side effect of steering on a task the concept has nothing to do with: accuracy of the steered child
on ARC-Easy (zero-shot, log-likelihood over the choices) at each vector's operating λ, beside the
unsteered child on the same items (paired bootstrap CI of the change, exact McNemar)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from xsteer.evaluate import Evaluator
from xsteer.operators import Operator, operator_from_spec
from xsteer.stats import Estimate, accuracy_ci, mcnemar_exact, paired_bootstrap_delta
from xsteer.tasks import load_task
from xsteer.vectors import SteeringVectors

__all__ = ["SIDE_EFFECT_TASK", "SideEffect", "TaskSideEffects", "task_side_effects"]

#: The task whose accuracy a vector should not change.
SIDE_EFFECT_TASK = "arc-easy"


@dataclass(frozen=True)
class SideEffect:
    """One vector at its operating λ: task accuracy [CI], its change from unsteered [CI], McNemar p."""

    label: str
    lam: float
    accuracy: Estimate
    delta: Estimate
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"label": self.label, "lam": self.lam, "accuracy": self.accuracy.to_dict(),
                "delta": self.delta.to_dict(), "p_value": self.p_value}


@dataclass(frozen=True)
class TaskSideEffects:
    """Unsteered accuracy on ``n_items`` items of ``task`` and each vector's :class:`SideEffect`."""

    task: str
    n_items: int
    baseline: Estimate
    by_label: dict[str, SideEffect]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"task": self.task, "n_items": self.n_items, "baseline": self.baseline.to_dict(),
                "by_label": {k: v.to_dict() for k, v in self.by_label.items()}}


def task_side_effects(
    child,
    vectors: Mapping[str, SteeringVectors],
    lams: Mapping[str, float],
    *,
    task: str = SIDE_EFFECT_TASK,
    n_items: int = 100,
    data_dir=None,
    operator: str | Operator = "add",
    batch_size: int = 32,
    n_boot: int = 2000,
    seed: int = 0,
) -> TaskSideEffects:
    """Accuracy of ``child`` on the first ``n_items`` test items of ``task`` (zero-shot, log-likelihood)
    unsteered and steered by each labelled vector set at its λ (``lams``, relative scale, at every
    layer of the vectors, by ``operator``)."""
    if isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 2:
        raise ValueError(f"n_items must be an int >= 2 (items of {task} to score), not {n_items!r}.")
    missing = sorted(set(vectors) - set(lams))
    if missing:
        raise ValueError(f"No operating λ for {missing}; give lams={{label: λ}} for every vector set.")
    bad = {k: v for k, v in lams.items() if k in vectors and not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0)}
    if bad:
        raise ValueError(f"Operating λ must be finite and >= 0 (got {bad}); they come from the dose-response at the budget.")
    the_task = load_task(task, data_dir=data_dir, k_shot=0, seed=seed, mode="loglik")
    items: Sequence = the_task.split("test")[:n_items]
    ev = Evaluator(child, the_task, scale="relative", batch_size=batch_size, progress=False,
                   operator=operator_from_spec(operator))
    base = [r.correct for r in ev.sweep(items, "test", "baseline", None, [0.0])[0.0]]
    out = {}
    for label, vecs in vectors.items():
        lam = float(lams[label])
        got = [r.correct for r in ev.sweep(items, "test", f"side:{label}", vecs, [lam])[lam]]
        out[label] = SideEffect(label, lam, accuracy_ci(got, n_boot=n_boot, seed=seed),
                                paired_bootstrap_delta(base, got, n_boot=n_boot, seed=seed),
                                float(mcnemar_exact(base, got).p_value))
    return TaskSideEffects(the_task.name, len(items), accuracy_ci(base, n_boot=n_boot, seed=seed), out)
