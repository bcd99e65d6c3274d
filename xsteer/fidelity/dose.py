"""The dose-response engine: how far each vector moves a judge's score of generated text, and at what
cost in fluency, over a grid of steering strengths λ.

Neutral prompts are answered greedily under steering of strength λ (a fraction of the child's median
residual norm at each steered layer, ``scale="relative"``) for every vector; a judge that never sees
the vectors scores each text, fluency cost is the unsteered child's mean per-token NLL of the text,
and distinct-n its repetitiveness. Every (prompt, λ) row of a vector runs through
``xsteer.evaluate.Evaluator`` as one batched sweep with per-row λ.

Vectors come by kind (``docs/glossary.md``): ``transferred``, ``child_own``, ``random``,
``mapped_random``, ``wrong_concept``, and ``child_own_k`` (the child's own vector fitted on only k
pairs, k -> vectors). Headline: efficiency = shift of ``transferred`` ÷ shift of ``child_own`` at an
equal NLL increase (each shift-vs-cost curve interpolated at a common budget), with a bootstrap CI
over prompts; beside it every control at the same budget, the exchange rate (how many child pairs
the transferred vector is worth), a prompting baseline, each vector's anti-steerability and its
operating λ (where its cost reaches the budget).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from xsteer.figures import dose_response_figure
from xsteer.concepts.base import Concept, JudgeLike
from xsteer.evaluate import Evaluator, check_lambdas
from xsteer.concepts.judges import make_judge
from xsteer.fidelity.fluency import completion_nll, distinct_n
from xsteer.operators import Operator, operator_from_spec
from xsteer.stats import Estimate
from xsteer.tasks.base import Example, Prompt
from xsteer.vectors import SteeringVectors

__all__ = [
    "BAND_KINDS",
    "DEFAULT_LAMBDAS",
    "MIN_PROMPTS",
    "NEUTRAL_PROMPTS",
    "Band",
    "BudgetComparison",
    "Curve",
    "DoseResponse",
    "ExchangeRate",
    "OpenPrompts",
    "PromptingBaseline",
    "anti_steerability",
    "check_budget",
    "check_lambda_grid",
    "check_prompts",
    "compare_at_budget",
    "dose_response",
    "exchange_rate",
    "label_vectors",
    "lam_at_cost",
    "run_curves",
    "run_prompting",
    "shift_and_cost",
    "shift_at_cost",
]

#: λ grid: fractions of the child's median residual norm (log-spaced).
DEFAULT_LAMBDAS: tuple[float, ...] = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32)

#: Fewest prompts a dose-response may have: below this a bootstrap CI over prompts means nothing.
MIN_PROMPTS = 2

#: Kinds of which a run has many vectors, summarised as a band (mean, 5-95%) rather than one curve.
BAND_KINDS: tuple[str, ...] = ("random", "mapped_random")

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


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def check_budget(budget: float | None) -> float | None:
    """An NLL budget: None (chosen from the curves) or a finite number of nats/token > 0."""
    if budget is not None and not (_is_number(budget) and math.isfinite(budget) and budget > 0):
        raise ValueError(f"The NLL budget must be a finite number of nats/token > 0, e.g. 0.5 (got {budget!r}).")
    return None if budget is None else float(budget)


def check_lambda_grid(lambdas: Sequence[float]) -> list[float]:
    """A sorted, de-duplicated grid of finite λ > 0 (fractions of the child's median residual norm)."""
    if isinstance(lambdas, (str, bytes)) or not hasattr(lambdas, "__iter__"):
        raise TypeError(f"lambdas must be a list of numbers like [0.02, 0.08, 0.32], not {lambdas!r}.")
    lambdas = list(lambdas)
    if not all(_is_number(x) for x in lambdas):
        raise TypeError(f"lambdas must be numbers like [0.02, 0.08, 0.32], not {lambdas!r}.")
    bad = [float(x) for x in lambdas if not math.isfinite(x) or x <= 0]
    if bad:
        raise ValueError(
            f"λ values must be finite and > 0 (got {bad}); they are fractions of the child's median "
            "residual norm, e.g. 0.01 … 0.32. To steer the other way negate the vectors."
        )
    if not lambdas:
        raise ValueError("The λ grid is empty; pass e.g. lambdas=(0.02, 0.08, 0.32) (fractions of the residual norm).")
    return check_lambdas(lambdas)


def check_prompts(prompts: Sequence[str], minimum: int = MIN_PROMPTS) -> list[str]:
    """Distinct non-empty prompt strings, at least ``minimum`` of them."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string; wrap it in a list.")
    prompts = list(dict.fromkeys(prompts))
    if any(not isinstance(p, str) or not p.strip() for p in prompts):
        raise ValueError("Every prompt must be a non-empty string; drop or fix the empty ones.")
    if len(prompts) < minimum:
        raise ValueError(
            f"{len(prompts)} distinct prompts are too few for a bootstrap CI over prompts; give at least "
            f"{minimum} (e.g. NEUTRAL_PROMPTS[:8])."
        )
    return prompts


def _check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, not {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}.")
    return int(value)


class OpenPrompts:
    """Open-ended generation as a ``Task``: each example is a prompt, the output is kept whole (no
    answer extraction, nothing is correct). ``chat=True`` renders the prompt as a user turn of the
    tokenizer's chat template where it has one."""

    name = "open_prompts"
    mode = "generate"

    def __init__(self, prompts: Sequence[str], *, max_new_tokens: int = 32, chat: bool = True):
        prompts = check_prompts(prompts, minimum=1)
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


# ---------------------------------------------------------------------------- curves


@dataclass
class Curve:
    """Per-prompt measurements of one vector over the λ grid: arrays are (n_lambdas, n_prompts).
    ``k``: the number of child pairs a ``child_own_k`` vector was fitted on (else None)."""

    kind: str
    label: str
    lambdas: list[float]
    judge: np.ndarray
    nll: np.ndarray
    distinct1: np.ndarray
    distinct2: np.ndarray
    outputs: list[list[str]]
    k: int | None = None

    @classmethod
    def of(cls, kind: str, label: str, lambdas: list[float], judge: np.ndarray, nll: np.ndarray,
           outputs: list[list[str]], k: int | None = None) -> Curve:
        """A curve whose distinct-1/2 are measured on ``outputs`` (one list of texts per λ)."""
        distinct = lambda n: np.array([[distinct_n(t, n) for t in row] for row in outputs])
        return cls(kind, label, lambdas, judge, nll, distinct(1), distinct(2), outputs, k)

    def to_dict(self, outputs: bool = False) -> dict[str, Any]:
        """Means per λ (and every output when ``outputs``)."""
        mean = lambda a: [float(np.nanmean(r)) if np.isfinite(r).any() else float("nan") for r in a]
        out = {"kind": self.kind, "label": self.label, "k": self.k, "lambdas": self.lambdas,
               "judge": mean(self.judge), "nll": mean(self.nll), "distinct1": mean(self.distinct1),
               "distinct2": mean(self.distinct2)}
        if outputs:
            out["outputs"] = self.outputs
        return out


def _check_vectors_for(child, label: str, vectors: SteeringVectors) -> None:
    if not isinstance(vectors, SteeringVectors):
        raise TypeError(f"The {label!r} vectors are a {type(vectors).__name__}; pass SteeringVectors.")
    vectors.check_compatible(child)
    name = str(child.cfg.model_name)
    if vectors.model_name != name:
        raise ValueError(
            f"The {label!r} vectors belong to {vectors.model_name!r}, not to the steered model {name!r}. "
            "Fix: carry parent vectors into it with a fitted Transfer (transfer.apply(vectors)), or steer "
            "the model they came from."
        )


def _split_rows(values: np.ndarray, n: int, rows: Sequence[int]) -> np.ndarray:
    return np.stack([values[j * n : (j + 1) * n] for j in rows])


def run_curves(
    child,
    vectors: Mapping[str, SteeringVectors],
    judge: JudgeLike,
    prompts: Sequence[str],
    lambdas: Sequence[float],
    *,
    max_new_tokens: int = 32,
    chat: bool = True,
    batch_size: int = 32,
    kinds: Mapping[str, str] | None = None,
    ks: Mapping[str, int] | None = None,
    operator: Operator | None = None,
) -> tuple[Curve, dict[str, Curve], dict[str, float]]:
    """Greedy generations for every prompt × λ of every labelled vector set (steered at all of
    its layers by ``operator``, default add, ``scale="relative"``) plus the unsteered baseline, judged
    and costed; returns (baseline curve, label -> curve, timing). ``kinds`` / ``ks`` give each
    label's kind and pair count (default: the label itself, None)."""
    lambdas = check_lambda_grid(lambdas)
    judge = make_judge(judge)
    for label, vecs in vectors.items():
        _check_vectors_for(child, label, vecs)
    task = OpenPrompts(prompts, max_new_tokens=max_new_tokens, chat=chat)
    tok = child.tokenizer
    ev = Evaluator(child, task, scale="relative", batch_size=batch_size, progress=False, operator=operator)
    t0 = time.perf_counter()
    outputs = {"baseline": ev.sweep(task.examples, "test", "baseline", None, [0.0])}
    for label, vecs in vectors.items():
        outputs[label] = ev.sweep(task.examples, "test", f"steer:{label}", vecs, lambdas)
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
    for label in outputs:
        rows = [j for j, (lab, _, _) in enumerate(texts) if lab == label]
        curves[label] = Curve.of(
            kind="baseline" if label == "baseline" else (kinds or {}).get(label, label),
            label=label,
            lambdas=[texts[j][1] for j in rows],
            judge=_split_rows(scores, n, rows),
            nll=_split_rows(nll, n, rows),
            outputs=[[r.output for r in texts[j][2]] for j in rows],
            k=(ks or {}).get(label),
        )
    n_tokens = sum(map(len, comp))
    timing = {"generate_s": t_gen, "score_s": t_score, "rows": len(flat), "generated_tokens": n_tokens,
              "rows_per_s": len(flat) / t_gen, "tokens_per_s": n_tokens / t_gen}
    return curves.pop("baseline"), curves, timing


def run_prompting(
    child,
    judge: JudgeLike,
    prompts: Sequence[str],
    instruction: str,
    *,
    max_new_tokens: int = 32,
    chat: bool = True,
    batch_size: int = 32,
) -> Curve:
    """The prompting baseline: the unsteered child answers each prompt with ``instruction`` appended
    (e.g. "Answer in French."); its texts are judged the same way and costed as the NLL of the text
    given the *plain* prompt (how far asking moves the text, on the steering curves' cost scale).
    One "λ" (0.0): arrays are (1, n_prompts)."""
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"The prompting baseline needs an instruction such as 'Answer in French.', not {instruction!r}.")
    judge = make_judge(judge)
    plain = OpenPrompts(prompts, max_new_tokens=max_new_tokens, chat=chat)
    asked = OpenPrompts([f"{p} {instruction.strip()}" for p in plain.prompts], max_new_tokens=max_new_tokens, chat=chat)
    ev = Evaluator(child, asked, scale="relative", batch_size=batch_size, progress=False)
    outs = [r.output for r in ev.sweep(asked.examples, "test", "prompting", None, [0.0])[0.0]]
    tok = child.tokenizer
    prompt_ids = [plain.prompt_ids(ex, tok) for ex in plain.examples]
    comp = [tok(t, add_special_tokens=False)["input_ids"] for t in outs]
    nll = completion_nll(child, prompt_ids, comp, batch_size=8)
    return Curve.of("prompting", "prompting", [0.0], judge.score(outs)[None], nll[None], [outs])


