"""Steering fidelity (behaviour): does a transferred vector move the child's *text* toward the concept,
as far as the child's own vector does, at the same cost in fluency?

Neutral prompts are answered greedily under steering of strength f (a fraction of the child's median
residual norm at each steered layer, ``scale="relative"``) for every vector kind — transferred,
child-own, and random unit directions (equal norm by construction). A judge that never sees the
vectors scores each text (``xsteer.fidelity.judges``); fluency cost is the unsteered child's mean
per-token NLL of the text, and distinct-n its repetitiveness. Every (prompt, f) row of a vector runs
through ``xsteer.evaluate.Evaluator`` as one batched sweep with per-row strength.

Headline: transfer efficiency = concept shift of the transferred vector ÷ that of the child-own
vector at an equal NLL increase (each shift-vs-cost curve interpolated at a common budget), with a
bootstrap CI over prompts.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xsteer.fidelity.judges import Judge, completion_nll, distinct_n, make_judge
from xsteer.operators import Operator, operator_from_spec
from xsteer.stats import Estimate
from xsteer.tasks.base import Example, Prompt
from xsteer.vectors import SteeringVectors

__all__ = [
    "DEFAULT_STRENGTHS",
    "NEUTRAL_PROMPTS",
    "Curve",
    "DoseResponse",
    "OpenPrompts",
    "SteeringFidelity",
    "check_strengths",
    "dose_response",
    "format_markdown",
    "restrict",
    "run_curves",
    "steering_fidelity",
]

#: Strength grid: fractions of the child's median residual norm (log-spaced).
DEFAULT_STRENGTHS: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)

#: Short openings that lean toward no sentiment and no language but English.
NEUTRAL_PROMPTS: tuple[str, ...] = (
    "Tell me about your day.",
    "Describe the weather today.",
    "Write a sentence about the city.",
    "What did you have for breakfast?",
    "Tell me about a book.",
    "Describe a walk in the park.",
    "Write about a train journey.",
    "Tell me about your weekend.",
    "Describe the kitchen.",
    "What is the news today?",
    "Write a short note to a neighbour.",
    "Describe a typical Monday.",
    "Tell me about the office.",
    "Describe the view from a window.",
    "Write about a visit to the market.",
    "Tell me about the last film you saw.",
    "Describe a school classroom.",
    "Write a few words about the sea.",
    "Tell me about a dog.",
    "Describe a cup of coffee.",
    "Write about the evening.",
    "Tell me about a garden.",
    "Describe a bus ride.",
    "What happened at the meeting?",
)


def check_budget(budget: float | None) -> float | None:
    """An NLL budget: None (chosen from the curves) or a finite number of nats/token > 0."""
    if budget is not None and not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ValueError(f"The NLL budget must be a finite number of nats/token > 0, e.g. 0.5 (got {budget!r}).")
    return budget


def check_strengths(strengths: Sequence[float]) -> list[float]:
    """A sorted, de-duplicated strength grid of finite fractions f > 0."""
    try:
        grid = sorted({float(f) for f in strengths})
    except (TypeError, ValueError):
        raise ValueError(f"Strengths must be numbers like 0.01,0.04,0.16, not {strengths!r}.") from None
    if not grid:
        raise ValueError("The strength grid is empty; pass e.g. strengths=(0.02, 0.08, 0.32) (fractions of the residual norm).")
    bad = [f for f in grid if not math.isfinite(f) or f <= 0]
    if bad:
        raise ValueError(
            f"Strengths must be finite and > 0 (got {bad}); they are fractions of the child's median "
            "residual norm, e.g. 0.01 … 0.32. To steer the other way negate the vectors."
        )
    return grid


class OpenPrompts:
    """Open-ended generation as a ``Task``: each example is a prompt, the output is kept whole (no
    answer extraction, nothing is correct). ``chat=True`` renders the prompt as a user turn of the
    tokenizer's chat template where it has one."""

    name = "open_prompts"
    mode = "generate"

    def __init__(self, prompts: Sequence[str], *, max_new_tokens: int = 32, chat: bool = True):
        prompts = list(dict.fromkeys(prompts))
        if not prompts or any(not isinstance(p, str) or not p.strip() for p in prompts):
            raise ValueError("OpenPrompts needs at least one non-empty prompt string.")
        self.prompts, self.max_new_tokens, self.chat = prompts, int(max_new_tokens), chat
        self.examples = [Example(id=f"p{i}", question=p, answer="") for i, p in enumerate(prompts)]

    def split(self, name: str) -> list[Example]:
        return list(self.examples)

    def prompt(self, example: Example, tokenizer=None) -> Prompt:
        if self.chat and tokenizer is not None and getattr(tokenizer, "chat_template", None):
            q = example.question
            full = tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
            cut = full.rfind(q)
            return Prompt(full[:cut], full[cut:], chat=True) if cut >= 0 else Prompt("", full, chat=True)
        return Prompt("", example.question)

    def continuations(self, example: Example) -> list[str]:
        raise ValueError("OpenPrompts is open-ended generation; it has no choices to score.")

    def extract(self, output: str) -> str | None:
        return output

    def is_correct(self, prediction: str | None, example: Example) -> bool:
        return False

    def stop_strings(self) -> list[str]:
        return []

    def pair_texts(self, example: Example, rng: random.Random) -> tuple[str, str]:
        raise ValueError("OpenPrompts has no contrast pairs.")

    def prompt_ids(self, example: Example, tokenizer) -> list[int]:
        """Token ids of the rendered prompt, as the Evaluator feeds them."""
        rendered = self.prompt(example, tokenizer)  # the whole text at once, as the Evaluator tokenizes it
        return tokenizer(rendered.text, add_special_tokens=not rendered.chat)["input_ids"]


