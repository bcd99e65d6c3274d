"""Steering fidelity (behaviour): does a transferred vector move the child's *text* toward the concept
as far as the child's own vector does, at the same cost in fluency — and further than what the same
transfer makes of random parent directions or of another concept?

Per concept with a judge: the child's most steerable band for its own vector (``where``), a transfer
fitted on anchors with the concept held out, and the dose-response (``dose``) of the transferred
vector beside every control — ``child_own`` (all train pairs, and k pairs: the exchange rate),
``random``, ``mapped_random``, ``wrong_concept``, the prompting baseline — with each vector's
anti-steerability and, when asked, its side effect on ARC-Easy at its operating λ.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from xsteer.activations import collect_activations
from xsteer.concepts import CONCEPTS, Concept, load_concept
from xsteer.concepts.base import judge_name
from xsteer.extract import random_vectors
from xsteer.fidelity.controls import carry, pair_subset, vectors_from_acts
from xsteer.fidelity.dose import (
    NEUTRAL_PROMPTS,
    DoseResponse,
    check_budget,
    check_lambda_grid,
    check_prompts,
    dose_response,
    label_vectors,
)
from xsteer.fidelity.readout import check_anchor_mode, concept_anchor_texts, default_anchor_texts
from xsteer.fidelity.side_effect import task_side_effects
from xsteer.fidelity.strength import check_readable
from xsteer.fidelity.where import steerable_layers, targeted_map
from xsteer.operators import Operator, operator_from_spec
from xsteer.transfer import ModelInfo, Transfer, anchor_groups, anchor_hash, collect_anchor_activations
from xsteer.transfer import anchor_texts as clean_anchor_texts

__all__ = ["HoldOut", "SteeringFidelity", "format_markdown", "resolve_concepts", "steer_concept", "steering_fidelity"]

HoldOut = Callable[[Sequence[str], Concept], Sequence[str]]
"""The anchors a concept's transfer may be fitted on: (anchor texts, concept) -> the texts kept."""


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
        """DataFrame, one row per concept: the efficiency [CI], every kind's shift at the budget, the
        exchange rate, the prompting baseline, anti-steerability and side effects per kind."""
        import pandas as pd

        return pd.DataFrame([headline_row(r) for r in self.results])

    def plot(self, concept: str | None = None, y: str = "shift"):
        """The dose-response figure of ``concept`` (default: the first), see :meth:`DoseResponse.plot`."""
        found = [r for r in self.results if concept in (None, r.concept)]
        if not found:
            raise ValueError(f"No concept {concept!r} here; this result has {[r.concept for r in self.results]}.")
        return found[0].plot(y)

    def _repr_html_(self) -> str:
        head = f"<b>Steering fidelity {self.parent} → {self.child}</b>"
        return head + self.table().to_html(index=False, float_format=lambda x: f"{x:.3f}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"parent": self.parent, "child": self.child, "results": [r.to_dict() for r in self.results],
                "where": self.where, "transfer": self.transfer, "settings": self.settings, "timing": self.timing}

    def to_markdown(self) -> str:
        """The report (see :func:`format_markdown`)."""
        return format_markdown(self)

    def write(self, out_dir: str | Path, stem: str = "steering") -> dict[str, Path]:
        """Write ``{stem}.md`` and ``{stem}.json`` into ``out_dir``; returns their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        md, js = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
        md.write_text(format_markdown(self), encoding="utf-8")
        js.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        return {"markdown": md, "json": js}


def headline_row(r: DoseResponse) -> dict[str, Any]:
    """One concept's dose-response as flat columns (kinds by their glossary names)."""
    row: dict[str, Any] = {"concept": r.concept, "judge": r.judge, "layers": f"{r.layers[0]}–{r.layers[-1]}",
                           "budget_nll": r.budget}
    for k, e in r.shift_at_budget.items():
        row.update({k: e.value, f"{k}_low": e.low, f"{k}_high": e.high})
    for k, b in r.bands_at_budget.items():
        row.update({f"{k}_mean": b.mean, f"{k}_p05": b.p05, f"{k}_p95": b.p95})
    if r.efficiency is not None:
        row.update({"efficiency": r.efficiency.value, "efficiency_low": r.efficiency.low,
                    "efficiency_high": r.efficiency.high})
    if r.exchange_rate is not None:
        row.update({"exchange_rate_pairs": r.exchange_rate.pairs, "exchange_rate": r.exchange_rate.note})
    if r.prompting is not None:
        row.update({"prompting": r.prompting.shift.value, "prompting_nll_increase": r.prompting.nll_increase.value})
    for label in ("transferred", "child_own"):
        if label in r.anti_steerability:
            row[f"anti_steerability_{label}"] = r.anti_steerability[label]
    if r.side_effects is not None:
        row["task_baseline"] = r.side_effects.baseline.value
        for label, e in r.side_effects.by_label.items():
            row[f"task_delta_{label}"] = e.delta.value
    return row


