"""Readout fidelity (no steering): does a transferred vector read the concept in the child?

Per concept and child layer, the child's activations of the concept's held-out test pairs are
projected on (a) the parent vector carried over by each fitted ``Transfer`` (layer map × adapter),
(b) the child's own vector from the train pairs, (c) many seeded random unit directions (the null).
Each is scored by AUROC (positive vs. negative test texts) with a pair-bootstrap CI; the random
directions give the null distribution and its 95th percentile. Every direction is signed the same
way, on the child's *train* pairs only (``Transfer.apply`` re-signs transferred vectors; random
directions get the same majority vote), so no test label is seen before scoring.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xsteer.figures import readout_figure
from xsteer.activations import collect_activations
from xsteer.concepts import Concept, load_concept
from xsteer.extract import fit_direction, random_vectors, sign_agreement, sign_vote
from xsteer.fidelity.controls import pair_subset
from xsteer.fidelity.strength import (
    ConceptActs,
    ConceptStrength,
    Method,
    auroc,
    auroc_ci,
    check_readable,
    concept_strength,
    fit_directions,
)
from xsteer.stats import Estimate
from xsteer.tasks import load_task
from xsteer.transfer import ModelInfo, Transfer, anchor_groups, anchor_hash
from xsteer.vectors import SteeringVectors

__all__ = [
    "ChildLayerReadout",
    "ConceptReadout",
    "ControlLayerReadout",
    "FidelityResult",
    "RandomNull",
    "TransferLayerReadout",
    "ModelActs",
    "cached_model_acts",
    "collect_model_acts",
    "ANCHOR_MODES",
    "concept_anchor_texts",
    "default_anchor_texts",
    "fidelity_from_acts",
    "fit_default_transfers",
    "fit_transfers",
    "random_null",
    "readout_fidelity",
    "readout_from_activations",
    "transfers_by_concept",
]

Acts = Mapping[int, torch.Tensor]


def _np(x) -> np.ndarray:
    return torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()


@dataclass(frozen=True)
class RandomNull:
    """Held-out AUROC of ``n`` random unit directions at one child layer (signed on train pairs)."""

    n: int
    mean: float
    p05: float
    p50: float
    p95: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, not {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}.")
    return int(value)


def random_null(acts: ConceptActs, layer: int, *, n: int = 200, seed: int = 0) -> RandomNull:
    """AUROCs of ``n`` seeded random unit directions at ``layer``, all scored in one rank pass."""
    _check_count(n, "n_random", 1)
    d = acts.test_pos[layer].shape[1]
    r = np.random.default_rng([seed, layer]).standard_normal((d, n))
    r /= np.linalg.norm(r, axis=0, keepdims=True)
    r = sign_vote(r, _np(acts.train_pos[layer]) - _np(acts.train_neg[layer]))
    a = auroc(_np(acts.test_pos[layer]) @ r, _np(acts.test_neg[layer]) @ r)
    p05, p50, p95 = np.quantile(a, [0.05, 0.5, 0.95])
    return RandomNull(n, float(a.mean()), float(p05), float(p50), float(p95))


@dataclass(frozen=True)
class ChildLayerReadout:
    """At one child layer: the child's own vector and the random null."""

    layer: int
    child_own: Estimate
    child_own_sign_agreement: float
    child_own_train_auroc: float
    random: RandomNull

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "layer": self.layer,
            "child_own": self.child_own.to_dict(),
            "child_own_sign_agreement": self.child_own_sign_agreement,
            "child_own_train_auroc": self.child_own_train_auroc,
            "random": self.random.to_dict(),
        }


@dataclass(frozen=True)
class TransferLayerReadout:
    """At one mapped child layer: the transferred vector of one (layer map, adapter)."""

    layer_map: str
    adapter: str
    child_layer: int
    parent_layer: int
    auroc: Estimate
    sign_agreement: float
    train_auroc: float
    cos_child_own: float
    r2: float
    random_p95: float

    @property
    def above_random(self) -> bool:
        """CI lower bound above the random directions' 95th percentile at this layer."""
        return self.auroc.low > self.random_p95

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {**asdict(self), "auroc": self.auroc.to_dict(), "above_random": self.above_random}


@dataclass(frozen=True)
class ControlLayerReadout:
    """At one child layer, the held-out AUROC of a control: ``mapped_random`` (random parent directions
    through the (layer map, adapter); ``auroc`` their mean, ``p95`` their 95th percentile),
    ``wrong_concept`` (concept ``source``'s parent vector through it) or ``child_own_k`` (the child's
    own vector fitted on ``k`` train pairs; no layer map or adapter)."""

    kind: str
    child_layer: int
    auroc: float
    layer_map: str | None = None
    adapter: str | None = None
    p95: float | None = None
    source: str | None = None
    k: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


