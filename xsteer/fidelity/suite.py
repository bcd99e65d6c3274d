"""The fidelity suite: for every transfer estimator, concept and direction (parent → child and back),
does the concept arrive — readout AUROC averaged over all child layers, steering efficiency at equal
fluency — beside every control, with anti-steerability and the side effect on ARC-Easy?

Each estimator is fitted per concept and direction on anchors with that concept held out
(``hold_out``, default :func:`xsteer.fidelity.readout.concept_anchor_texts`), through its own
``fit(parent, child, anchor_texts)``; nothing of the concept's texts reaches a fit. Steering is at the
band where the child's own vector steers best (found once per concept and direction, shared by the
estimators); an estimator whose layer map does not reach that band gets no steering number, and the
row says so.

``fidelity_suite(parent, child, concepts, transfers={"name": Transfer(...) or factory}, config=
SuiteConfig.quick())`` returns a :class:`SuiteResult` (``.table()``, ``.to_dict()``,
``.to_markdown()``).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

from xsteer.concepts import Concept
from xsteer.fidelity.controls import vectors_from_acts
from xsteer.fidelity.dose import NEUTRAL_PROMPTS, DoseResponse, check_budget, check_lambda_grid
from xsteer.fidelity.readout import (
    ConceptReadout,
    collect_model_acts,
    concept_anchor_texts,
    default_anchor_texts,
    readout_from_activations,
)
from xsteer.fidelity.steering import HoldOut, headline_row, resolve_concepts, steer_concept
from xsteer.fidelity.strength import check_readable
from xsteer.fidelity.where import steerable_layers
from xsteer.figures import suite_figure
from xsteer.transfer import ModelInfo, Transfer

__all__ = ["DIRECTIONS", "SuiteConfig", "SuiteResult", "SuiteRow", "fidelity_suite"]

DIRECTIONS = ("parent_to_child", "child_to_parent")
"""The two directions a suite can run: the first model's concepts into the second, and back."""

TransferSpec = Any
"""A ``Transfer`` (an unfitted template, copied for every fit) or a factory: a function of no
arguments returning a fresh unfitted ``Transfer``."""


@dataclass(frozen=True)
class SuiteConfig:
    """Sizes of a suite run; :meth:`quick` for CI, the defaults for the full table."""

    n_pairs: int = 256
    n_anchor_questions: int = 256
    lambdas: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16, 0.32)
    n_prompts: int = 16
    max_new_tokens: int = 32
    where_prompts: int = 8
    where_lambdas: tuple[float, ...] = (0.08, 0.32)
    n_random: int = 10
    n_mapped_random: int = 10
    k_pairs: tuple[int, ...] = (4, 16, 64)
    prompting: bool = True
    side_effect_items: int = 200
    n_readout_random: int = 200
    n_readout_mapped_random: int = 20
    n_boot: int = 1000
    budget: float | None = None
    batch_size: int = 32
    seed: int = 0

    @classmethod
    def quick(cls, **changes: Any) -> SuiteConfig:
        """A few minutes on the real pair on 2 CPU cores: few pairs, anchors, prompts, tokens, λ."""
        small = cls(n_pairs=64, n_anchor_questions=96, lambdas=(0.04, 0.16, 0.32), n_prompts=4, max_new_tokens=12,
                    where_prompts=4, where_lambdas=(0.16,), n_random=2, n_mapped_random=2, k_pairs=(4, 16),
                    side_effect_items=20, n_readout_random=50, n_readout_mapped_random=5, n_boot=300)
        return replace(small, **changes)

    def __post_init__(self) -> None:
        check_lambda_grid(self.lambdas)
        check_lambda_grid(self.where_lambdas)
        check_budget(self.budget)
        for name in ("n_pairs", "n_prompts", "max_new_tokens", "where_prompts", "n_readout_random", "n_boot", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if "prompts" in name else 1):
                raise ValueError(f"SuiteConfig.{name} must be a positive int, not {value!r}.")
        for name in ("n_anchor_questions", "n_random", "n_mapped_random", "side_effect_items", "n_readout_mapped_random"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SuiteConfig.{name} must be an int >= 0, not {value!r}.")
        if self.n_prompts > len(NEUTRAL_PROMPTS) or self.where_prompts > self.n_prompts:
            raise ValueError(
                f"SuiteConfig: n_prompts must be <= {len(NEUTRAL_PROMPTS)} (the built-in neutral prompts) and "
                f"where_prompts <= n_prompts (got {self.n_prompts}, {self.where_prompts})."
            )
        if self.side_effect_items == 1:
            raise ValueError("SuiteConfig.side_effect_items must be 0 (skip) or >= 2 ARC-Easy items.")


@dataclass
class SuiteRow:
    """One estimator × concept × direction: its readout (every control inside) and dose-response
    (None when its layer map does not reach the steering band; ``note`` says why)."""

    estimator: str
    concept: str
    direction: str
    parent: str
    child: str
    readout: ConceptReadout
    steering: DoseResponse | None
    transfer: dict[str, Any]
    note: str = ""

    def flat(self) -> dict[str, Any]:
        """The row as flat columns: readout over all child layers (and best layer), then steering."""
        (summary,) = self.readout.summary()
        row = {"estimator": self.estimator, "concept": self.concept, "direction": self.direction,
               "parent": self.parent, "child": self.child}
        row.update({f"readout_{k}": v for k, v in summary.items() if k not in ("concept", "layer_map", "adapter")})
        if self.steering is not None:
            row.update({f"steer_{k}": v for k, v in headline_row(self.steering).items() if k != "concept"})
        row["note"] = self.note
        return row

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"estimator": self.estimator, "concept": self.concept, "direction": self.direction,
                "parent": self.parent, "child": self.child, "readout": self.readout.to_dict(),
                "steering": None if self.steering is None else self.steering.to_dict(), "transfer": self.transfer,
                "note": self.note}