def restrict(vectors: SteeringVectors, layers: Sequence[int]) -> SteeringVectors:
    """The same vectors at ``layers`` only (each must have a vector)."""
    layers = sorted({int(l) for l in layers})
    missing = [l for l in layers if l not in vectors.directions]
    if not layers or missing:
        raise ValueError(
            f"No {vectors.method} vector at layers {missing or layers}; it has layers {vectors.layers}. "
            "Pick steering layers the vectors cover (e.g. a layer map that reaches them)."
        )
    return SteeringVectors(
        directions={l: vectors[l] for l in layers}, model_name=vectors.model_name, d_model=vectors.d_model,
        n_layers=vectors.n_layers, method=vectors.method, seed=vectors.seed, data_hash=vectors.data_hash,
        provenance=vectors.provenance,
    )


# ---------------------------------------------------------------------------- curves


@dataclass
class Curve:
    """Per-prompt measurements of one vector over the strength grid: arrays are (n_strengths, n_prompts)."""

    kind: str
    label: str
    strengths: list[float]
    judge: np.ndarray
    nll: np.ndarray
    distinct1: np.ndarray
    distinct2: np.ndarray
    outputs: list[list[str]]

    @classmethod
    def of(cls, kind: str, label: str, strengths: list[float], judge: np.ndarray, nll: np.ndarray,
           outputs: list[list[str]]) -> "Curve":
        """A curve whose distinct-1/2 are measured on ``outputs`` (one list of texts per strength)."""
        distinct = lambda n: np.array([[distinct_n(t, n) for t in row] for row in outputs])
        return cls(kind, label, strengths, judge, nll, distinct(1), distinct(2), outputs)

    def to_dict(self, outputs: bool = False) -> dict[str, Any]:
        """Means per strength (and every output when ``outputs``)."""
        mean = lambda a: [float(np.nanmean(r)) for r in a]
        out = {"kind": self.kind, "label": self.label, "strengths": self.strengths, "judge": mean(self.judge),
               "nll": mean(self.nll), "distinct1": mean(self.distinct1), "distinct2": mean(self.distinct2)}
        if outputs:
            out["outputs"] = self.outputs
        return out