#: The AUROC a transfer is credited with at a child layer its layer map does not reach.
CHANCE = 0.5


@dataclass(frozen=True)
class ConceptReadout:
    """Readout fidelity of one concept: parent and child strength, per-layer readouts and controls."""

    concept: Concept
    parent: ConceptStrength
    child: ConceptStrength
    child_layers: list[ChildLayerReadout]
    transferred: list[TransferLayerReadout]
    controls: list[ControlLayerReadout] = field(default_factory=list)

    def _all_layers(self, values: Mapping[int, float]) -> float:
        """Mean over every child layer, CHANCE where ``values`` has none."""
        return float(np.mean([values.get(r.layer, CHANCE) for r in self.child_layers]))

    def summary(self) -> list[dict[str, Any]]:
        """One row per (layer map, adapter). The verdict: held-out AUROC averaged over *all* child
        layers (a layer the map does not reach counts as chance) of the transferred vector beside
        child-own, the random p95, mapped_random, wrong_concept and child_own_k. The diagnostic: the
        transferred vector at the child layer where it reads best on the *train* pairs, beside the
        child-own vector's best layer (also chosen on train pairs) and the random null there."""
        by_layer = {r.layer: r for r in self.child_layers}
        own_best = max(self.child_layers, key=lambda r: r.child_own_train_auroc)
        own_k: dict[int, dict[int, float]] = {}
        for c in self.controls:
            if c.kind == "child_own_k":
                own_k.setdefault(c.k, {})[c.child_layer] = c.auroc
        rows = []
        keys = dict.fromkeys((t.layer_map, t.adapter) for t in self.transferred)
        for lm, ad in keys:
            ts = [t for t in self.transferred if (t.layer_map, t.adapter) == (lm, ad)]
            best = max(ts, key=lambda t: t.train_auroc)
            mine = [c for c in self.controls if (c.layer_map, c.adapter) == (lm, ad)]
            mapped = {c.child_layer: c.auroc for c in mine if c.kind == "mapped_random"}
            wrong: dict[int, list[float]] = {}
            for c in mine:
                if c.kind == "wrong_concept":
                    wrong.setdefault(c.child_layer, []).append(c.auroc)
            row = {
                "concept": self.concept.name,
                "parent_holds": self.parent.holds,
                "parent_best_auroc": self.parent.best.auroc.value,
                "layer_map": lm,
                "adapter": ad,
                "transferred_all_layers": self._all_layers({t.child_layer: t.auroc.value for t in ts}),
                "child_own_all_layers": self._all_layers({r.layer: r.child_own.value for r in self.child_layers}),
                "random_p95_all_layers": self._all_layers({r.layer: r.random.p95 for r in self.child_layers}),
                "mapped_random_all_layers": self._all_layers(mapped) if mapped else float("nan"),
                "wrong_concept_all_layers": (self._all_layers({l: float(np.mean(v)) for l, v in wrong.items()})
                                             if wrong else float("nan")),
                **{f"child_own_k{k}_all_layers": self._all_layers(v) for k, v in sorted(own_k.items())},
                "layers_mapped": len(ts),
                "child_layers": len(self.child_layers),
                "child_layer": best.child_layer,
                "parent_layer": best.parent_layer,
                "transferred": best.auroc.value,
                "transferred_low": best.auroc.low,
                "transferred_high": best.auroc.high,
                "child_own_layer": own_best.layer,
                "child_own": own_best.child_own.value,
                "child_own_low": own_best.child_own.low,
                "child_own_high": own_best.child_own.high,
                "child_own_same_layer": by_layer[best.child_layer].child_own.value,
                "random_p95": best.random_p95,
                "layers_above_random": sum(t.above_random for t in ts),
                "median_cos_child_own": float(np.median([t.cos_child_own for t in ts])),
                "mean_r2": float(np.mean([t.r2 for t in ts])),
            }
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "concept": self.concept.to_dict(),
            "parent": self.parent.to_dict(),
            "child": self.child.to_dict(),
            "child_layers": [r.to_dict() for r in self.child_layers],
            "transferred": [t.to_dict() for t in self.transferred],
            "controls": [c.to_dict() for c in self.controls],
            "summary": self.summary(),
        }


