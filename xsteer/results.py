"""Result types of a transfer run, saved as report.json and read back without any model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xsteer.figures import accuracy_vs_lambda
from xsteer.stats import Estimate, RunStatistics, run_statistics

__all__ = ["ConceptArrival", "ConditionResult", "TransferResult"]

#: Names of earlier versions, read back as today's (docs/glossary.md).
_OLD_NAMES = {"transfer": "transferred", "steered": "transferred"}


@dataclass
class ConditionResult:
    """One steering condition (or control) evaluated over the whole λ grid on validation and test.

    ``correct[split][lam]`` holds per-item correctness in the split's item order (``item_ids``);
    ``its_correct`` is the per-item correctness of the inference-time-scaling vote over the grid.
    ``kind`` is "transferred" (the parent's vector carried into the child), "child_own", "random" or
    "self_consistency" (no λ: ``correct`` is empty and only ``its_correct`` is set).
    """

    name: str
    kind: str
    correct: dict[str, dict[float, list[bool]]] = field(default_factory=dict)
    lambda_star: float | None = None
    its_correct: list[bool] = field(default_factory=list)
    relative_size: dict[int, float] = field(default_factory=dict)  # ‖λ*·v_l‖ / median‖h_l‖ per layer

    def accuracy(self, split: str) -> dict[float, float]:
        """Mean correctness per λ on a split."""
        return {lam: sum(c) / len(c) for lam, c in sorted(self.correct.get(split, {}).items())}

    def at_lambda_star(self) -> list[bool]:
        """Per-item test correctness at λ* (chosen on validation)."""
        return self.correct["test"][self.lambda_star]


@dataclass(frozen=True)
class ConceptArrival:
    """Did a concept arrive in the child (``xsteer run --fidelity``)? Readout AUROC averaged over all
    child layers — transferred, the child's own vector, the random 95th percentile — whether the
    parent holds the concept, and, for a concept with a judge, the steering efficiency (transferred
    ÷ child-own shift at equal fluency cost) at the child ``layers`` it was steered on."""

    transferred: float
    child_own: float
    random_p95: float
    parent_holds: bool
    efficiency: Estimate | None = None
    layers: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {**asdict(self), "layers": list(self.layers)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConceptArrival:
        eff, layers = data.get("efficiency"), data.get("layers") or ()
        if isinstance(layers, str):  # earlier versions wrote the band as "25–29"
            first, last = (int(x) for x in layers.split("–"))
            layers = range(first, last + 1)
        return cls(data["transferred"], data["child_own"], data["random_p95"], bool(data["parent_holds"]),
                   Estimate(**eff) if eff else None, tuple(int(l) for l in layers))


@dataclass
class TransferResult:
    """Everything a report needs: configuration, baseline, conditions, their statistics (computed
    once, on construction, unless given), transfer diagnostics."""

    config: dict[str, Any]
    item_ids: dict[str, list[str]]  # split -> item ids in evaluation order
    baseline: dict[str, list[bool]]  # split -> per-item correctness at λ = 0
    conditions: dict[str, ConditionResult]
    statistics: RunStatistics | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)  # layer map, R², cosines, norms
    fidelity: dict[str, ConceptArrival] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.statistics is None and self.baseline.get("test"):
            self.statistics = run_statistics(self.baseline, self.conditions, seed=self.config.get("seed", 0))

    @property
    def labels(self) -> tuple[str, str, str]:
        """``(parent, child, task)`` from the config."""
        missing = [k for k in ("parent", "child", "task") if k not in self.config]
        if missing:
            raise ValueError(
                f"TransferResult.config lacks {missing}; results made by xsteer.pipeline carry them, "
                "add them by hand (result.config['parent'] = ...) for hand-built results."
            )
        return tuple(str(self.config[k]) for k in ("parent", "child", "task"))

    def of_kind(self, kind: str) -> list[ConditionResult]:
        """The conditions of one kind, in stored order."""
        return [c for c in self.conditions.values() if c.kind == kind]

    def label_of(self, cond: ConditionResult) -> str:
        """A condition's name, or its kind alone when it is the only condition of that kind."""
        return cond.kind if len(self.of_kind(cond.kind)) == 1 else cond.name

    def test_baseline(self) -> list[bool]:
        """Per-item baseline correctness on the test split (a clear error when there is none)."""
        if not self.baseline.get("test"):
            parent, child, _ = self.labels
            raise ValueError(
                f"Result {parent} → {child} has no test-split baseline; evaluate the test split "
                "(λ = 0) before summarising it."
            )
        return self.baseline["test"]

    def plot(self, split: str = "test"):
        """The λ-robustness curves (plotly): accuracy against λ for the transferred and child-own
        vectors with 95% CIs, the baseline and the random-direction band."""
        kinds = tuple(k for k in ("transferred", "child_own") if self.of_kind(k))
        return accuracy_vs_lambda([self], split, kinds=kinds or ("transferred",), seed=self.config.get("seed", 0))

    def _repr_html_(self) -> str:
        parent, child, task = self.labels
        head = f"<b>{parent} → {child} on {task}</b>"
        if self.statistics is None:
            return head + " (no test baseline yet)"
        base = self.statistics.baseline["test"]
        rows = [f"<tr><td>baseline</td><td>–</td><td>{base.value:.3f} [{base.low:.3f}, {base.high:.3f}]</td>"
                "<td>–</td><td>–</td></tr>"]
        for (name, what), c in self.statistics.comparisons.items():
            lam = f"{self.conditions[name].lambda_star:g}" if what == "lambda_star" else "ITS"
            rows.append(
                f"<tr><td>{name}</td><td>{lam}</td><td>{c.accuracy.value:.3f} [{c.accuracy.low:.3f}, "
                f"{c.accuracy.high:.3f}]</td><td>{c.delta.value:+.3f} [{c.delta.low:+.3f}, {c.delta.high:+.3f}]</td>"
                f"<td>{c.p_holm:.3g}</td></tr>"
            )
        for what, r in self.statistics.random.items():
            rows.append(f"<tr><td>{r.n} random ({what})</td><td></td><td>{r.min:.3f}–{r.max:.3f} (mean {r.mean:.3f})"
                        f"</td><td>{'' if r.n_at_least is None else f'{r.n_at_least} of {r.n} ≥ transferred'}</td>"
                        "<td></td></tr>")
        return (f"{head}<table><tr><th>condition</th><th>λ*</th><th>test accuracy [95% CI]</th>"
                f"<th>Δ vs baseline</th><th>Holm p</th></tr>{''.join(rows)}</table>")

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "statistics"}
        for cond in data["conditions"].values():
            cond["correct"] = {s: {repr(float(l)): c for l, c in by.items()} for s, by in cond["correct"].items()}
            cond["relative_size"] = {str(k): v for k, v in cond["relative_size"].items()}
        data["statistics"] = None if self.statistics is None else self.statistics.to_dict()
        data["fidelity"] = {name: f.to_dict() for name, f in self.fidelity.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TransferResult":
        conditions = {}
        for name, c in data["conditions"].items():
            c = dict(c)
            c["correct"] = {s: {float(l): v for l, v in by.items()} for s, by in c["correct"].items()}
            c["relative_size"] = {int(k): v for k, v in c["relative_size"].items()}
            c["name"] = _OLD_NAMES.get(c["name"], c["name"])
            c["kind"] = _OLD_NAMES.get(c["kind"], c["kind"])
            conditions[_OLD_NAMES.get(name, name)] = ConditionResult(**c)
        saved = data.get("statistics")
        old = any(n in _OLD_NAMES or c["kind"] in _OLD_NAMES for n, c in data["conditions"].items())
        return cls(
            config=data["config"],
            item_ids=data["item_ids"],
            baseline=data["baseline"],
            conditions=conditions,
            # statistics saved by earlier versions are computed afresh
            statistics=RunStatistics.from_dict(saved) if saved and "by_lambda" in saved and not old else None,
            diagnostics={k: v for k, v in data.get("diagnostics", {}).items() if k != "fidelity"},
            # earlier versions kept the concepts' arrival among the diagnostics
            fidelity={name: ConceptArrival.from_dict(f)
                      for name, f in (data.get("fidelity") or data.get("diagnostics", {}).get("fidelity") or {}).items()},
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TransferResult":
        path = Path(path)
        if path.is_dir():
            path = path / "report.json"
        if not path.exists():
            raise FileNotFoundError(f"No report at {path}; pass a run folder made by `xsteer run`.")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{path} is not a readable report ({type(err).__name__}: {err}). Fix: rerun `xsteer run` "
                "on the same --out to write it again."
            ) from None