def run_curves(
    child,
    vectors: Mapping[str, SteeringVectors],
    judge: Judge,
    prompts: Sequence[str],
    strengths: Sequence[float],
    *,
    max_new_tokens: int = 32,
    chat: bool = True,
    batch_size: int = 32,
    kinds: Mapping[str, str] | None = None,
    operator: Operator | None = None,
) -> tuple[Curve, dict[str, Curve], dict[str, float]]:
    """Greedy generations for every prompt × strength of every labelled vector set (steered at all of
    its layers by ``operator``, default add, ``scale="relative"``) plus the unsteered baseline, judged
    and costed; returns (baseline curve, label -> curve, timing)."""
    from xsteer.evaluate import Evaluator

    strengths = check_strengths(strengths)
    task = OpenPrompts(prompts, max_new_tokens=max_new_tokens, chat=chat)
    tok = child.tokenizer
    ev = Evaluator(child, task, scale="relative", batch_size=batch_size, progress=False, operator=operator)
    t0 = time.perf_counter()
    outputs = {"baseline": ev.sweep(task.examples, "test", "baseline", None, [0.0])}
    for label, vecs in vectors.items():
        outputs[label] = ev.sweep(task.examples, "test", f"steer:{label}", vecs, strengths)
    t_gen = time.perf_counter() - t0
    prompt_ids = [task.prompt_ids(ex, tok) for ex in task.examples]
    texts = [(label, lam, recs) for label, by_lam in outputs.items() for lam, recs in by_lam.items()]
    flat = [r.output for _, _, recs in texts for r in recs]
    comp = [tok(t, add_special_tokens=False)["input_ids"] for t in flat]
    nll = completion_nll(child, prompt_ids * len(texts), comp, batch_size=8)
    scores = judge.score(flat)
    t_score = time.perf_counter() - t0 - t_gen
    n = len(task.examples)
    curves: dict[str, Curve] = {}
    for i, label in enumerate(outputs):
        rows = [j for j, (lab, _, _) in enumerate(texts) if lab == label]
        sl = lambda a: np.stack([a[j * n : (j + 1) * n] for j in rows])
        outs = [[r.output for r in texts[j][2]] for j in rows]
        curves[label] = Curve.of(
            kind="baseline" if label == "baseline" else (kinds or {}).get(label, label),
            label=label,
            strengths=[texts[j][1] for j in rows],
            judge=sl(scores),
            nll=sl(nll),
            outputs=outs,
        )
    n_tokens = sum(map(len, comp))
    timing = {"generate_s": t_gen, "score_s": t_score, "rows": len(flat), "generated_tokens": n_tokens,
              "rows_per_s": len(flat) / t_gen, "tokens_per_s": n_tokens / t_gen}
    return curves.pop("baseline"), curves, timing


# ---------------------------------------------------------------------------- efficiency