@dataclass
class FidelityResult:
    """Readout fidelity of parent -> child for several concepts and (layer map, adapter) pairs.

    ``steering`` is the seam for the behavioural half (filled by ``xsteer.fidelity.steering`` when
    asked for); ``timing`` holds seconds per stage and readout rows/s.
    """

    parent: str
    child: str
    concepts: list[ConceptReadout]
    anchors: dict[str, Any]
    settings: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)
    steering: Any = None

    def plot(self, concept: str | None = None):
        """Held-out AUROC by child layer for ``concept`` (default: the first): child_own, every
        transferred vector, the random-direction band (plotly)."""
        return readout_figure(self, concept or self.concepts[0].concept.name)

    def _repr_html_(self) -> str:
        head = f"<b>Readout fidelity {self.parent} → {self.child}</b>"
        flags = "".join(f"<br>⚠ {f}" for f in self.flags)
        return head + flags + self.table().to_html(index=False, float_format=lambda x: f"{x:.3f}")

    @property
    def flags(self) -> list[str]:
        """One line per concept the parent does not hold."""
        return [c.parent.flag for c in self.concepts if not c.parent.holds]

    def table(self):
        """Summary DataFrame: one row per concept × layer map × adapter (see ``ConceptReadout.summary``)."""
        import pandas as pd

        return pd.DataFrame([row for c in self.concepts for row in c.summary()])

    def layer_table(self):
        """Long DataFrame: one row per concept × (layer map, adapter) × mapped child layer, plus the
        child-own vector and random null at that layer."""
        import pandas as pd

        rows = []
        for c in self.concepts:
            by_layer = {r.layer: r for r in c.child_layers}
            for t in c.transferred:
                cl = by_layer[t.child_layer]
                rows.append(
                    {
                        "concept": c.concept.name,
                        "layer_map": t.layer_map,
                        "adapter": t.adapter,
                        "child_layer": t.child_layer,
                        "parent_layer": t.parent_layer,
                        "transferred": t.auroc.value,
                        "transferred_low": t.auroc.low,
                        "transferred_high": t.auroc.high,
                        "child_own": cl.child_own.value,
                        "child_own_low": cl.child_own.low,
                        "child_own_high": cl.child_own.high,
                        "random_p50": cl.random.p50,
                        "random_p95": cl.random.p95,
                        "cos_child_own": t.cos_child_own,
                        "r2": t.r2,
                    }
                )
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        out = {
            "parent": self.parent,
            "child": self.child,
            "flags": self.flags,
            "anchors": self.anchors,
            "settings": self.settings,
            "timing": self.timing,
            "concepts": [c.to_dict() for c in self.concepts],
        }
        if self.steering is not None:
            out["steering"] = self.steering.to_dict() if hasattr(self.steering, "to_dict") else self.steering
        return out


def _label(x) -> str:
    return x if isinstance(x, str) else getattr(x, "name", type(x).__name__)


def _parent_vectors(dirs: Mapping[int, np.ndarray], info, method: str, seed: int, data_hash: str | None) -> SteeringVectors:
    return SteeringVectors(directions={l: torch.from_numpy(v).float() for l, v in dirs.items()}, model_name=info.name,
                           d_model=info.d_model, n_layers=info.n_layers, method=method, seed=seed, data_hash=data_hash)


def _test_auroc(acts: ConceptActs, layer: int, v: np.ndarray) -> float:
    return float(auroc(_np(acts.test_pos[layer]) @ v, _np(acts.test_neg[layer]) @ v))


