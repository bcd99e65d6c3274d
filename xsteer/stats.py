"""Statistics for steered-vs-baseline accuracy on the same items: bootstrap confidence intervals,
the exact McNemar test, flip counts and Holm–Bonferroni correction across conditions.

Every function takes per-item correctness (booleans or 0/1, one entry per item). Paired functions
take the baseline first (``a``) and the condition second (``b``); both must score the same items in
the same order.

The bootstraps resample items with replacement. For a mean of 0/1 outcomes the resampled statistic
depends only on how many items of each kind were drawn, so resamples are drawn as those counts
(binomial for accuracy, multinomial over the paired outcome kinds for the delta): the same
distribution as resampling an index matrix, at a cost independent of the number of items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binom

__all__ = [
    "STATISTICS",
    "Comparison",
    "Estimate",
    "Flips",
    "McNemar",
    "RandomRange",
    "RunStatistics",
    "Spread",
    "accuracy_ci",
    "compare",
    "flips",
    "holm",
    "mcnemar_exact",
    "paired_bootstrap_delta",
    "run_statistics",
    "spread",
]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile-bootstrap confidence interval over ``n`` items."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.n})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


@dataclass(frozen=True)
class Flips:
    """How items moved from baseline ``a`` to condition ``b``."""

    right_to_wrong: int
    wrong_to_right: int
    both_right: int
    both_wrong: int

    @property
    def n(self) -> int:
        """Number of items."""
        return self.right_to_wrong + self.wrong_to_right + self.both_right + self.both_wrong

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of baseline ``a`` against condition ``b`` on the discordant items.

    ``wrong_to_right`` is b01 (a wrong, b right); ``right_to_wrong`` is b10 (a right, b wrong).
    """

    wrong_to_right: int
    right_to_wrong: int
    p_value: float

    @property
    def b01(self) -> int:
        """Items baseline got wrong and the condition got right."""
        return self.wrong_to_right

    @property
    def b10(self) -> int:
        """Items baseline got right and the condition got wrong."""
        return self.right_to_wrong

    @property
    def n_discordant(self) -> int:
        """Items on which baseline and condition disagree."""
        return self.wrong_to_right + self.right_to_wrong

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """One condition against the baseline on the same items.

    ``delta`` is condition accuracy minus baseline accuracy; ``p_holm`` is the McNemar p-value after
    Holm–Bonferroni correction across all conditions compared together.
    """

    name: str
    baseline: Estimate
    accuracy: Estimate
    delta: Estimate
    mcnemar: McNemar
    flips: Flips
    p_holm: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable nested fields."""
        return asdict(self)


def accuracy_ci(
    correct: ArrayLike, *, n_boot: int = 10_000, alpha: float = 0.05, seed: int = 0
) -> Estimate:
    """Accuracy with a ``1 - alpha`` percentile-bootstrap confidence interval."""
    x = _as_correct(correct, "correct")
    _check_boot(n_boot, alpha, seed)
    n = x.size
    k = int(x.sum())
    rng = np.random.default_rng(seed)
    resampled = rng.binomial(n, k / n, size=n_boot) / n
    return _estimate(k / n, resampled, n, alpha)


def paired_bootstrap_delta(
    a_correct: ArrayLike,
    b_correct: ArrayLike,
    *,
    n_boot: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """``mean(b) - mean(a)`` with a ``1 - alpha`` bootstrap CI; items are resampled jointly."""
    f = flips(a_correct, b_correct)
    _check_boot(n_boot, alpha, seed)
    n = f.n
    concordant = f.both_right + f.both_wrong
    probs = np.array([f.wrong_to_right, f.right_to_wrong, concordant], dtype=float) / n
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, probs, size=n_boot)
    resampled = (counts[:, 0] - counts[:, 1]) / n
    return _estimate((f.wrong_to_right - f.right_to_wrong) / n, resampled, n, alpha)


def flips(a_correct: ArrayLike, b_correct: ArrayLike) -> Flips:
    """Counts of items by (baseline ``a``, condition ``b``) correctness."""
    a, b = _as_paired(a_correct, b_correct)
    return Flips(
        right_to_wrong=int(np.sum(a & ~b)),
        wrong_to_right=int(np.sum(~a & b)),
        both_right=int(np.sum(a & b)),
        both_wrong=int(np.sum(~a & ~b)),
    )


def mcnemar_exact(a_correct: ArrayLike, b_correct: ArrayLike) -> McNemar:
    """Two-sided exact McNemar test of baseline ``a`` against condition ``b``.

    p = min(1, 2 · BinomCDF(min(b01, b10); b01 + b10, ½)), and 1 when no item is discordant.
    """
    f = flips(a_correct, b_correct)
    b01, b10 = f.wrong_to_right, f.right_to_wrong
    n_disc = b01 + b10
    p = 1.0 if n_disc == 0 else min(1.0, 2.0 * float(binom.cdf(min(b01, b10), n_disc, 0.5)))
    return McNemar(wrong_to_right=b01, right_to_wrong=b10, p_value=p)


@overload
def holm(p_values: Mapping[str, float]) -> dict[str, float]: ...
@overload
def holm(p_values: Sequence[float]) -> list[float]: ...
def holm(p_values):
    """Holm–Bonferroni adjusted p-values in the input's order: a dict for a mapping, else a list.

    Adjusted values are monotone in the raw p-values and capped at 1.
    """
    if isinstance(p_values, Mapping):
        keys = list(p_values)
        return dict(zip(keys, _holm_array([p_values[k] for k in keys])))
    return _holm_array(p_values)


def compare(
    baseline_correct: ArrayLike,
    conditions: Mapping[str, ArrayLike],
    *,
    n_boot: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Comparison]:
    """Each condition against the baseline on the same items, with Holm correction across them.

    Every bootstrap uses ``seed`` afresh, so a condition's intervals do not depend on which other
    conditions are compared alongside it.
    """
    if not isinstance(conditions, Mapping):
        raise TypeError(
            f"conditions must be a dict name -> per-item correctness, not {type(conditions).__name__}; "
            "e.g. compare(base, {'steered': steered_correct})."
        )
    base = _as_correct(baseline_correct, "baseline_correct")
    baseline = accuracy_ci(base, n_boot=n_boot, alpha=alpha, seed=seed)
    parts = {}
    for name, cond in conditions.items():
        b = _as_correct(cond, f"conditions[{name!r}]")
        _check_same_length(base, b, "baseline_correct", f"conditions[{name!r}]")
        parts[name] = (
            accuracy_ci(b, n_boot=n_boot, alpha=alpha, seed=seed),
            paired_bootstrap_delta(base, b, n_boot=n_boot, alpha=alpha, seed=seed),
            mcnemar_exact(base, b),
            flips(base, b),
        )
    adjusted = holm({name: part[2].p_value for name, part in parts.items()})
    return {
        name: Comparison(name, baseline, acc, delta, test, flip, adjusted[name])
        for name, (acc, delta, test, flip) in parts.items()
    }


def _estimate(value: float, resampled: np.ndarray, n: int, alpha: float) -> Estimate:
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(value), float(low), float(high), int(n), 1.0 - alpha)


def _holm_array(p_values: Sequence[float]) -> list[float]:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(
            f"holm expects a flat list of p-values, got shape {p.shape}; pass one p-value per test."
        )
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError(
            f"holm got p-values outside [0, 1] or NaN: {p.tolist()}; "
            "pass the raw p-values of valid tests."
        )
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()


def _as_correct(values: ArrayLike, name: str) -> np.ndarray:
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(
            f"{name} must be a flat sequence with one correctness value per item, got shape "
            f"{x.shape}; flatten it or pass e.g. [record.correct for record in records]."
        )
    if x.size == 0:
        raise ValueError(f"{name} is empty; score at least one item before computing statistics.")
    if x.dtype == bool:
        return x
    if x.dtype.kind not in "iuf" or not np.all((x == 0) | (x == 1)):
        bad = x[~((x == 0) | (x == 1))][:5] if x.dtype.kind in "iuf" else x[:5]
        raise ValueError(
            f"{name} must hold booleans or 0/1 per item, got dtype {x.dtype} with values like "
            f"{bad.tolist()}; pass True/False (or 1/0) for correct/incorrect."
        )
    return x.astype(bool)


def _as_paired(a_correct: ArrayLike, b_correct: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = _as_correct(a_correct, "a_correct")
    b = _as_correct(b_correct, "b_correct")
    _check_same_length(a, b, "a_correct", "b_correct")
    return a, b


def _check_same_length(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.size != b.size:
        raise ValueError(
            f"{a_name} has {a.size} items but {b_name} has {b.size}; paired statistics need both "
            f"scored on the same items in the same order."
        )


def _check_boot(n_boot: int, alpha: float, seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}; e.g. seed=0.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}; e.g. n_boot=10_000.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(
            f"alpha must lie strictly between 0 and 1, got {alpha!r}; e.g. alpha=0.05."
        )


# ---------------------------------------------------------------------------- one run's statistics

#: The two test-split statistics of a steered condition: accuracy at λ* and by the ITS vote.
STATISTICS = ("lambda_star", "its")


@dataclass(frozen=True)
class RandomRange:
    """One statistic (λ* or ITS) across the random directions of a run, and where the transferred
    vector falls: ``n_at_least`` random directions do at least as well, ``p = (1 + n_at_least) /
    (1 + n)``."""

    n: int
    mean: float
    min: float
    max: float
    transferred: float | None = None
    n_at_least: int | None = None
    p: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


@dataclass(frozen=True)
class RunStatistics:
    """The statistics of one transfer run, computed once from its per-item correctness.

    ``baseline``: accuracy per split; ``comparisons``: every (condition, statistic) of the
    non-random conditions against the baseline on the test items, Holm-adjusted together;
    ``by_lambda``: accuracy per condition, split and λ; ``random``: the random-direction ranges per
    statistic (empty without random directions).
    """

    baseline: dict[str, Estimate]
    comparisons: dict[tuple[str, str], Comparison]
    by_lambda: dict[str, dict[str, dict[float, Estimate]]]
    random: dict[str, RandomRange]
    n_boot: int
    seed: int

    def comparison(self, condition: str, statistic: str) -> Comparison | None:
        """The comparison of ``condition`` at ``statistic`` ("lambda_star" or "its"), if made."""
        return self.comparisons.get((condition, statistic))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (read back by :meth:`from_dict`)."""
        return {
            "baseline": {s: e.to_dict() for s, e in self.baseline.items()},
            "comparisons": [
                {"condition": c, "statistic": s, **comp.to_dict()} for (c, s), comp in self.comparisons.items()
            ],
            "by_lambda": {
                c: {s: [{"lambda": lam, **e.to_dict()} for lam, e in by.items()] for s, by in splits.items()}
                for c, splits in self.by_lambda.items()
            },
            "random": {k: r.to_dict() for k, r in self.random.items()},
            "n_boot": self.n_boot,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunStatistics:
        """Rebuild from :meth:`to_dict`."""

        def est(d):
            return Estimate(**d)

        comparisons = {}
        for row in data["comparisons"]:
            row = dict(row)
            key = (row.pop("condition"), row.pop("statistic"))
            comparisons[key] = Comparison(
                name=row["name"], baseline=est(row["baseline"]), accuracy=est(row["accuracy"]),
                delta=est(row["delta"]), mcnemar=McNemar(**row["mcnemar"]), flips=Flips(**row["flips"]),
                p_holm=row["p_holm"],
            )
        by_lambda = {
            c: {s: {float(r.pop("lambda")): est(r) for r in map(dict, rows)} for s, rows in splits.items()}
            for c, splits in data["by_lambda"].items()
        }
        return cls(
            baseline={s: est(e) for s, e in data["baseline"].items()},
            comparisons=comparisons,
            by_lambda=by_lambda,
            random={k: RandomRange(**r) for k, r in data["random"].items()},
            n_boot=int(data["n_boot"]),
            seed=int(data["seed"]),
        )


def run_statistics(
    baseline: Mapping[str, ArrayLike], conditions: Mapping[str, Any], *, n_boot: int = 10_000, seed: int = 0
) -> RunStatistics:
    """Statistics of one run from its per-item correctness: ``baseline`` (split -> correctness at
    λ = 0) and ``conditions`` (name -> an object with ``kind``, ``correct[split][λ]``, ``lambda_star``
    and ``its_correct``, e.g. ``xsteer.results.ConditionResult``). The transferred vector's place among
    the random directions is read from the condition of kind "transferred"."""
    base = baseline["test"]
    family: dict[tuple[str, str], ArrayLike] = {}
    by_lambda: dict[str, dict[str, dict[float, Estimate]]] = {}
    randoms: dict[str, list[float]] = {s: [] for s in STATISTICS}
    for name, cond in conditions.items():
        per_stat = {"its": cond.its_correct}
        if cond.lambda_star is not None:
            per_stat["lambda_star"] = cond.correct["test"][cond.lambda_star]
            by_lambda[name] = {
                split: {lam: accuracy_ci(c, n_boot=n_boot, seed=seed) for lam, c in sorted(by.items())}
                for split, by in cond.correct.items()
            }
        for stat in STATISTICS:
            correct = per_stat.get(stat)
            if correct is None or len(correct) == 0:
                continue
            if cond.kind == "random":
                randoms[stat].append(float(np.mean(correct)))
            else:
                family[(name, stat)] = correct
    flat = compare(base, {f"{c}@{s}": v for (c, s), v in family.items()}, n_boot=n_boot, seed=seed)
    comparisons = {key: flat[f"{key[0]}@{key[1]}"] for key in family}
    transferred = next((n for n, c in conditions.items() if c.kind == "transferred"), None)
    ranges = {}
    for stat, accs in randoms.items():
        if not accs:
            continue
        mine = family.get((transferred, stat))
        a = np.asarray(accs)
        extra = {}
        if mine is not None:
            value = float(np.mean(mine))
            n_at_least = int(np.sum(a >= value))
            extra = dict(transferred=value, n_at_least=n_at_least, p=(1 + n_at_least) / (1 + a.size))
        ranges[stat] = RandomRange(int(a.size), float(a.mean()), float(a.min()), float(a.max()), **extra)
    return RunStatistics(
        baseline={s: accuracy_ci(c, n_boot=n_boot, seed=seed) for s, c in baseline.items()},
        comparisons=comparisons, by_lambda=by_lambda, random=ranges, n_boot=n_boot, seed=seed,
    )


# ---------------------------------------------------------------------------- spread over directions

#: Fewest random directions for which the random band is the 2.5–97.5% range (else min–max).
MIN_FOR_QUANTILES = 40


@dataclass(frozen=True)
class Spread:
    """How a statistic varies across ``k`` random directions: mean and a ``low``..``high`` range."""

    mean: float
    low: float
    high: float
    k: int
    method: str  # "2.5–97.5%" or "min–max"


def spread(values: ArrayLike) -> Spread:
    """Mean and range of ``values``: the 2.5–97.5% quantiles from ``MIN_FOR_QUANTILES`` values on,
    min–max below that."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"spread needs a flat, non-empty list of values, got shape {x.shape}.")
    if x.size >= MIN_FOR_QUANTILES:
        low, high = np.quantile(x, [0.025, 0.975])
        method = "2.5–97.5%"
    else:
        low, high = x.min(), x.max()
        method = "min–max"
    return Spread(float(x.mean()), float(low), float(high), int(x.size), method)