@dataclass
class SuiteResult:
    """Every :class:`SuiteRow` of a suite run, with the settings and timing."""

    rows: list[SuiteRow]
    where: dict[str, Any]
    settings: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)

    def table(self):
        """DataFrame, one row per estimator × concept × direction (see :meth:`SuiteRow.flat`)."""
        import pandas as pd

        return pd.DataFrame([r.flat() for r in self.rows])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {"rows": [r.to_dict() for r in self.rows], "where": self.where, "settings": self.settings,
                "timing": self.timing}

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False, float_format=lambda v: f"{v:.3f}")

    def plot(self):
        """Readout beside the child's own vector and random directions, and steering efficiency, per row."""
        return suite_figure(self.table())

    def to_markdown(self) -> str:
        """The headline table (readout over all child layers and steering efficiency beside every
        control), then where each child steers, settings and timing."""
        f = lambda v: "–" if v is None or v != v else f"{v:.3f}"
        ci = lambda e: "–" if e is None else f"{e.value:+.3f} [{e.low:+.3f}, {e.high:+.3f}]"
        out = ["# Fidelity suite", "",
               "Readout: held-out AUROC averaged over all child layers (chance where a layer map does not reach); "
               "steering: judge shift at one NLL budget; efficiency = transferred ÷ child_own [95% CI].", "",
               "| estimator | concept | parent → child | readout transferred | child_own | random p95 | mapped_random "
               "| wrong_concept | best layer (diag.) | layers | efficiency [95% CI] | transferred shift | child_own shift "
               "| random (p05, p95) | mapped_random (p05, p95) | wrong_concept | exchange rate (pairs) | prompting "
               "| anti-steer. (tr / own) | ARC-Easy Δ (tr / own) | note |",
               "|" + "---|" * 21]
        for r in self.rows:
            (s,) = r.readout.summary()
            d = r.steering
            band = lambda b: "–" if b is None else f"{b.mean:+.3f} ({b.p05:+.3f}, {b.p95:+.3f})"
            if d is not None:
                eff = "–" if d.efficiency is None else f"{d.efficiency.value:.2f} [{d.efficiency.low:.2f}, {d.efficiency.high:.2f}]"
                wrong = ci(d.shift_at_budget["wrong_concept"]) if "wrong_concept" in d.shift_at_budget else band(
                    d.bands_at_budget.get("wrong_concept"))
                anti = f"{f(d.anti_steerability.get('transferred'))} / {f(d.anti_steerability.get('child_own'))}"
                side = d.side_effects.by_label if d.side_effects is not None else {}
                arc = " / ".join(f"{side[k].delta.value:+.3f}" if k in side else "–" for k in ("transferred", "child_own"))
                steer = [f"{d.layers[0]}–{d.layers[-1]}", eff, ci(d.shift_at_budget.get("transferred")),
                         ci(d.shift_at_budget.get("child_own")), band(d.bands_at_budget.get("random")),
                         band(d.bands_at_budget.get("mapped_random")), wrong,
                         d.exchange_rate.note if d.exchange_rate else "–",
                         ci(d.prompting.shift) if d.prompting else "–", anti, arc]
            else:
                steer = ["–"] * 11
            out.append("| " + " | ".join([
                r.estimator, r.concept, f"{r.parent} → {r.child}", f"**{f(s['transferred_all_layers'])}**",
                f(s["child_own_all_layers"]), f(s["random_p95_all_layers"]), f(s["mapped_random_all_layers"]),
                f(s["wrong_concept_all_layers"]), f(s["transferred"]), *steer, r.note or ""]) + " |")
        out += ["", "Steering bands (child_own vector, by direction and concept): "
                + json.dumps({k: v["best"] for k, v in self.where.items()}), "",
                f"Settings: {json.dumps(self.settings, default=str)}", "",
                f"Timing: {json.dumps({k: round(v, 2) for k, v in self.timing.items()})}", ""]
        return "\n".join(out)