def readout_from_activations(
    concept: Concept,
    parent_acts: ConceptActs,
    child_acts: ConceptActs,
    transfers: Mapping[tuple[str, str], Any],
    *,
    parent_info,
    method: Method = "mean_diff",
    n_random: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    wrong_concepts: Mapping[str, ConceptActs] | None = None,
    n_mapped_random: int = 20,
    k_pairs: Sequence[int] = (4, 16),
) -> ConceptReadout:
    """Readout fidelity of one concept from precomputed activations and fitted transfers
    (``(layer_map name, adapter name) -> Transfer``); ``parent_info`` is the parent's ModelInfo.
    Controls beside each transfer: ``n_mapped_random`` random parent directions and the parent vector
    of each of ``wrong_concepts`` (name -> the parent's activations of that concept) carried by it,
    and the child's own vector fitted on each of ``k_pairs`` train pairs."""
    _check_count(n_boot, "n_boot", 1)
    _check_count(n_mapped_random, "n_mapped_random", 0)
    check_transfers(transfers, parent_info)
    parent_dirs = fit_directions(parent_acts.train_pos, parent_acts.train_neg, method, seed)
    child_dirs = fit_directions(child_acts.train_pos, child_acts.train_neg, method, seed)
    parent = concept_strength(parent_acts, concept=concept.name, model=parent_info.name, method=method,
                              n_boot=n_boot, seed=seed, directions=parent_dirs)
    child_name = next(iter(transfers.values())).child_.name
    child = concept_strength(child_acts, concept=concept.name, model=child_name, method=method,
                             n_boot=n_boot, seed=seed, directions=child_dirs)
    nulls = {l: random_null(child_acts, l, n=n_random, seed=seed) for l in child_acts.layers}
    child_layers = [
        ChildLayerReadout(s.layer, s.auroc, s.sign_agreement, s.train_auroc, nulls[s.layer]) for s in child.layers
    ]
    vectors = _parent_vectors(parent_dirs, parent_info, method, seed, concept.data_hash)
    randoms = [random_vectors(vectors, seed=10_000 + 1000 * seed + i) for i in range(n_mapped_random)]
    wrong = {name: _parent_vectors(fit_directions(a.train_pos, a.train_neg, method, seed), parent_info, method, seed, None)
             for name, a in (wrong_concepts or {}).items() if name != concept.name}
    train = (child_acts.train_pos, child_acts.train_neg)
    transferred, controls = [], []
    for (lm, ad), tr in transfers.items():
        moved = tr.apply(vectors, train)
        pairs = moved.provenance["layer_pairs"]
        r2 = tr.r2_
        for c in moved.layers:
            if c not in nulls:
                continue
            v = moved[c].double().numpy()
            test_pos, test_neg = _np(child_acts.test_pos[c]), _np(child_acts.test_neg[c])
            tp, tn = test_pos @ v, test_neg @ v
            fp, fn = _np(child_acts.train_pos[c]) @ v, _np(child_acts.train_neg[c]) @ v
            transferred.append(
                TransferLayerReadout(
                    layer_map=lm,
                    adapter=ad,
                    child_layer=c,
                    parent_layer=int(pairs[str(c)]),
                    auroc=auroc_ci(tp, tn, n_boot=n_boot, seed=seed + c),
                    sign_agreement=sign_agreement(v, test_pos - test_neg),
                    train_auroc=float(auroc(fp, fn)),
                    cos_child_own=float(v @ child_dirs[c] / np.linalg.norm(v)),
                    r2=float(r2[c]),
                    random_p95=nulls[c].p95,
                )
            )
        carried = [tr.apply(r, train) for r in randoms]
        for c in moved.layers:
            if c in nulls and carried:
                a = [_test_auroc(child_acts, c, m[c].double().numpy()) for m in carried]
                controls.append(ControlLayerReadout("mapped_random", c, float(np.mean(a)), lm, ad,
                                                    p95=float(np.quantile(a, 0.95))))
        for name, w in wrong.items():
            mw = tr.apply(w, train)
            controls += [ControlLayerReadout("wrong_concept", c, _test_auroc(child_acts, c, mw[c].double().numpy()), lm, ad,
                                             source=name) for c in mw.layers if c in nulls]
    n_train = len(next(iter(child_acts.train_pos.values())))
    for k in sorted({int(k) for k in k_pairs}):
        if not 2 <= k < n_train:
            continue
        idx = pair_subset(n_train, k, seed)
        for l in child_acts.layers:
            v = fit_direction((_np(child_acts.train_pos[l]) - _np(child_acts.train_neg[l]))[idx], method, seed)
            controls.append(ControlLayerReadout("child_own_k", l, _test_auroc(child_acts, l, v), k=k))
    return ConceptReadout(concept, parent, child, child_layers, transferred, controls)


def check_transfers(transfers: Any, parent_info=None, child_info=None) -> None:
    """``transfers`` is a non-empty mapping (layer map name, adapter name) -> fitted ``Transfer``
    (of ``parent_info`` -> ``child_info`` when given), else a clear error."""
    if not isinstance(transfers, Mapping) or not transfers:
        raise ValueError(
            "transfers must be a non-empty dict {(layer map, adapter): fitted Transfer}, e.g. from fit_transfers(...); "
            f"got {transfers!r}."
        )
    for key, tr in transfers.items():
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, str) for k in key)):
            raise TypeError(f"transfers keys are (layer map name, adapter name) tuples such as ('greedy', 'ridge'), or "
                            f"concept names each with its own transfers; not {key!r}.")
        if not hasattr(tr, "apply") or not hasattr(tr, "adapters_"):
            raise ValueError(f"transfers[{key!r}] is not a fitted Transfer; call .fit(parent, child, anchor_texts) first.")
        for who, want, got in (("parent", parent_info, getattr(tr, "parent_", None)),
                               ("child", child_info, getattr(tr, "child_", None))):
            if want is not None and got != want:
                raise ValueError(
                    f"transfers[{key!r}] was fitted for {who} {got}, but the {who} here is {want}. Fix: fit the "
                    f"transfer on these models, or pass the models it was fitted on."
                )