def _shift_cost(curve: Curve, base: Curve, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean concept shift and mean NLL increase per strength (prompts ``idx``: (n_boot, n) or None),
    with the origin (f = 0: no shift, no cost) prepended along the strength axis."""
    j, b, c, cb = curve.judge, base.judge[0], curve.nll, base.nll[0]
    if idx is None:
        shift, cost = (j - b).mean(-1), np.nanmean(c - cb, -1)
    else:
        shift = (j[:, idx] - b[idx]).mean(-1)
        cost = np.nanmean(c[:, idx] - cb[idx], -1)
    zero = np.zeros((1, *shift.shape[1:]))
    return np.concatenate([zero, shift]), np.concatenate([zero, cost])


def shift_at_cost(shift: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Concept shift at NLL increase ``budget``, linear in cost along the strength axis (axis 0);
    cost is first made non-decreasing (running maximum), and a curve that never reaches the budget
    gives its shift at the largest strength."""
    cost = np.maximum.accumulate(np.nan_to_num(cost, nan=0.0), axis=0)
    flat_s, flat_c = shift.reshape(len(shift), -1), cost.reshape(len(cost), -1)
    out = np.empty(flat_s.shape[1])
    for k in range(flat_s.shape[1]):
        c, s = flat_c[:, k], flat_s[:, k]
        keep = np.r_[True, np.diff(c) > 0]  # equal costs: keep the first (weakest) strength
        out[k] = np.interp(budget, c[keep], s[keep])
    return out.reshape(shift.shape[1:])


@dataclass
class DoseResponse:
    """Dose-response of one concept in one child: baseline, one curve per vector, and the headline."""

    concept: str
    judge: str
    child: str
    layers: list[int]
    strengths: list[float]
    prompts: list[str]
    baseline: Curve
    curves: dict[str, Curve]
    budget: float
    efficiency: Estimate | None
    shift_at_budget: dict[str, Estimate]
    random_at_budget: dict[str, float]
    settings: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)

    def kind_curves(self, kind: str) -> list[Curve]:
        """Curves of one vector kind ("transferred", "own", "random", ...)."""
        return [c for c in self.curves.values() if c.kind == kind]

    def table(self):
        """DataFrame: one row per kind × strength: mean shift [CI] and NLL increase [CI] over prompts
        (random: mean over directions, its 5–95% band), distinct-1/2."""
        import pandas as pd

        n_boot, seed = self.settings.get("n_boot", 1000), self.settings.get("seed", 0)
        n = len(self.prompts)
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        rows = []
        for kind in dict.fromkeys(c.kind for c in self.curves.values()):
            cs = self.kind_curves(kind)
            pts = [_shift_cost(c, self.baseline) for c in cs]
            boots = [_shift_cost(c, self.baseline, idx) for c in cs]
            for i, f in enumerate(self.strengths, start=1):
                s = np.mean([p[0][i] for p in pts])
                cost = np.mean([p[1][i] for p in pts])
                sb = np.mean([b[0][i] for b in boots], axis=0)
                cb = np.mean([b[1][i] for b in boots], axis=0)
                each = [p[0][i] for p in pts]
                rows.append({
                    "kind": kind, "n_vectors": len(cs), "strength": f,
                    "shift": s, "shift_low": float(np.quantile(sb, 0.025)), "shift_high": float(np.quantile(sb, 0.975)),
                    "shift_p05": float(np.quantile(each, 0.05)), "shift_p95": float(np.quantile(each, 0.95)),
                    "nll_increase": cost, "nll_low": float(np.nanquantile(cb, 0.025)), "nll_high": float(np.nanquantile(cb, 0.975)),
                    "distinct1": float(np.nanmean([np.nanmean(c.distinct1[i - 1]) for c in cs])),
                    "distinct2": float(np.nanmean([np.nanmean(c.distinct2[i - 1]) for c in cs])),
                })
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (means per strength; outputs of the baseline and non-random curves)."""
        return {
            "concept": self.concept, "judge": self.judge, "child": self.child, "layers": self.layers,
            "strengths": self.strengths, "prompts": self.prompts, "budget_nll": self.budget,
            "efficiency": None if self.efficiency is None else self.efficiency.to_dict(),
            "shift_at_budget": {k: v.to_dict() for k, v in self.shift_at_budget.items()},
            "random_at_budget": self.random_at_budget,
            "baseline": self.baseline.to_dict(outputs=True),
            "curves": [c.to_dict(outputs=c.kind != "random") for c in self.curves.values()],
            "table": self.table().to_dict("records"),
            "settings": self.settings, "timing": self.timing,
        }


def _estimate(values: np.ndarray, point: float) -> Estimate:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return Estimate(point, float("nan"), float("nan"), len(values))
    lo, hi = np.quantile(finite, [0.025, 0.975])
    return Estimate(float(point), float(lo), float(hi), len(values))


def summarise(
    baseline: Curve, curves: Mapping[str, Curve], *, budget: float | None = None,
    numerator: str = "transferred", denominator: str = "own", n_boot: int = 1000, seed: int = 0,
) -> tuple[float, Estimate | None, dict[str, Estimate], dict[str, float]]:
    """(budget, efficiency, shift at budget per non-random kind, random shifts at budget): the budget
    defaults to the largest mean NLL increase both ``numerator`` and ``denominator`` reach."""
    by_kind: dict[str, list[Curve]] = {}
    for c in curves.values():
        by_kind.setdefault(c.kind, []).append(c)
    if budget is None:
        reach = [float(np.max(_shift_cost(by_kind[k][0], baseline)[1])) for k in (numerator, denominator) if k in by_kind]
        budget = min(reach) if reach else float("nan")
    n = baseline.judge.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    at, boot = {}, {}
    for kind, cs in by_kind.items():
        if kind == "random":
            continue
        point = float(shift_at_cost(*_shift_cost(cs[0], baseline), budget))
        boot[kind] = shift_at_cost(*_shift_cost(cs[0], baseline, idx), budget)
        at[kind] = _estimate(boot[kind], point)
    rand = [float(shift_at_cost(*_shift_cost(c, baseline), budget)) for c in by_kind.get("random", [])]
    random_at = {}
    if rand:
        random_at = {"n": len(rand), "mean": float(np.mean(rand)), "p05": float(np.quantile(rand, 0.05)),
                     "p95": float(np.quantile(rand, 0.95)), "max_abs": float(np.max(np.abs(rand)))}
    eff = None
    if numerator in at and denominator in at and math.isfinite(budget):
        with np.errstate(divide="ignore", invalid="ignore"):
            point = at[numerator].value / at[denominator].value if at[denominator].value else float("nan")
            eff = _estimate(boot[numerator] / boot[denominator], point)
    return budget, eff, at, random_at


def dose_response(
    child,
    vectors_by_kind: Mapping[str, SteeringVectors | Sequence[SteeringVectors]],
    judge: str | Judge,
    *,
    concept: str = "",
    layers: Sequence[int] | None = None,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    max_new_tokens: int = 32,
    chat: bool = True,
    budget: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    operator: str | Operator = "add",
) -> DoseResponse:
    """Dose-response of ``child`` under each vector kind (e.g. {"transferred": v, "own": w,
    "random": [r1, r2, ...]}), steered at ``layers`` (default: the layers every vector has) by
    ``operator`` (see ``xsteer.operators``; the strength is its λ), judged by ``judge``
    ("sentiment", "language" or an object with ``.score(texts)``). The efficiency is "transferred"
    ÷ "own" at an equal NLL increase ``budget`` (default: the largest both reach)."""
    strengths = check_strengths(strengths)
    operator = operator_from_spec(operator)
    judge = make_judge(judge)
    sets = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in vectors_by_kind.items()}
    if not sets or not all(sets.values()):
        raise ValueError("dose_response needs at least one vector per kind, e.g. {'own': vectors}.")
    if layers is None:
        layers = sorted(set.intersection(*(set(v.layers) for vs in sets.values() for v in vs)))
    labelled, kinds = {}, {}
    for kind, vs in sets.items():
        for i, v in enumerate(vs):
            label = kind if len(vs) == 1 else f"{kind}{i}"
            labelled[label], kinds[label] = restrict(v, layers), kind
    base, curves, timing = run_curves(child, labelled, judge, prompts, strengths, max_new_tokens=max_new_tokens,
                                      chat=chat, batch_size=batch_size, kinds=kinds, operator=operator)
    budget, eff, at, rand = summarise(base, curves, budget=budget, n_boot=n_boot, seed=seed)
    return DoseResponse(
        concept=concept, judge=judge.name, child=child.cfg.model_name, layers=list(layers), strengths=strengths,
        prompts=list(dict.fromkeys(prompts)), baseline=base, curves=curves, budget=budget, efficiency=eff,
        shift_at_budget=at, random_at_budget=rand,
        settings={"max_new_tokens": max_new_tokens, "chat": chat, "n_boot": n_boot, "seed": seed, "scale": "relative",
                  "operator": operator.to_dict(),
                  "n_vectors": {k: len(v) for k, v in sets.items()}},
        timing=timing,
    )


# ---------------------------------------------------------------------------- parent -> child


@dataclass
class SteeringFidelity:
    """Steering fidelity of parent -> child: per concept, where the child steers and its dose-response."""

    parent: str
    child: str
    results: list[DoseResponse]
    where: dict[str, Any]
    transfer: dict[str, Any]
    settings: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)

    def table(self):
        """DataFrame, one row per concept: the headline efficiency [CI] and the shifts at the budget."""
        import pandas as pd

        rows = []
        for r in self.results:
            row = {"concept": r.concept, "layers": f"{r.layers[0]}–{r.layers[-1]}", "budget_nll": r.budget}
            for k, e in r.shift_at_budget.items():
                row.update({k: e.value, f"{k}_low": e.low, f"{k}_high": e.high})
            row.update({f"random_{k}": v for k, v in r.random_at_budget.items() if k != "n"})
            if r.efficiency is not None:
                row.update({"efficiency": r.efficiency.value, "efficiency_low": r.efficiency.low,
                            "efficiency_high": r.efficiency.high})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"parent": self.parent, "child": self.child, "results": [r.to_dict() for r in self.results],
                "where": self.where, "transfer": self.transfer, "settings": self.settings, "timing": self.timing}


def steering_fidelity(
    parent,
    child,
    concepts,
    *,
    strengths: Sequence[float] = (0.02, 0.04, 0.08, 0.16, 0.32),
    layers: Sequence[int] | None = None,
    layer_map: str = "targeted",
    adapter: str = "ridge",
    n_prompts: int = 16,
    n_random: int = 10,
    max_new_tokens: int = 32,
    where_prompts: int = 8,
    where_strengths: Sequence[float] = (0.08, 0.32),
    n: int = 256,
    anchor_mode: str = "leave_concept_out",
    seed: int = 0,
    data_dir=None,
    batch_size: int = 32,
    progress: bool = False,
    operator: str | Operator = "add",
    budget: float | None = None,
) -> SteeringFidelity:
    """Dose-response of transferred vs child-own vs ``n_random`` random vectors in ``child`` for every
    concept with a judge (``concepts``: names, ``Concept``s, or a readout ``FidelityResult``).

    Steering layers: ``layers``, else the child's most steerable band for its own vector
    (``xsteer.fidelity.where.steerable_layers``). Transferred vectors: mean-difference parent
    vectors carried by ``Transfer(layer_map, adapter)`` fitted on last-token anchor activations;
    ``layer_map="targeted"`` maps the steering layers to proportionally placed parent layers. Each
    concept's transfer is fitted without that concept's own texts (``anchor_mode=
    "leave_concept_out"``, see :func:`xsteer.fidelity.readout.concept_anchor_texts`) or with them
    (``"shared"``: the map then sees the very texts that define the concept). ``operator`` is how
    every vector enters the stream (a ``xsteer.operators`` object or spec such as "clamp:0.3");
    ``budget`` the NLL increase (nats/token) at which shifts are compared (default: per concept, the
    largest both transferred and own vectors reach), e.g. one budget for runs of several operators."""
    from xsteer.concepts import Concept, load_concept
    from xsteer.activations import collect_activations
    from xsteer.extract import extract_vectors, random_vectors
    from xsteer.fidelity.readout import check_anchor_mode, concept_anchor_texts, default_anchor_texts
    from xsteer.fidelity.where import steerable_layers, targeted_map
    from xsteer.transfer import ModelInfo, Transfer, anchor_groups, anchor_hash, collect_anchor_activations
    from xsteer.transfer import anchor_texts as clean

    t0 = time.perf_counter()
    strengths = check_strengths(strengths)
    operator = operator_from_spec(operator)
    budget = check_budget(budget)
    check_anchor_mode(anchor_mode)
    if hasattr(concepts, "concepts"):  # a readout FidelityResult
        concepts = [c.concept for c in concepts.concepts]
    concepts = [c if isinstance(c, Concept) else load_concept(c, n=n, seed=seed, data_dir=data_dir) for c in concepts]
    judged = [c for c in concepts if c.judge is not None]
    if not judged:
        raise ValueError(f"None of the concepts {[c.name for c in concepts]} has a judge; use 'sentiment' or 'language'.")
    prompts = list(NEUTRAL_PROMPTS[:n_prompts]) if n_prompts <= len(NEUTRAL_PROMPTS) else None
    if prompts is None:
        raise ValueError(f"n_prompts={n_prompts} exceeds the {len(NEUTRAL_PROMPTS)} built-in neutral prompts; pass fewer.")
    texts, anchors = default_anchor_texts(concepts, data_dir=data_dir, seed=seed)
    texts = clean(texts)
    acts = [collect_anchor_activations(m, texts, None, ("last",), 16, progress) for m in (parent, child)]
    infos = [ModelInfo.from_model(m) for m in (parent, child)]
    t_anchor = time.perf_counter() - t0
    results, where, transfers = [], {}, {}
    for concept in judged:
        own = extract_vectors(child, concept.train, "mean_diff", seed=seed)
        band = list(layers) if layers is not None else None
        if band is None:
            found = steerable_layers(child, own, concept.judge, prompts=prompts[:where_prompts],
                                     strengths=where_strengths, max_new_tokens=max_new_tokens, seed=seed,
                                     batch_size=batch_size)
            where[concept.name] = found.to_dict()
            band = found.best
        spec = targeted_map(band, infos[0].n_layers, infos[1].n_layers) if layer_map == "targeted" else layer_map
        kept = concept_anchor_texts(texts, concept, anchor_mode)
        keep = set(kept)
        rows = torch.tensor([i for i, t in enumerate(texts) if t in keep])
        sub = [{l: a[rows] for l, a in side.items()} for side in acts]
        tr = Transfer(spec, adapter).fit_activations(sub[0], sub[1], infos[0], infos[1],
                                                     groups=anchor_groups(len(kept), 1), anchor_hash=anchor_hash(kept, ("last",)))
        band = [l for l in band if l in tr.layer_map_.mapping_]
        if not band:
            raise ValueError(f"The {layer_map} layer map reaches none of the steering layers; use layer_map='targeted'.")
        parent_layers = sorted({tr.layer_map_.mapping_[l] for l in band})
        pvec = extract_vectors(parent, concept.train, "mean_diff", layers=parent_layers, seed=seed)
        pos = collect_activations(child, [p.positive for p in concept.train], band)
        neg = collect_activations(child, [p.negative for p in concept.train], band)
        moved = tr.apply(pvec, (pos, neg))
        transfers[concept.name] = {"layer_pairs": moved.provenance["layer_pairs"], "r2": moved.provenance["r2"],
                                   "n_anchor_rows": tr.n_anchors_, "anchor_mode": anchor_mode, "adapter": adapter, "layer_map": layer_map,
                                   "cos_own": {str(l): float(moved[l] @ own[l]) for l in band}}
        band_own = restrict(own, band)
        randoms = [random_vectors(band_own, seed=1000 * seed + k + 1) for k in range(n_random)]
        kinds = {"transferred": moved, "own": own, **({"random": randoms} if randoms else {})}
        results.append(dose_response(child, kinds, concept.judge, concept=concept.name, layers=band,
                                     strengths=strengths, prompts=prompts, max_new_tokens=max_new_tokens,
                                     seed=seed, batch_size=batch_size, operator=operator, budget=budget))
    return SteeringFidelity(
        parent=infos[0].name, child=infos[1].name, results=results, where=where, transfer=transfers,
        settings={"strengths": strengths, "layers": None if layers is None else list(layers), "layer_map": layer_map,
                  "adapter": adapter, "n_prompts": n_prompts, "n_random": n_random, "max_new_tokens": max_new_tokens,
                  "where_prompts": where_prompts, "where_strengths": list(where_strengths), "n": n, "seed": seed,
                  "anchors": anchors, "anchor_mode": anchor_mode, "method": "mean_diff", "pooling": "last",
                  "operator": operator.to_dict(), "budget": budget},
        timing={"anchors_s": t_anchor, "total_s": time.perf_counter() - t0},
    )


def format_markdown(result: SteeringFidelity) -> str:
    """Markdown of a steering-fidelity result: headline table, where-to-steer bands, per-strength table."""
    params = dict(result.settings.get("operator", {"name": "add"}))
    name = params.pop("name")
    op = f"{name} ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name
    out = [f"# Steering fidelity: {result.parent} → {result.child}, operator {op}", "",
           "| concept | layers | NLL budget | transferred shift [95% CI] | child-own shift [95% CI] "
           "| random shift mean (p05, p95) | efficiency [95% CI] |", "|---|---|---|---|---|---|---|"]
    ci = lambda e: f"{e.value:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"
    for r in result.results:
        t, o, rd = r.shift_at_budget.get("transferred"), r.shift_at_budget.get("own"), r.random_at_budget
        rand = f"{rd['mean']:+.3f} ({rd['p05']:+.3f}, {rd['p95']:+.3f})" if rd else "–"
        eff = f"{r.efficiency.value:.2f} [{r.efficiency.low:.2f}, {r.efficiency.high:.2f}]" if r.efficiency else "–"
        out.append(f"| {r.concept} | {r.layers[0]}–{r.layers[-1]} | {r.budget:.3f} | {ci(t) if t else '–'} "
                   f"| {ci(o) if o else '–'} | {rand} | {eff} |")
    for name, w in result.where.items():
        out += ["", f"## Where {result.child} steers {name} (own vector; score = max shift / max(NLL increase, 0.1))", "",
                "| band | " + " | ".join(f"shift@{f} | ΔNLL@{f}" for f in w["bands"][0]["strengths"]) + " | score |",
                "|---|" + "---|---|" * len(w["bands"][0]["strengths"]) + "---|"]
        for b in w["bands"]:
            cells = " | ".join(f"{s:+.3f} | {c:+.3f}" for s, c in zip(b["shift"], b["cost"]))
            out.append(f"| {b['layers'][0]}–{b['layers'][-1]} | {cells} | {b['score']:+.3f} |")
    for r in result.results:
        out += ["", f"## {r.concept}: per strength ({len(r.prompts)} prompts, layers {r.layers[0]}–{r.layers[-1]})", "",
                "| kind | f | shift [95% CI] | random 5–95% | ΔNLL [95% CI] | distinct-1 | distinct-2 |",
                "|---|---|---|---|---|---|---|"]
        for row in r.table().to_dict("records"):
            band = f"{row['shift_p05']:+.3f}, {row['shift_p95']:+.3f}" if row["n_vectors"] > 1 else "–"
            out.append(f"| {row['kind']} | {row['strength']} | {row['shift']:+.3f} [{row['shift_low']:+.3f}, "
                       f"{row['shift_high']:+.3f}] | {band} | {row['nll_increase']:+.3f} [{row['nll_low']:+.3f}, "
                       f"{row['nll_high']:+.3f}] | {row['distinct1']:.3f} | {row['distinct2']:.3f} |")
    out += ["", f"Transfer: {json.dumps(result.transfer)}", "", f"Settings: {json.dumps(result.settings)}", "",
            f"Timing: {json.dumps({k: round(v, 2) for k, v in result.timing.items()})}; per concept: "
            + json.dumps({r.concept: {k: round(v, 2) for k, v in r.timing.items()} for r in result.results}), ""]
    return "\n".join(out)