def _fresh(spec: TransferSpec, name: str) -> Transfer:
    made = copy.deepcopy(spec) if isinstance(spec, Transfer) else spec() if callable(spec) else None
    if not isinstance(made, Transfer):
        raise TypeError(
            f"Estimator {name!r} must be a Transfer (e.g. Transfer('proportional', 'ridge')) or a function of no "
            f"arguments returning one; got {type(spec).__name__}."
        )
    for attr in [a for a in vars(made) if a.endswith("_") and not a.startswith("_")]:
        delattr(made, attr)  # a fitted template: start from its configuration only
    return made


def _check_transfers(transfers: Mapping[str, TransferSpec] | None) -> dict[str, TransferSpec]:
    if transfers is None:
        return {"Transfer()": Transfer}
    if isinstance(transfers, Transfer) or callable(transfers):
        return {"estimator": transfers}
    if not isinstance(transfers, Mapping) or not transfers:
        raise ValueError("transfers must be a non-empty dict {name: Transfer or factory}, e.g. {'ridge': Transfer()}.")
    for name, spec in transfers.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"Estimator names must be non-empty strings, not {name!r}.")
        _fresh(spec, name)
    return dict(transfers)


def fidelity_suite(
    parent,
    child,
    concepts: Sequence[str | Concept] = ("sentiment", "language"),
    transfers: Mapping[str, TransferSpec] | None = None,
    *,
    config: SuiteConfig = SuiteConfig(),
    hold_out: HoldOut | None = None,
    directions: Sequence[str] = DIRECTIONS,
    layers: Mapping[str, Sequence[int]] | None = None,
    data_dir=None,
    fit_options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> SuiteResult:
    """The suite on loaded ``parent`` and ``child`` for every concept with a judge (names or
    ``Concept``s with their own judges), every estimator of ``transfers`` (name -> ``Transfer`` or
    factory; default the library's ``Transfer()``) and every direction of ``directions``.
    ``hold_out(anchor_texts, concept)`` returns the anchors a concept's transfer may see (default:
    all but the concept's own texts), and every fit then holds the concept's topic out of them and of
    any anchors it adds (``Transfer.fit(hold_out=concept)``; ``fit_options={"hold_out": None}`` turns
    that off); ``layers`` fixes the steering band per concept name instead of searching it;
    ``fit_options`` go to every ``Transfer.fit``."""
    t0 = time.perf_counter()
    if not isinstance(config, SuiteConfig):
        raise TypeError(f"config must be a SuiteConfig (e.g. SuiteConfig.quick()), not {type(config).__name__}.")
    specs = _check_transfers(transfers)
    if hold_out is not None and not callable(hold_out):
        raise TypeError(f"hold_out must be a function (anchor texts, concept) -> kept texts, not {type(hold_out).__name__}.")
    directions = [directions] if isinstance(directions, str) else list(directions)
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"directions must be some of {DIRECTIONS}, not {directions!r}.")
    cfg = config
    concepts = resolve_concepts(concepts, n=cfg.n_pairs, seed=cfg.seed, data_dir=data_dir)
    judged = [c for c in concepts if c.judge is not None]
    if not judged:
        raise ValueError(f"None of the concepts {[c.name for c in concepts]} has a judge; the suite steers, so each "
                         "needs one (a built-in name, an object with .score(texts), or a function).")
    for c in judged:
        for m in (parent, child):
            check_readable(m, c)
    keep = hold_out or concept_anchor_texts
    anchors, about = default_anchor_texts(concepts, data_dir=data_dir, n_task=cfg.n_anchor_questions, seed=cfg.seed)
    models = {"parent_to_child": (parent, child), "child_to_parent": (child, parent)}
    acts = {m: collect_model_acts(m, concepts, [], progress=progress) for m in (parent, child)}
    rows, where, timing = [], {}, {"activations_s": time.perf_counter() - t0}
    prompts = list(NEUTRAL_PROMPTS[: cfg.n_prompts])
    for direction in directions:
        p, c = models[direction]
        p_acts, c_acts = acts[p], acts[c]
        c_info = ModelInfo.from_model(c)
        for concept in judged:
            t1 = time.perf_counter()
            band = list(layers[concept.name]) if layers and concept.name in layers else None
            if band is None:
                pos, neg = c_acts.concept(concept).train_pos, c_acts.concept(concept).train_neg
                own = vectors_from_acts(pos, neg, c_info, seed=cfg.seed)
                found = steerable_layers(c, own, concept.judge, prompts=prompts[: cfg.where_prompts],
                                         lambdas=cfg.where_lambdas, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                                         batch_size=cfg.batch_size)
                where[f"{direction}:{concept.name}"] = found.to_dict()
                band = found.best
            others = [o for o in judged if o.name != concept.name] or [o for o in concepts if o.name != concept.name]
            kept = list(keep(anchors, concept))
            for name, spec in specs.items():
                tr = _fresh(spec, name).fit(p, c, kept, progress=progress, **{"hold_out": concept, **(fit_options or {})})
                key = (name, f"{tr.layer_map.name}+{tr.adapter.name}")
                readout = readout_from_activations(
                    concept, p_acts.concept(concept), c_acts.concept(concept), {key: tr}, parent_info=p_acts.info,
                    n_random=cfg.n_readout_random, n_boot=cfg.n_boot, seed=cfg.seed,
                    wrong_concepts={o.name: p_acts.concept(o) for o in others},
                    n_mapped_random=cfg.n_readout_mapped_random, k_pairs=cfg.k_pairs)
                steering, about_tr, note = None, {"anchors": len(kept), "r2": tr.r2_}, ""
                if any(l in tr.layer_map_.mapping_ for l in band):
                    steering, about_tr = steer_concept(
                        p, c, concept, tr, band, wrong_concepts=others, lambdas=cfg.lambdas, prompts=prompts,
                        n_random=cfg.n_random, n_mapped_random=cfg.n_mapped_random, k_pairs=cfg.k_pairs,
                        prompting=cfg.prompting, side_effect_items=cfg.side_effect_items, data_dir=data_dir,
                        max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, batch_size=cfg.batch_size, budget=cfg.budget)
                    about_tr = {**about_tr, "anchors": len(kept)}
                else:
                    note = (f"its layer map reaches child layers {min(tr.layer_map_.mapping_)}–{max(tr.layer_map_.mapping_)}, "
                            f"none of the steering band {band[0]}–{band[-1]}")
                rows.append(SuiteRow(name, concept.name, direction, p_acts.info.name, c_acts.info.name, readout, steering,
                                     about_tr, note))
            timing[f"{direction}:{concept.name}_s"] = time.perf_counter() - t1
    timing["total_s"] = time.perf_counter() - t0
    steered = [r.steering for r in rows if r.steering is not None]
    timing["generated_rows"] = sum(d.timing["rows"] for d in steered) + sum(len(d.prompts) for d in steered if d.prompting)
    timing["side_effect_rows"] = sum(d.side_effects.n_items * (1 + len(d.side_effects.by_label))
                                     for d in steered if d.side_effects is not None)
    timing["where_rows"] = sum((len(w["bands"]) * len(cfg.where_lambdas) + 1) * cfg.where_prompts for w in where.values())
    timing["rows_per_s"] = (timing["generated_rows"] + timing["side_effect_rows"] + timing["where_rows"]) / timing["total_s"]
    settings = {**asdict(cfg), "estimators": {n: repr(_fresh(s, n)) for n, s in specs.items()},
                "hold_out": getattr(hold_out, "__name__", "concept_anchor_texts (leave_concept_out)"),
                "directions": directions, "anchors": about, "judges": {c.name: c.to_dict()["judge"] for c in judged},
                "fit_options": dict(fit_options or {})}
    return SuiteResult(rows, where, settings, timing)