def _keyed(transfers: Any) -> Any:
    """A single fitted Transfer as {(layer map, adapter): Transfer}; anything else unchanged."""
    if isinstance(transfers, Transfer):
        return {(_label(transfers.layer_map), _label(transfers.adapter)): transfers}
    return transfers


def transfers_by_concept(transfers: Any, concepts: Sequence[Concept], parent_info=None,
                         child_info=None) -> dict[str, dict[tuple[str, str], Any]]:
    """Checked transfers of each concept: ``transfers`` is one fitted Transfer, a mapping
    (layer map, adapter) -> Transfer shared by every concept, or a mapping concept name -> either
    (each concept read through its own, e.g. fitted with that concept held out)."""
    transfers = _keyed(transfers)
    names = [c.name for c in concepts]
    if isinstance(transfers, Mapping) and transfers and all(isinstance(k, str) and k in names for k in transfers):
        missing = [n for n in names if n not in transfers]
        if missing:
            raise ValueError(f"transfers are given per concept but not for {missing}. Fix: add them, e.g. "
                             f"{{{missing[0]!r}: Transfer().fit(parent, child, hold_out=concept)}}.")
        out = {n: _keyed(transfers[n]) for n in names}
    else:
        out = {n: transfers for n in names}
    for t in out.values():
        check_transfers(t, parent_info, child_info)
    return out


def fit_default_transfers(parent, child, concepts: Sequence[Concept], *, data_dir=None,
                          progress: bool = False) -> dict[str, dict[tuple[str, str], Any]]:
    """The library's ``Transfer()`` fitted once per concept on the built-in corpus with that concept
    held out (:func:`xsteer.transfer.corpus.hold_out`), keyed for :func:`fidelity_from_acts`."""
    return {c.name: _keyed(Transfer().fit(parent, child, hold_out=c, data_dir=data_dir, progress=progress))
            for c in concepts}


def default_anchor_texts(concepts: Sequence[Concept], *, data_dir=None, task: str = "arc-easy", n_task: int = 256, seed: int = 0) -> tuple[list[str], dict[str, Any]]:
    """Anchor corpus: every concept's *train* texts (never test texts) plus up to ``n_task`` questions
    of ``task``'s train split when its local data is found; returns (texts, description)."""
    texts = [t for c in concepts for t in c.texts("train")]
    sources = {c.name: 2 * len(c.train) for c in concepts}
    test = {t for c in concepts for t in c.texts("test")}
    data_dir = data_dir or os.environ.get("XSTEER_DATA_DIR")
    if task and data_dir and n_task > 0:
        try:
            examples = load_task(task, data_dir=data_dir, seed=seed).split("train")
        except (FileNotFoundError, ValueError) as err:
            sources[f"task:{task}"] = f"not used ({err})"
        else:
            rng = np.random.default_rng(seed)
            chosen = rng.permutation(len(examples))[:n_task]
            qs = [examples[i].question for i in chosen]
            texts += qs
            sources[f"task:{task} train questions"] = len(qs)
    texts = [t for t in dict.fromkeys(texts) if t not in test]
    return texts, {"n_texts": len(texts), "sources": sources}