def resolve_concepts(concepts, *, n: int, seed: int, data_dir) -> list[Concept]:
    """Concepts from names / ``Concept`` objects / a readout ``FidelityResult``, checked."""
    if hasattr(concepts, "concepts"):  # a readout FidelityResult
        concepts = [c.concept for c in concepts.concepts]
    if isinstance(concepts, (str, Concept)):
        concepts = [concepts]
    out = []
    for c in concepts:
        if isinstance(c, Concept):
            out.append(c)
        elif isinstance(c, str):
            out.append(load_concept(c, n=n, seed=seed, data_dir=data_dir))
        else:
            raise TypeError(f"A concept is a name (e.g. 'sentiment'), a path or a Concept, not a {type(c).__name__}.")
    if not out:
        raise ValueError("No concepts given; pass e.g. concepts=['sentiment'].")
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"Concept names repeat ({names}); every concept needs its own name.")
    return out


def _fallback_wrong(concept: Concept, n: int, seed: int) -> Concept:
    other = next(name for name in CONCEPTS if name != concept.name)
    return load_concept(other, n=n, seed=seed)


def _check_k_pairs(k_pairs: Sequence[int]) -> list[int]:
    """Sorted distinct pair counts k >= 1 of the child_own_k control."""
    given = list(k_pairs or [])
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in given):
        raise ValueError(f"k_pairs must be ints >= 1 (child pairs for the exchange rate), e.g. (4, 16), not {given!r}.")
    return sorted(set(given))


