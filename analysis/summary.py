"""Test-split numbers behind the gains figure and the results table, computed from the per-item
correctness stored in ``TransferResult``s: accuracies with bootstrap CIs, paired deltas, exact
McNemar tests (Holm-adjusted across the table's primary claims) and the spread of the random
controls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from xsteer.results import ConditionResult, TransferResult
from xsteer.stats import (
    Spread,
    spread,
    Estimate,
    McNemar,
    RunStatistics,
    accuracy_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap_delta,
)

__all__ = [
    "Gain",
    "RunSummary",
    "summarise_runs",
]

@dataclass(frozen=True)
class Gain:
    """A condition's test accuracy and its paired difference from the baseline on the same items.

    ``p_holm`` is the McNemar p-value Holm-adjusted across the primary claims summarised together
    (every λ* and ITS test of the summarised conditions); NaN for controls outside that family.
    """

    accuracy: Estimate
    delta: Estimate
    mcnemar: McNemar
    p_holm: float = float("nan")


@dataclass(frozen=True)
class RunSummary:
    """One steering condition of one transfer run on the test split, with its controls."""

    parent: str
    child: str
    task: str
    condition: str
    baseline: Estimate
    lambda_star: float | None
    at_lambda_star: Gain | None  # None when no λ* was selected
    its: Gain | None  # None when no ITS vote was run
    random_its: Spread | None  # ITS accuracy across random directions
    random_its_delta: Spread | None  # ITS accuracy minus baseline across random directions
    self_consistency: Gain | None  # not in the Holm family

    @property
    def label(self) -> str:
        """``parent → child`` (plus the condition name when it is not the transferred vector)."""
        base = f"{self.parent} → {self.child}"
        return base if self.condition == "transferred" else f"{base} [{self.condition}]"


def summarise_runs(
    results: Sequence[TransferResult],
    *,
    kinds: Sequence[str] = ("transferred",),
    n_boot: int = 10_000,
    seed: int = 0,
    family: str = "summary",
) -> list[RunSummary]:
    """One ``RunSummary`` per condition of the given kinds in each result, test split.

    ``family="summary"``: the McNemar p-values of every λ* and ITS comparison summarised here form
    one Holm family. ``family="report"``: each run's own family, as in its report.md
    (``TransferResult.statistics``: every non-random condition of the run).
    """
    if family not in ("summary", "report"):
        raise ValueError(f"family must be 'summary' or 'report', got {family!r}.")
    if not results:
        raise ValueError("No results given; pass a list of TransferResult (TransferResult.load).")
    boot = dict(n_boot=n_boot, seed=seed)
    rows, names = [], []
    for result in results:
        parent, child, task = result.labels
        base = result.test_baseline()
        chosen = [c for kind in kinds for c in result.of_kind(kind)]
        if not chosen:
            raise ValueError(
                f"Result {parent} → {child} has no condition of kind {list(kinds)}; its conditions "
                f"are {sorted({c.kind for c in result.conditions.values()})}. Pass kinds=... "
                "accordingly."
            )
        randoms = [c.its_correct for c in result.of_kind("random") if c.its_correct]
        rand_acc = spread([np.mean(c) for c in randoms]) if randoms else None
        rand_delta = spread([np.mean(c) - np.mean(base) for c in randoms]) if randoms else None
        sc = [c.its_correct for c in result.of_kind("self_consistency") if c.its_correct]
        sc_gain = _gain(base, sc[0], boot) if sc else None
        for cond in chosen:
            names.append((result, cond.name))
            star = _gain(base, cond.at_lambda_star(), boot) if cond.lambda_star is not None else None
            its = _gain(base, cond.its_correct, boot) if cond.its_correct else None
            rows.append(
                dict(
                    parent=parent,
                    child=child,
                    task=task,
                    condition=result.label_of(cond),
                    baseline=accuracy_ci(base, **boot),
                    lambda_star=cond.lambda_star,
                    at_lambda_star=star,
                    its=its,
                    random_its=rand_acc,
                    random_its_delta=rand_delta,
                    self_consistency=sc_gain,
                )
            )
    tests = {
        (i, key): row[key].mcnemar.p_value
        for i, row in enumerate(rows)
        for key in ("at_lambda_star", "its")
        if row[key] is not None
    }
    if family == "summary":
        adjusted = holm(tests) if tests else {}
    else:
        what = {"at_lambda_star": "lambda_star", "its": "its"}
        adjusted = {
            (i, key): _statistics(names[i][0]).comparison(names[i][1], what[key]).p_holm for i, key in tests
        }
    for (i, key), p in adjusted.items():
        g = rows[i][key]
        rows[i][key] = Gain(g.accuracy, g.delta, g.mcnemar, p)
    return [RunSummary(**row) for row in rows]


def _statistics(result: TransferResult) -> RunStatistics:
    """The run's statistics (a clear error when it has no test baseline to compare against)."""
    if result.statistics is None:
        result.test_baseline()
    return result.statistics


def _gain(base: Sequence[bool], correct: Sequence[bool], boot: dict) -> Gain:
    return Gain(
        accuracy=accuracy_ci(correct, **boot),
        delta=paired_bootstrap_delta(base, correct, **boot),
        mcnemar=mcnemar_exact(base, correct),
    )