# ---------------------------------------------------------------------------- shift and cost


def shift_and_cost(curve: Curve, base: Curve, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean judge shift and mean NLL increase per λ (over prompts ``idx``: (n_boot, n) or None, all),
    with the origin (λ = 0: no shift, no cost) prepended along the λ axis."""
    j, b, c, cb = curve.judge, base.judge[0], curve.nll, base.nll[0]
    with np.errstate(invalid="ignore"):
        if idx is None:
            shift, cost = (j - b).mean(-1), _nanmean(c - cb)
        else:
            shift = (j[:, idx] - b[idx]).mean(-1)
            cost = _nanmean(c[:, idx] - cb[idx])
    zero = np.zeros((1, *shift.shape[1:]))
    return np.concatenate([zero, shift]), np.concatenate([zero, cost])


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN (a completion that is empty has no NLL); NaN where all are."""
    finite = np.isfinite(a)
    count = finite.sum(-1)
    total = np.where(finite, a, 0.0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _finite_mean(rows: Sequence[np.ndarray]) -> float:
    """Mean of the finite values of ``rows`` (distinct-n is NaN for texts shorter than n words); NaN if none."""
    values = np.concatenate([np.ravel(r) for r in rows])
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def shift_at_cost(shift: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Judge shift at NLL increase ``budget``, linear in cost along the λ axis (axis 0); cost is
    first made non-decreasing (running maximum), and a curve that never reaches the budget gives its
    shift at the largest λ."""
    cost = np.maximum.accumulate(np.nan_to_num(cost, nan=0.0), axis=0)
    flat_s, flat_c = shift.reshape(len(shift), -1), cost.reshape(len(cost), -1)
    out = np.empty(flat_s.shape[1])
    for k in range(flat_s.shape[1]):
        c, s = flat_c[:, k], flat_s[:, k]
        keep = np.r_[True, np.diff(c) > 0]  # equal costs: keep the first (weakest) λ
        out[k] = np.interp(budget, c[keep], s[keep])
    return out.reshape(shift.shape[1:])


def lam_at_cost(curve: Curve, base: Curve, budget: float) -> float:
    """The operating λ of a curve: where its mean NLL increase reaches ``budget`` (linear in cost
    between grid points, the running maximum of cost as in :func:`shift_at_cost`); the largest λ
    when it never does."""
    _, cost = shift_and_cost(curve, base)
    lams = np.r_[0.0, curve.lambdas]
    return float(shift_at_cost(lams, cost, budget))


def anti_steerability(curve: Curve, base: Curve) -> float:
    """Share of prompts the vector moves the wrong way (Tan et al. 2024, arXiv 2407.12404): per
    prompt, the least-squares slope of the judge score against λ (λ = 0 is the unsteered text) is
    below zero."""
    x = np.r_[0.0, curve.lambdas]
    y = np.vstack([base.judge[:1], curve.judge])  # (1 + n_lambdas, n_prompts)
    xc = x - x.mean()
    slope = xc @ (y - y.mean(0)) / (xc @ xc)
    return float(np.mean(slope < -1e-12))


# ---------------------------------------------------------------------------- at one budget


@dataclass(frozen=True)
class Band:
    """Shifts at the budget of the many vectors of one kind (random directions): mean, 5-95%."""

    n: int
    mean: float
    p05: float
    p95: float
    max_abs: float

    @classmethod
    def of(cls, shifts: Sequence[float]) -> Band:
        """The band of these shifts."""
        s = np.asarray(shifts, dtype=float)
        return cls(len(s), float(s.mean()), float(np.quantile(s, 0.05)), float(np.quantile(s, 0.95)),
                   float(np.abs(s).max()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


@dataclass(frozen=True)
class ExchangeRate:
    """How many child pairs the transferred vector is worth: the child's own vector fitted on k pairs
    shifts the judge by ``shifts[i]`` at the budget; ``pairs`` is the k (log-interpolated, shifts made
    non-decreasing in k) at which it matches the transferred shift, None outside the measured ks
    (``note`` then says "<= k_min" or "> k_max")."""

    ks: list[int]
    shifts: list[float]
    transferred: float
    pairs: float | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


def exchange_rate(ks: Sequence[int], shifts: Sequence[float], transferred: float) -> ExchangeRate:
    """The :class:`ExchangeRate` of a transferred shift against child-own shifts at pair counts ``ks``."""
    order = np.argsort(ks)
    k = np.asarray(ks, dtype=float)[order]
    s = np.maximum.accumulate(np.asarray(shifts, dtype=float)[order])
    if not len(k) or not math.isfinite(transferred):
        return ExchangeRate(list(map(int, k)), s.tolist(), transferred, None, "not measured")
    if transferred <= s[0]:
        return ExchangeRate(list(map(int, k)), s.tolist(), transferred, None, f"<= {int(k[0])}")
    if transferred > s[-1]:
        return ExchangeRate(list(map(int, k)), s.tolist(), transferred, None, f"> {int(k[-1])}")
    keep = np.r_[True, np.diff(s) > 0]
    pairs = float(2 ** np.interp(transferred, s[keep], np.log2(k[keep])))
    return ExchangeRate(list(map(int, k)), s.tolist(), transferred, pairs, f"≈ {pairs:.1f}")


@dataclass(frozen=True)
class PromptingBaseline:
    """The unsteered child asked for the concept in words: its shift and NLL increase [95% CI] over
    the unsteered texts, judged and costed like the steering curves."""

    instruction: str
    shift: Estimate
    nll_increase: Estimate

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"instruction": self.instruction, "shift": self.shift.to_dict(), "nll_increase": self.nll_increase.to_dict()}


@dataclass(frozen=True)
class BudgetComparison:
    """Every kind at one NLL budget: the efficiency (transferred ÷ child_own) [CI], the shift [CI] of
    each single-vector kind, the band of each many-vector kind, and child-own shifts by pair count."""

    budget: float
    efficiency: Estimate | None
    shift: dict[str, Estimate]
    bands: dict[str, Band]
    by_k: dict[int, Estimate]


def _estimate(values: np.ndarray, point: float) -> Estimate:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return Estimate(float(point), float("nan"), float("nan"), len(values))
    lo, hi = np.quantile(finite, [0.025, 0.975])
    return Estimate(float(point), float(lo), float(hi), len(values))


def _boot_index(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def compare_at_budget(
    baseline: Curve, curves: Mapping[str, Curve], *, budget: float | None = None,
    numerator: str = "transferred", denominator: str = "child_own", n_boot: int = 1000, seed: int = 0,
) -> BudgetComparison:
    """Every curve's shift at an equal NLL increase ``budget`` (default: the largest mean NLL
    increase both ``numerator`` and ``denominator`` reach), and the efficiency numerator ÷
    denominator with a bootstrap CI over prompts."""
    _check_positive_int(n_boot, "n_boot")
    by_kind: dict[str, list[Curve]] = {}
    for c in curves.values():
        by_kind.setdefault(c.kind, []).append(c)
    if budget is None:
        reach = [float(np.max(shift_and_cost(by_kind[k][0], baseline)[1])) for k in (numerator, denominator)
                 if k in by_kind]
        budget = min(reach) if reach else float("nan")
    idx = _boot_index(baseline.judge.shape[1], n_boot, seed)
    point = lambda c: float(shift_at_cost(*shift_and_cost(c, baseline), budget))
    at, boot, bands, by_k = {}, {}, {}, {}
    for kind, cs in by_kind.items():
        if kind == "child_own_k":
            for c in cs:
                by_k[c.k] = _estimate(shift_at_cost(*shift_and_cost(c, baseline, idx), budget), point(c))
        elif kind in BAND_KINDS or len(cs) > 1:
            bands[kind] = Band.of([point(c) for c in cs])
        else:
            boot[kind] = shift_at_cost(*shift_and_cost(cs[0], baseline, idx), budget)
            at[kind] = _estimate(boot[kind], point(cs[0]))
    eff = None
    if numerator in at and denominator in at and math.isfinite(budget):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = at[numerator].value / at[denominator].value if at[denominator].value else float("nan")
            eff = _estimate(boot[numerator] / boot[denominator], ratio)
    return BudgetComparison(budget, eff, at, bands, dict(sorted(by_k.items())))


# ---------------------------------------------------------------------------- one concept, one child


@dataclass
class DoseResponse:
    """Dose-response of one concept in one child: baseline, one curve per vector, the comparison at
    one NLL budget, and per vector its operating λ (cost = budget) and anti-steerability.
    ``side_effects`` is filled by :func:`xsteer.fidelity.side_effect.task_side_effects` when asked."""

    concept: str
    judge: str
    child: str
    layers: list[int]
    lambdas: list[float]
    prompts: list[str]
    baseline: Curve
    curves: dict[str, Curve]
    comparison: BudgetComparison
    operating_lam: dict[str, float]
    anti_steerability: dict[str, float]
    exchange_rate: ExchangeRate | None = None
    prompting: PromptingBaseline | None = None
    side_effects: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def budget(self) -> float:
        """The NLL increase (nats/token) at which every kind is compared."""
        return self.comparison.budget

    def plot(self, y: str = "shift"):
        """Concept shift (``y="shift"``) or NLL cost (``"nll_increase"``) against λ for every vector
        kind, with CI bands and the random directions' 5–95% band (plotly)."""
        return dose_response_figure(self, y)

    def _repr_html_(self) -> str:
        eff = self.efficiency
        head = (f"<b>{self.concept or self.judge} in {self.child}</b>, layers {self.layers[0]}–{self.layers[-1]}, "
                f"{len(self.prompts)} prompts; NLL budget {self.budget:.3f}; efficiency "
                + ("–" if eff is None else f"{eff.value:.2f} [{eff.low:.2f}, {eff.high:.2f}]"))
        return head + self.table().to_html(index=False, float_format=lambda x: f"{x:.3f}")

    @property
    def efficiency(self) -> Estimate | None:
        """Transferred ÷ child-own shift at the budget [95% CI], None without both."""
        return self.comparison.efficiency

    @property
    def shift_at_budget(self) -> dict[str, Estimate]:
        """Shift [95% CI] at the budget of each single-vector kind."""
        return self.comparison.shift

    @property
    def bands_at_budget(self) -> dict[str, Band]:
        """Shift band at the budget of each many-vector kind (random, mapped_random)."""
        return self.comparison.bands

    def kind_curves(self, kind: str) -> list[Curve]:
        """Curves of one vector kind ("transferred", "child_own", "random", ...)."""
        return [c for c in self.curves.values() if c.kind == kind]

    def table(self):
        """DataFrame: one row per kind (child_own_k: per k) × λ: mean shift [CI] and NLL increase
        [CI] over prompts (many-vector kinds: mean over vectors, its 5–95% band), distinct-1/2."""
        import pandas as pd

        n_boot, seed = self.settings.get("n_boot", 1000), self.settings.get("seed", 0)
        idx = _boot_index(len(self.prompts), n_boot, seed)
        groups: dict[tuple[str, int | None], list[Curve]] = {}
        for c in self.curves.values():
            groups.setdefault((c.kind, c.k), []).append(c)
        rows = []
        for (kind, k), cs in groups.items():
            pts = [shift_and_cost(c, self.baseline) for c in cs]
            boots = [shift_and_cost(c, self.baseline, idx) for c in cs]
            for i, lam in enumerate(self.lambdas, start=1):
                sb = np.mean([b[0][i] for b in boots], axis=0)
                cb = np.mean([b[1][i] for b in boots], axis=0)
                each = [p[0][i] for p in pts]
                rows.append({
                    "kind": kind, "k": k, "n_vectors": len(cs), "lam": lam,
                    "shift": float(np.mean(each)), "shift_low": float(np.quantile(sb, 0.025)),
                    "shift_high": float(np.quantile(sb, 0.975)),
                    "shift_p05": float(np.quantile(each, 0.05)), "shift_p95": float(np.quantile(each, 0.95)),
                    "nll_increase": float(np.mean([p[1][i] for p in pts])),
                    "nll_low": float(np.nanquantile(cb, 0.025)) if np.isfinite(cb).any() else float("nan"),
                    "nll_high": float(np.nanquantile(cb, 0.975)) if np.isfinite(cb).any() else float("nan"),
                    "distinct1": _finite_mean([c.distinct1[i - 1] for c in cs]),
                    "distinct2": _finite_mean([c.distinct2[i - 1] for c in cs]),
                })
        return pd.DataFrame(rows)

    def vector_table(self):
        """DataFrame, one row per vector: kind, k, operating λ, shift at the budget, anti-steerability,
        and (when measured) the task accuracy change at the operating λ."""
        import pandas as pd

        point = lambda c: float(shift_at_cost(*shift_and_cost(c, self.baseline), self.budget))
        effects = getattr(self.side_effects, "by_label", {}) or {}
        rows = []
        for label, c in self.curves.items():
            row = {"label": label, "kind": c.kind, "k": c.k, "operating_lam": self.operating_lam[label],
                   "shift_at_budget": point(c), "anti_steerability": self.anti_steerability[label]}
            if label in effects:
                e = effects[label]
                row.update({"task_delta": e.delta.value, "task_delta_low": e.delta.low, "task_delta_high": e.delta.high})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (means per λ; outputs of the baseline and single-vector curves)."""
        c = self.comparison
        return {
            "concept": self.concept, "judge": self.judge, "child": self.child, "layers": self.layers,
            "lambdas": self.lambdas, "prompts": self.prompts, "budget_nll": c.budget,
            "efficiency": None if c.efficiency is None else c.efficiency.to_dict(),
            "shift_at_budget": {k: v.to_dict() for k, v in c.shift.items()},
            "bands_at_budget": {k: v.to_dict() for k, v in c.bands.items()},
            "child_own_by_k": {str(k): v.to_dict() for k, v in c.by_k.items()},
            "exchange_rate": None if self.exchange_rate is None else self.exchange_rate.to_dict(),
            "prompting": None if self.prompting is None else self.prompting.to_dict(),
            "operating_lam": self.operating_lam, "anti_steerability": self.anti_steerability,
            "side_effects": None if self.side_effects is None else self.side_effects.to_dict(),
            "baseline": self.baseline.to_dict(outputs=True),
            "curves": [c.to_dict(outputs=c.kind not in BAND_KINDS) for c in self.curves.values()],
            "table": self.table().to_dict("records"),
            "settings": self.settings, "timing": self.timing,
        }


def label_vectors(vectors_by_kind: Mapping[str, Any]) -> tuple[dict[str, SteeringVectors], dict[str, str], dict[str, int]]:
    """(label -> vectors, label -> kind, label -> k) from {kind: vectors | [vectors, ...] | {k: vectors}}:
    a single vector's label is its kind, many vectors (and every band kind) are "kind0", "kind1", ...,
    child_own_k vectors "child_own_k4", ..."""
    if not isinstance(vectors_by_kind, Mapping) or not vectors_by_kind:
        raise ValueError("dose_response needs at least one vector kind, e.g. {'child_own': vectors}.")
    if "own" in vectors_by_kind:
        raise ValueError("The kind 'own' is now 'child_own' (docs/glossary.md); rename the key.")
    labelled, kinds, ks = {}, {}, {}
    for kind, value in vectors_by_kind.items():
        if kind == "child_own_k":
            if not isinstance(value, Mapping) or not value:
                raise TypeError("'child_own_k' takes {k: vectors fitted on k child pairs}, e.g. {4: v4, 16: v16}.")
            for k, v in sorted(value.items()):
                label = f"child_own_k{_check_positive_int(k, 'k (child pairs)')}"
                labelled[label], kinds[label], ks[label] = v, kind, int(k)
            continue
        vs = list(value) if isinstance(value, (list, tuple)) else [value]
        if not vs:
            raise ValueError(f"dose_response got no vectors of kind {kind!r}; drop the kind or give vectors.")
        for i, v in enumerate(vs):
            label = kind if len(vs) == 1 and kind not in BAND_KINDS else f"{kind}{i}"
            labelled[label], kinds[label] = v, kind
    return labelled, kinds, ks


def dose_response(
    child,
    vectors_by_kind: Mapping[str, Any],
    judge: JudgeLike | None = None,
    *,
    concept: str | Concept = "",
    layers: Sequence[int] | None = None,
    lambdas: Sequence[float] = DEFAULT_LAMBDAS,
    prompts: Sequence[str] = NEUTRAL_PROMPTS,
    max_new_tokens: int = 32,
    chat: bool = True,
    budget: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 32,
    operator: str | Operator = "add",
    instruction: str | None = None,
    child_own_pairs: int | None = None,
) -> DoseResponse:
    """Dose-response of ``child`` under each vector kind (e.g. {"transferred": v, "child_own": w,
    "random": [r1, r2, ...], "mapped_random": [...], "wrong_concept": u, "child_own_k": {4: w4}}),
    steered at ``layers`` (default: the layers every vector has) by ``operator`` (see
    ``xsteer.operators``; λ is its strength), judged by ``judge`` (a built-in name, an object with
    ``.score(texts)`` or a callable; default: the judge of ``concept`` when it is a ``Concept``).
    Efficiency: "transferred" ÷ "child_own" at an equal NLL increase ``budget`` (default: the largest
    both reach). ``instruction`` (default: the concept's) adds the prompting baseline;
    ``child_own_pairs`` (the pairs "child_own" was fitted on) adds it to the exchange rate's ks."""
    if isinstance(concept, Concept):
        judge = judge if judge is not None else concept.judge
        instruction = instruction if instruction is not None else concept.instruction
        if judge is None:
            raise ValueError(
                f"Concept {concept.name!r} has no judge; give it one (concept_from_pairs(..., judge=...) or "
                "load_concept(..., judge=...)) or pass judge= (a name, an object with .score(texts), a function)."
            )
    name = concept.name if isinstance(concept, Concept) else str(concept)
    lambdas = check_lambda_grid(lambdas)
    budget = check_budget(budget)
    prompts = check_prompts(prompts)
    _check_positive_int(n_boot, "n_boot")
    _check_positive_int(max_new_tokens, "max_new_tokens")
    _check_positive_int(batch_size, "batch_size")
    operator = operator_from_spec(operator)
    judge = make_judge(judge)
    labelled, kinds, ks = label_vectors(vectors_by_kind)
    for label, v in labelled.items():
        _check_vectors_for(child, label, v)
    if layers is None:
        layers = sorted(set.intersection(*(set(v.layers) for v in labelled.values())))
    layers = sorted({int(l) for l in layers})
    if not layers:
        raise ValueError("No steering layer: layers= is empty or the vectors share none; pass layers= that every "
                         "vector has, e.g. layers=[24, 25, 26].")
    for label, v in labelled.items():
        missing = [l for l in layers if l not in v.directions]
        if missing:
            raise ValueError(
                f"The {label!r} vectors have no direction at layers {missing} (they have {v.layers}); pick "
                "steering layers every vector covers (e.g. a layer map that reaches them)."
            )
    labelled = {label: v.select(layers) for label, v in labelled.items()}
    t0 = time.perf_counter()
    base, curves, timing = run_curves(child, labelled, judge, prompts, lambdas, max_new_tokens=max_new_tokens,
                                      chat=chat, batch_size=batch_size, kinds=kinds, ks=ks, operator=operator)
    comparison = compare_at_budget(base, curves, budget=budget, n_boot=n_boot, seed=seed)
    rate = None
    if comparison.by_k and "transferred" in comparison.shift:
        by_k = {k: e.value for k, e in comparison.by_k.items()}
        if child_own_pairs is not None and "child_own" in comparison.shift:
            by_k[_check_positive_int(child_own_pairs, "child_own_pairs")] = comparison.shift["child_own"].value
        rate = exchange_rate(list(by_k), list(by_k.values()), comparison.shift["transferred"].value)
    prompting = None
    if instruction is not None:
        asked = run_prompting(child, judge, prompts, instruction, max_new_tokens=max_new_tokens, chat=chat,
                              batch_size=batch_size)
        idx = _boot_index(len(prompts), n_boot, seed)
        shift, cost = (x[1:] for x in shift_and_cost(asked, base))
        bshift, bcost = (x[1:] for x in shift_and_cost(asked, base, idx))
        prompting = PromptingBaseline(instruction, _estimate(bshift[0], shift[0]), _estimate(bcost[0], cost[0]))
    budget_value = comparison.budget
    operating = {label: (lam_at_cost(c, base, budget_value) if math.isfinite(budget_value) else float("nan"))
                 for label, c in curves.items()}
    anti = {label: anti_steerability(c, base) for label, c in curves.items()}
    timing["total_s"] = time.perf_counter() - t0
    return DoseResponse(
        concept=name, judge=judge.name, child=str(child.cfg.model_name), layers=list(layers), lambdas=lambdas,
        prompts=prompts, baseline=base, curves=curves, comparison=comparison, operating_lam=operating,
        anti_steerability=anti, exchange_rate=rate, prompting=prompting,
        settings={"max_new_tokens": max_new_tokens, "chat": chat, "n_boot": n_boot, "seed": seed, "scale": "relative",
                  "operator": operator.to_dict(), "instruction": instruction,
                  "n_vectors": {k: sum(1 for x in kinds.values() if x == k) for k in dict.fromkeys(kinds.values())}},
        timing=timing,
    )