def steer_concept(
    parent,
    child,
    concept: Concept,
    transfer,
    band: Sequence[int],
    *,
    wrong_concepts: Sequence[Concept] = (),
    lambdas: Sequence[float] = (0.02, 0.04, 0.08, 0.16, 0.32),
    prompts: Sequence[str] = NEUTRAL_PROMPTS[:16],
    n_random: int = 10,
    n_mapped_random: int = 10,
    k_pairs: Sequence[int] = (4, 16),
    prompting: bool = True,
    side_effect_items: int = 0,
    data_dir=None,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 32,
    operator: str | Operator = "add",
    budget: float | None = None,
) -> tuple[DoseResponse, dict[str, Any]]:
    """The dose-response of one concept through one fitted ``transfer`` at the child layers ``band``
    (those the transfer reaches), with every control; returns it and a description of the transfer."""
    band = [l for l in band if l in transfer.layer_map_.mapping_]
    if not band:
        raise ValueError(
            f"The transfer's layer map reaches none of the steering layers; it maps child layers "
            f"{sorted(transfer.layer_map_.mapping_)}. Use a layer map that reaches them (e.g. targeted_map(band, ...))."
        )
    ks = _check_k_pairs(k_pairs)
    parent_layers = sorted({transfer.layer_map_.mapping_[l] for l in band})
    p_info, c_info = ModelInfo.from_model(parent), ModelInfo.from_model(child)
    pvec = vectors_from_acts(*_train_acts(parent, concept, parent_layers), p_info, seed=seed, data_hash=concept.data_hash)
    wrong = {w.name: vectors_from_acts(*_train_acts(parent, w, parent_layers), p_info, seed=seed, data_hash=w.data_hash)
             for w in wrong_concepts}
    pos, neg = _train_acts(child, concept, band)
    child_own = vectors_from_acts(pos, neg, c_info, seed=seed, data_hash=concept.data_hash)
    n_train = len(concept.train)
    by_k = {k: vectors_from_acts(pos, neg, c_info, seed=seed, pairs=pair_subset(n_train, k, seed)) for k in ks if k < n_train}
    carried = carry(transfer, pvec, (pos, neg), wrong_concept=wrong, n_mapped_random=n_mapped_random, seed=seed)
    kinds: dict[str, Any] = {"transferred": carried.transferred, "child_own": child_own}
    if by_k:
        kinds["child_own_k"] = by_k
    if n_random:
        kinds["random"] = [random_vectors(child_own, seed=1000 * seed + k + 1) for k in range(n_random)]
    if carried.mapped_random:
        kinds["mapped_random"] = carried.mapped_random
    if carried.wrong_concept:
        kinds["wrong_concept"] = list(carried.wrong_concept.values())
    result = dose_response(child, kinds, concept=concept, layers=band, lambdas=lambdas, prompts=prompts,
                           max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size, operator=operator,
                           budget=budget, instruction=None if not prompting else concept.instruction,
                           child_own_pairs=n_train)
    if side_effect_items:
        labelled, kind_of, _ = label_vectors(kinds)
        first = {}
        for label, kind in kind_of.items():
            if kind != "child_own_k":
                first.setdefault(kind, label)
        vecs = {label: labelled[label].select(band) for label in first.values()}
        result.side_effects = task_side_effects(child, vecs, {l: result.operating_lam[l] for l in vecs},
                                                n_items=side_effect_items, data_dir=data_dir, operator=operator,
                                                batch_size=batch_size, seed=seed)
    moved = carried.transferred
    about = {"layer_pairs": moved.provenance["layer_pairs"], "r2": moved.provenance["r2"],
             "n_anchor_rows": transfer.n_anchors_, "layer_map": transfer.layer_map.name,
             "adapter": transfer.adapter.name, "wrong_concepts": list(wrong),
             "cos_child_own": {str(l): float(moved[l] @ child_own[l]) for l in band}}
    return result, about


