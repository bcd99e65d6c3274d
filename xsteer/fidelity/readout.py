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

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xsteer.concepts import Concept, load_concept
from xsteer.concepts.strength import (
    ConceptActs,
    ConceptStrength,
    Method,
    auroc,
    auroc_ci,
    concept_acts,
    concept_strength,
    fit_directions,
    sign_agreement,
)
from xsteer.stats import Estimate

__all__ = [
    "ChildLayerReadout",
    "ConceptReadout",
    "FidelityResult",
    "RandomNull",
    "TransferLayerReadout",
    "default_anchor_texts",
    "fit_transfers",
    "random_null",
    "readout_fidelity",
    "readout_from_activations",
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


def random_null(acts: ConceptActs, layer: int, *, n: int = 200, seed: int = 0) -> RandomNull:
    """AUROCs of ``n`` seeded random unit directions at ``layer``, all scored in one rank pass."""
    if n < 1:
        raise ValueError(f"n_random must be >= 1, not {n}.")
    d = acts.test_pos[layer].shape[1]
    r = np.random.default_rng([seed, layer]).standard_normal((d, n))
    r /= np.linalg.norm(r, axis=0, keepdims=True)
    margin = (_np(acts.train_pos[layer]) - _np(acts.train_neg[layer])) @ r
    agree = (margin > 0).mean(0)
    flip = (agree < 0.5) | ((agree == 0.5) & (margin.mean(0) < 0))
    r[:, flip] *= -1
    a = auroc(_np(acts.test_pos[layer]) @ r, _np(acts.test_neg[layer]) @ r)
    p05, p50, p95 = np.quantile(a, [0.05, 0.5, 0.95])
    return RandomNull(n, float(a.mean()), float(p05), float(p50), float(p95))


@dataclass(frozen=True)
class ChildLayerReadout:
    """At one child layer: the child's own vector and the random null."""

    layer: int
    own: Estimate
    own_sign_agreement: float
    own_train_auroc: float
    random: RandomNull

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "layer": self.layer,
            "own": self.own.to_dict(),
            "own_sign_agreement": self.own_sign_agreement,
            "own_train_auroc": self.own_train_auroc,
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
    cos_own: float
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
class ConceptReadout:
    """Readout fidelity of one concept: parent and child strength, per-layer readouts."""

    concept: Concept
    parent: ConceptStrength
    child: ConceptStrength
    child_layers: list[ChildLayerReadout]
    transferred: list[TransferLayerReadout]

    def summary(self) -> list[dict[str, Any]]:
        """One row per (layer map, adapter): the transferred vector at the child layer where it reads
        best on the *train* pairs, its held-out AUROC [CI] beside the child-own vector's best layer
        (also chosen on train pairs) and the random null at that layer."""
        by_layer = {r.layer: r for r in self.child_layers}
        own_best = max(self.child_layers, key=lambda r: r.own_train_auroc)
        rows = []
        keys = dict.fromkeys((t.layer_map, t.adapter) for t in self.transferred)
        for lm, ad in keys:
            ts = [t for t in self.transferred if (t.layer_map, t.adapter) == (lm, ad)]
            best = max(ts, key=lambda t: t.train_auroc)
            rows.append(
                {
                    "concept": self.concept.name,
                    "parent_holds": self.parent.holds,
                    "parent_best_auroc": self.parent.best.auroc.value,
                    "layer_map": lm,
                    "adapter": ad,
                    "child_layer": best.child_layer,
                    "parent_layer": best.parent_layer,
                    "transferred": best.auroc.value,
                    "transferred_low": best.auroc.low,
                    "transferred_high": best.auroc.high,
                    "own_layer": own_best.layer,
                    "own": own_best.own.value,
                    "own_low": own_best.own.low,
                    "own_high": own_best.own.high,
                    "own_same_layer": by_layer[best.child_layer].own.value,
                    "random_p95": best.random_p95,
                    "layers_above_random": sum(t.above_random for t in ts),
                    "layers_mapped": len(ts),
                    "median_cos_own": float(np.median([t.cos_own for t in ts])),
                    "mean_r2": float(np.mean([t.r2 for t in ts])),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return {
            "concept": self.concept.to_dict(),
            "parent": self.parent.to_dict(),
            "child": self.child.to_dict(),
            "child_layers": [r.to_dict() for r in self.child_layers],
            "transferred": [t.to_dict() for t in self.transferred],
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
                        "own": cl.own.value,
                        "own_low": cl.own.low,
                        "own_high": cl.own.high,
                        "random_p50": cl.random.p50,
                        "random_p95": cl.random.p95,
                        "cos_own": t.cos_own,
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
) -> ConceptReadout:
    """Readout fidelity of one concept from precomputed activations and fitted transfers
    (``(layer_map name, adapter name) -> Transfer``); ``parent_info`` is the parent's ModelInfo."""
    from xsteer.vectors import SteeringVectors

    parent_dirs = fit_directions(parent_acts.train_pos, parent_acts.train_neg, method, seed)
    child_dirs = fit_directions(child_acts.train_pos, child_acts.train_neg, method, seed)
    parent = concept_strength(parent_acts, concept=concept.name, model=parent_info.name, method=method,
                              n_boot=n_boot, seed=seed, directions=parent_dirs)
    child_name = next(iter(transfers.values())).child_.name if transfers else ""
    child = concept_strength(child_acts, concept=concept.name, model=child_name, method=method,
                             n_boot=n_boot, seed=seed, directions=child_dirs)
    nulls = {l: random_null(child_acts, l, n=n_random, seed=seed) for l in child_acts.layers}
    child_layers = [
        ChildLayerReadout(s.layer, s.auroc, s.sign_agreement, s.train_auroc, nulls[s.layer]) for s in child.layers
    ]
    vectors = SteeringVectors(
        directions={l: torch.from_numpy(v).float() for l, v in parent_dirs.items()},
        model_name=parent_info.name,
        d_model=parent_info.d_model,
        n_layers=parent_info.n_layers,
        method=method,
        seed=seed,
        data_hash=concept.data_hash,
    )
    transferred = []
    for (lm, ad), tr in transfers.items():
        moved = tr.apply(vectors, (child_acts.train_pos, child_acts.train_neg))
        pairs = moved.provenance["layer_pairs"]
        r2 = tr.r2_
        for c in moved.layers:
            if c not in nulls:
                continue
            v = moved[c].double().numpy()
            tp, tn = _np(child_acts.test_pos[c]) @ v, _np(child_acts.test_neg[c]) @ v
            fp, fn = _np(child_acts.train_pos[c]) @ v, _np(child_acts.train_neg[c]) @ v
            transferred.append(
                TransferLayerReadout(
                    layer_map=lm,
                    adapter=ad,
                    child_layer=c,
                    parent_layer=int(pairs[str(c)]),
                    auroc=auroc_ci(tp, tn, n_boot=n_boot, seed=seed + c),
                    sign_agreement=float(sign_agreement(tp, tn)),
                    train_auroc=float(auroc(fp, fn)),
                    cos_own=float(v @ child_dirs[c] / np.linalg.norm(v)),
                    r2=float(r2[c]),
                    random_p95=nulls[c].p95,
                )
            )
    return ConceptReadout(concept, parent, child, child_layers, transferred)


def default_anchor_texts(concepts: Sequence[Concept], *, data_dir=None, task: str = "arc-easy", n_task: int = 512, seed: int = 0) -> tuple[list[str], dict[str, Any]]:
    """Anchor corpus: every concept's *train* texts (never test texts) plus up to ``n_task`` questions
    of ``task``'s train split when its local data is found; returns (texts, description)."""
    texts = [t for c in concepts for t in c.texts("train")]
    sources = {c.name: 2 * len(c.train) for c in concepts}
    test = {t for c in concepts for t in c.texts("test")}
    data_dir = data_dir or os.environ.get("XSTEER_DATA_DIR")
    if task and data_dir:
        from xsteer.tasks import load_task

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


def fit_transfers(
    parent,
    child,
    anchor_texts: Sequence[str],
    layer_maps: Sequence[Any] = ("greedy", "proportional"),
    adapters: Sequence[Any] = ("ridge", "procrustes"),
    *,
    pooling: Sequence[str] = ("last", "mean"),
    batch_size: int = 16,
    progress: bool = False,
) -> dict[tuple[str, str], Any]:
    """One fitted ``Transfer`` per (layer map, adapter), all from one set of anchor activations."""
    from xsteer.transfer import ModelInfo, Transfer, anchor_groups, anchor_hash, anchor_texts as clean, collect_anchor_activations

    texts = clean(anchor_texts)
    acts = [collect_anchor_activations(m, texts, None, tuple(pooling), batch_size, progress) for m in (parent, child)]
    infos = [ModelInfo.from_model(m) for m in (parent, child)]
    groups = anchor_groups(len(texts), len(pooling))
    h = anchor_hash(texts, tuple(pooling))
    out = {}
    for lm in layer_maps:
        for ad in adapters:
            tr = Transfer(lm, ad).fit_activations(acts[0], acts[1], infos[0], infos[1], groups=groups, anchor_hash=h)
            out[(_label(tr.layer_map), _label(tr.adapter))] = tr
    return out


def readout_fidelity(
    parent,
    child,
    concepts: Sequence[str | Concept] = ("sentiment", "language", "arith_truth"),
    *,
    layer_maps: Sequence[Any] = ("greedy", "proportional"),
    adapters: Sequence[Any] = ("ridge", "procrustes"),
    transfers: Mapping[tuple[str, str], Any] | None = None,
    anchor_texts: Sequence[str] | None = None,
    n: int = 256,
    method: Method = "mean_diff",
    n_random: int = 200,
    n_boot: int = 1000,
    seed: int = 0,
    data_dir=None,
    batch_size: int = 16,
    progress: bool = False,
) -> FidelityResult:
    """Readout fidelity of ``parent`` -> ``child`` (loaded models) for each concept and each
    (layer map, adapter); pass fitted ``transfers`` to skip fitting, or ``anchor_texts`` to replace
    the default anchors (see :func:`default_anchor_texts`)."""
    from xsteer.transfer import ModelInfo

    t0 = time.perf_counter()
    concepts = [c if isinstance(c, Concept) else load_concept(c, n=n, seed=seed, data_dir=data_dir) for c in concepts]
    if not concepts:
        raise ValueError("readout_fidelity needs at least one concept; e.g. concepts=['sentiment'].")
    if transfers is None:
        if anchor_texts is None:
            anchor_texts, anchors = default_anchor_texts(concepts, data_dir=data_dir, seed=seed)
        else:
            anchors = {"n_texts": len(anchor_texts), "sources": {"user": len(anchor_texts)}}
        transfers = fit_transfers(parent, child, anchor_texts, layer_maps, adapters, batch_size=batch_size, progress=progress)
        anchors["pooling"] = ["last", "mean"]
    else:
        anchors = {"sources": "prefitted transfers", "n_rows": {f"{k[0]}+{k[1]}": t.n_anchors_ for k, t in transfers.items()}}
    t_fit = time.perf_counter()
    parent_info = ModelInfo.from_model(parent)
    readouts, t_readout, n_rows = [], 0.0, 0
    for c in concepts:
        pa = concept_acts(parent, c, batch_size=batch_size, progress=progress)
        ca = concept_acts(child, c, batch_size=batch_size, progress=progress)
        t = time.perf_counter()
        readouts.append(readout_from_activations(c, pa, ca, transfers, parent_info=parent_info, method=method,
                                                 n_random=n_random, n_boot=n_boot, seed=seed))
        t_readout += time.perf_counter() - t
        n_rows += len(ca.layers) * (n_random + 1) + len(readouts[-1].transferred)
    total = time.perf_counter() - t0
    return FidelityResult(
        parent=parent_info.name,
        child=ModelInfo.from_model(child).name,
        concepts=readouts,
        anchors=anchors,
        settings={"layer_maps": [k[0] for k in transfers], "adapters": [k[1] for k in transfers], "n": n,
                  "method": method, "n_random": n_random, "n_boot": n_boot, "seed": seed, "pooling": "last"},
        timing={"total_s": total, "fit_s": t_fit - t0, "readout_s": t_readout,
                "readout_directions_per_s": n_rows / t_readout if t_readout > 0 else float("nan")},
    )