@dataclass
class ModelActs:
    """One model's last-token activations of a set of texts (and mean-pooled ones of the anchor
    texts), every layer: computed once, reused by every concept, transfer and direction."""

    info: Any
    last_texts: list[str]
    last: dict[int, torch.Tensor]
    mean_texts: list[str]
    mean: dict[int, torch.Tensor]

    def rows(self, texts: Sequence[str], pooling: str = "last") -> dict[int, torch.Tensor]:
        """Layer -> (len(texts), d) rows of these texts (which must have been collected)."""
        known, acts = (self.last_texts, self.last) if pooling == "last" else (self.mean_texts, self.mean)
        index = {t: i for i, t in enumerate(known)}
        missing = [t for t in texts if t not in index]
        if missing:
            raise KeyError(f"{len(missing)} texts were not collected with pooling={pooling!r} (e.g. {missing[0][:50]!r}).")
        idx = torch.as_tensor([index[t] for t in texts], dtype=torch.long)
        return {l: a[idx] for l, a in acts.items()}

    def concept(self, concept: Concept) -> ConceptActs:
        """The four activation sets of a concept."""
        side = lambda pairs, pos: self.rows([p.positive if pos else p.negative for p in pairs])
        return ConceptActs(side(concept.train, True), side(concept.train, False), side(concept.test, True), side(concept.test, False))

    def save(self, path: str | os.PathLike) -> None:
        """Write to one torch file."""
        torch.save({"info": asdict(self.info), "last_texts": self.last_texts, "last": self.last,
                    "mean_texts": self.mean_texts, "mean": self.mean}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ModelActs:
        """Read what :meth:`save` wrote."""
        d = torch.load(path, weights_only=True)
        return cls(ModelInfo(**d["info"]), d["last_texts"], d["last"], d["mean_texts"], d["mean"])


def collect_model_acts(model, concepts: Sequence[Concept], anchor_texts: Sequence[str], *,
                       batch_size: int = 16, progress: bool = False) -> ModelActs:
    """Last-token rows of every concept text and anchor text, mean-pooled rows of the anchors (none
    when there are no anchors, e.g. with prefitted transfers)."""
    anchors = list(dict.fromkeys(anchor_texts))
    last_texts = list(dict.fromkeys([t for c in concepts for t in c.texts("all")] + anchors))
    last = collect_activations(model, last_texts, None, pooling="last", batch_size=batch_size, progress=progress)
    mean = (collect_activations(model, anchors, None, pooling="mean", batch_size=batch_size, progress=progress)
            if anchors else {})
    return ModelActs(ModelInfo.from_model(model), last_texts, last, anchors, mean)


def fit_transfers(
    parent: ModelActs,
    child: ModelActs,
    anchor_texts: Sequence[str],
    layer_maps: Sequence[Any] = ("greedy", "proportional"),
    adapters: Sequence[Any] = ("ridge", "procrustes"),
) -> dict[tuple[str, str], Any]:
    """One fitted ``Transfer`` per (layer map, adapter), all from the same anchor rows: every anchor
    text pooled at its last token and averaged over its tokens (rows of one text held out together)."""
    for name, given in (("layer_maps", layer_maps), ("adapters", adapters)):
        if isinstance(given, str) or not list(given):
            raise ValueError(
                f"{name} must be a non-empty list such as {['greedy'] if name == 'layer_maps' else ['ridge']}, "
                f"not {given!r}."
            )
    texts = list(dict.fromkeys(anchor_texts))
    acts = []
    for m in (parent, child):
        last, mean = m.rows(texts, "last"), m.rows(texts, "mean")
        acts.append({l: torch.cat([last[l], mean[l]]) for l in last})
    groups = anchor_groups(len(texts), 2)
    h = anchor_hash(texts, ("last", "mean"))
    out = {}
    for lm in layer_maps:
        for ad in adapters:
            tr = Transfer(lm, ad).fit_activations(acts[0], acts[1], parent.info, child.info, groups=groups, anchor_hash=h)
            out[(_label(tr.layer_map), _label(tr.adapter))] = tr
    return out


ANCHOR_MODES = ("leave_concept_out", "shared")
MIN_ANCHOR_TEXTS = 8


def check_anchor_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`ANCHOR_MODES`, else a ValueError naming them."""
    if mode not in ANCHOR_MODES:
        raise ValueError(f"Unknown anchor mode {mode!r}; use 'leave_concept_out' (independent of the concept) or 'shared'.")
    return mode


def concept_anchor_texts(anchor_texts: Sequence[str], concept: Concept, mode: str = "leave_concept_out") -> list[str]:
    """The anchors a transfer for ``concept`` is fitted on: with ``leave_concept_out`` none of the
    concept's own texts (train or test), so the map cannot learn to send the parent's concept
    direction onto the child's from the very texts that define it; with ``shared`` all of them."""
    texts = list(dict.fromkeys(anchor_texts))
    if check_anchor_mode(mode) == "leave_concept_out":
        own = set(concept.texts("all"))
        texts = [t for t in texts if t not in own]
    if len(texts) < MIN_ANCHOR_TEXTS:
        raise ValueError(
            f"Only {len(texts)} anchor texts remain for concept {concept.name!r} ({mode}); a transfer needs "
            f">= {MIN_ANCHOR_TEXTS}. Fix: add task questions (data_dir / --data-dir with anchor questions > 0) "
            "or other concepts."
        )
    return texts


def fidelity_from_acts(
    parent: ModelActs,
    child: ModelActs,
    concepts: Sequence[Concept],
    *,
    layer_maps: Sequence[Any] = ("greedy", "proportional"),
    adapters: Sequence[Any] = ("ridge", "procrustes"),
    anchor_texts: Sequence[str] | None = None,
    anchors: Mapping[str, Any] | None = None,
    anchor_mode: str = "leave_concept_out",
    transfers: Any = None,
    method: Method = "mean_diff",
    n_random: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    n_mapped_random: int = 20,
    k_pairs: Sequence[int] = (4, 16),
) -> FidelityResult:
    """Readout fidelity from collected activations (see :func:`collect_model_acts`); the same
    ``ModelActs`` serve both directions (parent -> child and child -> parent). Given
    ``anchor_texts``, each concept is read through one transfer per (layer map, adapter) fitted on the
    anchors less that concept's own texts (``anchor_mode="leave_concept_out"``, default) or on all of
    them (``"shared"``); given ``transfers`` (see :func:`transfers_by_concept`, e.g. from
    :func:`fit_default_transfers`), through those too. Controls: see :func:`readout_from_activations`
    (the run's other concepts are each concept's wrong concepts)."""
    t0 = time.perf_counter()
    concepts = list(concepts)
    if not concepts:
        raise ValueError("No concepts given; pass e.g. [load_concept('sentiment')].")
    _check_count(n_boot, "n_boot", 1)
    _check_count(n_random, "n_random", 1)
    check_anchor_mode(anchor_mode)
    if transfers is None and anchor_texts is None:
        raise ValueError("Give anchor_texts (e.g. from default_anchor_texts) or fitted transfers "
                         "(e.g. from fit_default_transfers).")
    by_concept: dict[str, dict[tuple[str, str], Any]] = {c.name: {} for c in concepts}
    about: dict[str, Any] = {}
    if transfers is not None:
        given = transfers_by_concept(transfers, concepts, parent.info, child.info)
        for name, trs in given.items():
            by_concept[name].update(trs)
        about["prefitted"] = {name: {f"{k[0]}+{k[1]}": t.n_anchors_ for k, t in trs.items()} for name, trs in given.items()}
    if anchor_texts is not None and list(layer_maps) and list(adapters):
        per_concept = {c.name: concept_anchor_texts(anchor_texts, c, anchor_mode) for c in concepts}
        fitted: dict[tuple[str, ...], Any] = {}
        for texts in per_concept.values():
            if tuple(texts) not in fitted:
                fitted[tuple(texts)] = fit_transfers(parent, child, texts, layer_maps, adapters)
        for name, texts in per_concept.items():
            by_concept[name].update(fitted[tuple(texts)])
        about.update({**(anchors or {"n_texts": len(anchor_texts)}), "pooling": ["last", "mean"], "mode": anchor_mode,
                      "rows": {name: 2 * len(texts) for name, texts in per_concept.items()}})
    if not all(by_concept.values()):
        raise ValueError("No transfer to read through: layer_maps or adapters is empty and no transfers were given. "
                         "Fix: name at least one layer map and adapter, or pass fitted transfers.")
    t_fit = time.perf_counter()
    readouts, n_rows = [], 0
    parent_concepts = {c.name: parent.concept(c) for c in concepts}
    for c in concepts:
        ca = child.concept(c)
        wrong = {name: a for name, a in parent_concepts.items() if name != c.name}
        readouts.append(readout_from_activations(c, parent_concepts[c.name], ca, by_concept[c.name], parent_info=parent.info,
                                                 method=method, n_random=n_random, n_boot=n_boot, seed=seed,
                                                 wrong_concepts=wrong, n_mapped_random=n_mapped_random, k_pairs=k_pairs))
        n_rows += len(ca.layers) * (n_random + 1) + len(readouts[-1].transferred) + len(readouts[-1].controls)
    t_end = time.perf_counter()
    return FidelityResult(
        parent=parent.info.name,
        child=child.info.name,
        concepts=readouts,
        anchors=about,
        settings={"layer_maps": sorted({k[0] for t in by_concept.values() for k in t}),
                  "adapters": sorted({k[1] for t in by_concept.values() for k in t}),
                  "n_pairs": {c.name: len(c.pairs) for c in concepts}, "method": method, "n_random": n_random,
                  "n_mapped_random": n_mapped_random, "k_pairs": list(k_pairs),
                  "n_boot": n_boot, "seed": seed, "pooling": "last"},
        timing={"fit_s": t_fit - t0, "readout_s": t_end - t_fit,
                "readout_rows_per_s": n_rows / (t_end - t_fit) if t_end > t_fit else float("nan")},
    )


def readout_fidelity(
    parent,
    child,
    concepts: Sequence[str | Concept] = ("sentiment", "language", "arith_truth"),
    *,
    layer_maps: Sequence[Any] | None = None,
    adapters: Sequence[Any] | None = None,
    transfers: Any = None,
    anchor_texts: Sequence[str] | None = None,
    anchor_mode: str = "leave_concept_out",
    n: int = 256,
    method: Method = "mean_diff",
    n_random: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    data_dir=None,
    batch_size: int = 16,
    progress: bool = False,
    n_mapped_random: int = 20,
    k_pairs: Sequence[int] = (4, 16),
) -> FidelityResult:
    """Readout fidelity of ``parent`` -> ``child`` (loaded models) for each concept, read through
    ``transfers`` (a fitted ``Transfer``, {(layer map, adapter): Transfer}, or {concept name: either});
    by default through the library's ``Transfer()`` fitted per concept on the built-in corpus with
    that concept held out (:func:`fit_default_transfers`). Naming ``layer_maps`` and/or ``adapters``
    instead compares one transfer per (layer map, adapter) (the other defaulting to the paper's
    greedy/proportional or ridge/procrustes), fitted on ``anchor_texts`` (default
    :func:`default_anchor_texts`) less each concept's own texts (``anchor_mode`` as in
    :func:`fidelity_from_acts`)."""
    t0 = time.perf_counter()
    if isinstance(concepts, (str, Concept)):
        concepts = [concepts]
    concepts = [c if isinstance(c, Concept) else load_concept(c, n=n, seed=seed, data_dir=data_dir) for c in concepts]
    if not concepts:
        raise ValueError("readout_fidelity needs at least one concept; e.g. concepts=['sentiment'].")
    _check_count(n_boot, "n_boot", 1)
    _check_count(n_random, "n_random", 1)
    check_anchor_mode(anchor_mode)
    infos = [ModelInfo.from_model(m) for m in (parent, child)]
    grid = layer_maps is not None or adapters is not None
    if grid:
        layer_maps = ("greedy", "proportional") if layer_maps is None else layer_maps
        adapters = ("ridge", "procrustes") if adapters is None else adapters
        for name, given in (("layer_maps", layer_maps), ("adapters", adapters)):
            if isinstance(given, str) or not list(given):
                raise ValueError(f"{name} must be a non-empty list such as ['ridge'], not {given!r}.")
    if transfers is not None:
        transfers_by_concept(transfers, concepts, *infos)
    for c in concepts:
        for m in (parent, child):
            check_readable(m, c)
    if not grid:
        anchor_texts, anchors = None, None
    elif anchor_texts is None:
        anchor_texts, anchors = default_anchor_texts(concepts, data_dir=data_dir, seed=seed)
    else:
        anchor_texts, anchors = list(anchor_texts), {"n_texts": len(anchor_texts), "sources": {"user": len(anchor_texts)}}
    if transfers is None and not grid:
        transfers = fit_default_transfers(parent, child, concepts, data_dir=data_dir, progress=progress)
    acts = [collect_model_acts(m, concepts, anchor_texts or [], batch_size=batch_size, progress=progress)
            for m in (parent, child)]
    t_acts = time.perf_counter()
    result = fidelity_from_acts(acts[0], acts[1], concepts, layer_maps=layer_maps or (), adapters=adapters or (),
                                anchor_texts=anchor_texts, anchors=anchors, anchor_mode=anchor_mode,
                                transfers=transfers, method=method, n_random=n_random, n_boot=n_boot, seed=seed,
                                n_mapped_random=n_mapped_random, k_pairs=k_pairs)
    result.timing = {"activations_s": t_acts - t0, **result.timing, "total_s": time.perf_counter() - t0}
    return result


def cached_model_acts(model, concepts: Sequence[Concept], anchor_texts: Sequence[str], *, cache_dir=None,
                      load=None, batch_size: int = 16, progress: bool = False) -> ModelActs:
    """:func:`collect_model_acts` through a cache folder, one file per pooling pass (so an
    interrupted run keeps the finished pass): ``model`` is a loaded model, or a name that ``load``
    turns into one only when something is not cached yet (so reruns skip loading). A file is keyed
    by the name; given a loaded model, a file of another model of that name (other weights) is
    collected again, not read."""
    name = model if isinstance(model, str) else str(model.cfg.model_name)
    loaded_info = None if isinstance(model, str) else ModelInfo.from_model(model)
    anchors = list(dict.fromkeys(anchor_texts))
    last_texts = list(dict.fromkeys([t for c in concepts for t in c.texts("all")] + anchors))
    passes, info = {}, None
    for pooling, texts in (("last", last_texts), ("mean", anchors)):
        key = hashlib.sha256(json.dumps([name, pooling, texts]).encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"acts-{name.replace('/', '_')}-{pooling}-{key}.pt" if cache_dir else None
        if path is not None and path.exists():
            saved = torch.load(path, weights_only=True)
            saved_info = ModelInfo(**saved["info"])
            if loaded_info is None or loaded_info.same_model(saved_info):
                passes[pooling], info = saved["acts"], saved_info
                continue
        if isinstance(model, str):
            if load is None:
                raise ValueError(f"Activations of {name!r} are not cached; pass a loaded model or load=load_model.")
            model = load(model)
        info = ModelInfo.from_model(model)
        passes[pooling] = collect_activations(model, texts, None, pooling=pooling, batch_size=batch_size, progress=progress) if texts else {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"info": asdict(info), "acts": passes[pooling]}, path)
    return ModelActs(info, last_texts, passes["last"], anchors, passes["mean"])