def steering_fidelity(
    parent,
    child,
    concepts,
    *,
    lambdas: Sequence[float] = (0.02, 0.04, 0.08, 0.16, 0.32),
    layers: Sequence[int] | None = None,
    layer_map: str = "targeted",
    adapter: str = "difference",
    n_prompts: int = 16,
    n_random: int = 10,
    n_mapped_random: int | None = None,
    wrong_concepts: Sequence[str | Concept] | None = None,
    k_pairs: Sequence[int] = (4, 16),
    prompting: bool = True,
    side_effect_items: int = 0,
    max_new_tokens: int = 32,
    where_prompts: int = 8,
    where_lambdas: Sequence[float] = (0.08, 0.32),
    n: int = 256,
    anchor_mode: str = "leave_concept_out",
    hold_out: HoldOut | None = None,
    seed: int = 0,
    data_dir=None,
    batch_size: int = 32,
    progress: bool = False,
    operator: str | Operator = "add",
    budget: float | None = None,
) -> SteeringFidelity:
    """Dose-response of transferred vs every control in ``child`` for every concept with a judge
    (``concepts``: names, ``Concept``s — a user's concept brings its own judge —, or a readout
    ``FidelityResult``).

    Steering layers: ``layers``, else the child's most steerable band for its own vector
    (``xsteer.fidelity.where.steerable_layers``). Transferred vectors: mean-difference parent
    vectors carried by ``Transfer(layer_map, adapter)``: a state-fitted adapter on last-token anchor
    activations, a difference-fitted one (the default, as ``Transfer()``) through ``Transfer.fit``, which
    learns from the lexicon anchors' contrasts (unlabelled anchors reach none) with the concept's topic
    held out;
    ``layer_map="targeted"`` maps the steering layers to proportionally placed parent layers. Each
    concept's transfer is fitted on the anchors ``hold_out(anchor_texts, concept)`` keeps (default
    :func:`xsteer.fidelity.readout.concept_anchor_texts` with ``anchor_mode``: without the concept's
    own texts). Controls: ``n_random`` random child directions, ``n_mapped_random`` (default
    ``n_random``) random parent directions and ``wrong_concepts`` (default: the run's other
    concepts) carried by the same transfer, the child's own vector on ``k_pairs`` pairs, the
    prompting baseline (``prompting``, the concept's instruction), and with ``side_effect_items`` > 0
    the ARC-Easy accuracy change at each vector's operating λ. ``operator`` is how every vector
    enters the stream; ``budget`` the NLL increase (nats/token) at which shifts are compared
    (default: per concept, the largest both transferred and child-own reach)."""
    t0 = time.perf_counter()
    lambdas = check_lambda_grid(lambdas)
    where_lambdas = check_lambda_grid(where_lambdas)
    operator = operator_from_spec(operator)
    budget = check_budget(budget)
    check_anchor_mode(anchor_mode)
    if hold_out is not None and not callable(hold_out):
        raise TypeError(f"hold_out must be a function (anchor texts, concept) -> kept texts, not {type(hold_out).__name__}.")
    for name, value, low in (("n_prompts", n_prompts, 2), ("n_random", n_random, 0), ("where_prompts", where_prompts, 2),
                             ("side_effect_items", side_effect_items, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, not {value!r}.")
    if n_prompts > len(NEUTRAL_PROMPTS):
        raise ValueError(f"n_prompts={n_prompts} exceeds the {len(NEUTRAL_PROMPTS)} built-in neutral prompts; pass fewer.")
    n_mapped_random = n_random if n_mapped_random is None else n_mapped_random
    _check_k_pairs(k_pairs)
    concepts = resolve_concepts(concepts, n=n, seed=seed, data_dir=data_dir)
    judged = [c for c in concepts if c.judge is not None]
    if not judged:
        raise ValueError(
            f"None of the concepts {[c.name for c in concepts]} has a judge; use 'sentiment' or 'language', or give "
            "your concept one (concept_from_pairs(..., judge=obj_with_score) / load_concept(..., judge=...))."
        )
    if layers is not None:
        layers = sorted({int(l) for l in layers})
        if not layers:
            raise ValueError("layers is empty; pass steering layers such as [24, 25, 26] or None to search for a band.")
    prompts = check_prompts(NEUTRAL_PROMPTS[:n_prompts])
    for c in judged:
        for m in (parent, child):
            check_readable(m, c)
    others = resolve_concepts(wrong_concepts, n=n, seed=seed, data_dir=data_dir) if wrong_concepts else None
    texts, anchors = default_anchor_texts(concepts, data_dir=data_dir, seed=seed)
    texts = clean_anchor_texts(texts)
    acts = None  # the anchors' last-token states, read when a state-fitted adapter first needs them
    infos = [ModelInfo.from_model(m) for m in (parent, child)]
    t_anchor = time.perf_counter() - t0
    keep_fn = hold_out or (lambda t, c: concept_anchor_texts(t, c, anchor_mode))
    results, where, transfers = [], {}, {}
    for concept in judged:
        band = layers
        if band is None:
            own = vectors_from_acts(*_train_acts(child, concept), infos[1], seed=seed)
            found = steerable_layers(child, own, concept.judge, prompts=prompts[:where_prompts], lambdas=where_lambdas,
                                     max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
            where[concept.name] = found.to_dict()
            band = found.best
        spec = targeted_map(band, infos[0].n_layers, infos[1].n_layers) if layer_map == "targeted" else layer_map
        kept = _kept_anchors(keep_fn, texts, concept)
        tr = Transfer(spec, adapter)
        if tr.reads_states:
            if acts is None:
                acts = [collect_anchor_activations(m, texts, None, ("last",), 16, progress) for m in (parent, child)]
            rows = torch.tensor([i for i, t in enumerate(texts) if t in set(kept)])
            sub = [{l: a[rows] for l, a in side.items()} for side in acts]
            tr.fit_activations(sub[0], sub[1], infos[0], infos[1], groups=anchor_groups(len(kept), 1),
                               anchor_hash=anchor_hash(kept, ("last",)))
        else:  # learns from labelled contrasts only: the lexicon anchors, the concept's topic held out
            tr.fit(parent, child, kept, hold_out=concept, batch_size=batch_size, progress=progress)
        wrong = [w for w in (others or concepts) if w.name != concept.name] or [_fallback_wrong(concept, n, seed)]
        result, about = steer_concept(
            parent, child, concept, tr, band, wrong_concepts=wrong, lambdas=lambdas, prompts=prompts,
            n_random=n_random, n_mapped_random=n_mapped_random, k_pairs=k_pairs, prompting=prompting,
            side_effect_items=side_effect_items, data_dir=data_dir, max_new_tokens=max_new_tokens, seed=seed,
            batch_size=batch_size, operator=operator, budget=budget)
        transfers[concept.name] = {**about, "anchor_mode": anchor_mode if hold_out is None else getattr(hold_out, "__name__", "hold_out"),
                                   "layer_map": layer_map}
        results.append(result)
    return SteeringFidelity(
        parent=infos[0].name, child=infos[1].name, results=results, where=where, transfer=transfers,
        settings={"lambdas": lambdas, "layers": layers, "layer_map": layer_map, "adapter": adapter,
                  "n_prompts": n_prompts, "n_random": n_random, "n_mapped_random": n_mapped_random,
                  "k_pairs": list(k_pairs), "prompting": prompting, "side_effect_items": side_effect_items,
                  "max_new_tokens": max_new_tokens, "where_prompts": where_prompts, "where_lambdas": where_lambdas,
                  "n": n, "seed": seed, "anchors": anchors, "anchor_mode": anchor_mode, "method": "mean_diff",
                  "pooling": "last" if Transfer({0: 0}, adapter).reads_states else ["last", "mean"],
                  "operator": operator.to_dict(), "budget": budget,
                  "judges": {c.name: judge_name(c.judge) for c in judged}},
        timing={"anchors_s": t_anchor, "total_s": time.perf_counter() - t0},
    )


def _train_acts(model, concept: Concept, layers: Sequence[int] | None = None):
    """(positive, negative) last-token activations of the concept's train pairs: layer -> (n_pairs, d)."""
    a = collect_activations(model, concept.texts("train"), layers, batch_size=16)
    m = len(concept.train)
    return {l: x[:m] for l, x in a.items()}, {l: x[m:] for l, x in a.items()}


def _kept_anchors(keep_fn: HoldOut, texts: Sequence[str], concept: Concept) -> list[str]:
    kept = list(dict.fromkeys(keep_fn(list(texts), concept)))
    unknown = [t for t in kept if t not in set(texts)]
    if unknown:
        raise ValueError(
            f"The hold-out function returned {len(unknown)} texts that are not among the anchors (e.g. {unknown[0][:50]!r}); "
            "it must return a subset of the anchor texts it was given."
        )
    if len(kept) < 8:
        raise ValueError(f"Only {len(kept)} anchor texts remain for concept {concept.name!r} after the hold-out; "
                         "a transfer needs >= 8. Add anchors (data_dir with ARC-Easy) or hold out less.")
    return kept


def format_markdown(result: SteeringFidelity) -> str:
    """Markdown of a steering-fidelity result: headline table with every control, where-to-steer
    bands, per-vector table, per-λ table."""
    params = dict(result.settings.get("operator", {"name": "add"}))
    name = params.pop("name")
    op = f"{name} ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name
    ci = lambda e: f"{e.value:+.3f} [{e.low:+.3f}, {e.high:+.3f}]" if e is not None else "–"
    band = lambda b: f"{b.mean:+.3f} ({b.p05:+.3f}, {b.p95:+.3f})" if b is not None else "–"
    out = [f"# Steering fidelity: {result.parent} → {result.child}, operator {op}", "",
           "Shifts of the judge's score at one NLL increase (the budget); bands: mean (5%, 95%) over vectors.", "",
           "| concept | layers | NLL budget | transferred [95% CI] | child_own [95% CI] | efficiency [95% CI] "
           "| random | mapped_random | wrong_concept | exchange rate (child pairs) | prompting |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result.results:
        s, b = r.shift_at_budget, r.bands_at_budget
        eff = f"{r.efficiency.value:.2f} [{r.efficiency.low:.2f}, {r.efficiency.high:.2f}]" if r.efficiency else "–"
        wrong = ci(s["wrong_concept"]) if "wrong_concept" in s else band(b.get("wrong_concept"))
        rate = r.exchange_rate.note if r.exchange_rate else "–"
        prompt = (f"{r.prompting.shift.value:+.3f} (ΔNLL {r.prompting.nll_increase.value:+.3f})" if r.prompting else "–")
        out.append(f"| {r.concept} | {r.layers[0]}–{r.layers[-1]} | {r.budget:.3f} | {ci(s.get('transferred'))} "
                   f"| {ci(s.get('child_own'))} | {eff} | {band(b.get('random'))} | {band(b.get('mapped_random'))} "
                   f"| {wrong} | {rate} | {prompt} |")
    for name, w in result.where.items():
        out += ["", f"## Where {result.child} steers {name} (child_own vector; score = max shift / max(NLL increase, 0.1))", "",
                "| band | " + " | ".join(f"shift@{f} | ΔNLL@{f}" for f in w["bands"][0]["lambdas"]) + " | score |",
                "|---|" + "---|---|" * len(w["bands"][0]["lambdas"]) + "---|"]
        for b in w["bands"]:
            cells = " | ".join(f"{s:+.3f} | {c:+.3f}" for s, c in zip(b["shift"], b["cost"]))
            out.append(f"| {b['layers'][0]}–{b['layers'][-1]} | {cells} | {b['score']:+.3f} |")
    for r in result.results:
        effects = r.side_effects
        title = f"## {r.concept}: per vector (operating λ: where the NLL increase reaches {r.budget:.3f})"
        side = (f"; {effects.task} accuracy change at the operating λ on {effects.n_items} items, unsteered "
                f"{effects.baseline.value:.3f}" if effects else "")
        out += ["", title + side, "", "| vector | kind | k | operating λ | shift at budget | anti-steerability | task Δ [95% CI] |",
                "|---|---|---|---|---|---|---|"]
        for row in r.vector_table().to_dict("records"):
            task = (f"{row['task_delta']:+.3f} [{row['task_delta_low']:+.3f}, {row['task_delta_high']:+.3f}]"
                    if "task_delta" in row and row["task_delta"] == row["task_delta"] else "–")
            k = "–" if row["k"] is None or row["k"] != row["k"] else int(row["k"])
            out.append(f"| {row['label']} | {row['kind']} | {k} | {row['operating_lam']:.3f} | {row['shift_at_budget']:+.3f} "
                       f"| {row['anti_steerability']:.2f} | {task} |")
        out += ["", f"## {r.concept}: per λ ({len(r.prompts)} prompts, layers {r.layers[0]}–{r.layers[-1]})", "",
                "| kind | k | λ | shift [95% CI] | 5–95% over vectors | ΔNLL [95% CI] | distinct-1 | distinct-2 |",
                "|---|---|---|---|---|---|---|---|"]
        for row in r.table().to_dict("records"):
            spread = f"{row['shift_p05']:+.3f}, {row['shift_p95']:+.3f}" if row["n_vectors"] > 1 else "–"
            k = "–" if row["k"] is None or row["k"] != row["k"] else int(row["k"])
            out.append(f"| {row['kind']} | {k} | {row['lam']} | {row['shift']:+.3f} [{row['shift_low']:+.3f}, "
                       f"{row['shift_high']:+.3f}] | {spread} | {row['nll_increase']:+.3f} [{row['nll_low']:+.3f}, "
                       f"{row['nll_high']:+.3f}] | {row['distinct1']:.3f} | {row['distinct2']:.3f} |")
    out += ["", f"Transfer: {json.dumps(result.transfer)}", "", f"Settings: {json.dumps(result.settings, default=str)}", "",
            f"Timing: {json.dumps({k: round(v, 2) for k, v in result.timing.items()})}; per concept: "
            + json.dumps({r.concept: {k: round(v, 2) for k, v in r.timing.items()} for r in result.results}), ""]
    return "\n".join(out)
