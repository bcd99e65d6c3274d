"""Layer maps: which parent layer feeds each child layer (``mapping_``: child layer -> parent layer)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from xsteer.transfer.cka import cka_matrix

__all__ = [
    "LayerMap",
    "GreedyMap",
    "ProportionalMap",
    "CKAMap",
    "ExplicitMap",
    "FitMap",
    "LAYER_MAPS",
    "make_layer_map",
    "monotone_alignment",
]

Acts = Mapping[int, torch.Tensor]


def _format_pairs(mapping: Mapping[int, int]) -> str:
    """``child<-parent`` pairs; runs of 3+ where both step by one written as ranges (``0-17<-0-17``)."""
    runs: list[list[int]] = []  # [child_start, parent_start, length]
    for c, p in sorted(mapping.items()):
        if runs and c == runs[-1][0] + runs[-1][2] and p == runs[-1][1] + runs[-1][2]:
            runs[-1][2] += 1
        else:
            runs.append([c, p, 1])
    parts = []
    for c, p, n in runs:
        if n >= 3:
            parts.append(f"{c}-{c + n - 1}<-{p}-{p + n - 1}")
        else:
            parts.extend(f"{c + k}<-{p + k}" for k in range(n))
    return "{" + ", ".join(parts) + "}"


class LayerMap(ABC):
    """A strategy pairing child layers with parent layers; ``fit`` sets ``mapping_`` (child -> parent)."""

    name: ClassVar[str]
    #: Whether the pairing reads the anchors' states (a fixed pairing reads nothing).
    reads_states: ClassVar[bool] = False

    def fit(
        self,
        n_parent_layers: int,
        n_child_layers: int,
        parent_acts: Acts | None = None,
        child_acts: Acts | None = None,
    ) -> LayerMap:
        """Pair layers of a parent of depth ``n_parent_layers`` with a child of depth ``n_child_layers``.

        ``parent_acts`` / ``child_acts`` (layer -> (n_anchors, width), paired rows) are used by
        strategies that look at data and ignored by the others.
        """
        for what, depth in (
            ("n_parent_layers", n_parent_layers),
            ("n_child_layers", n_child_layers),
        ):
            if int(depth) < 1:
                raise ValueError(f"{what} must be a positive number of blocks, got {depth}.")
        self.n_parent_layers_, self.n_child_layers_ = int(n_parent_layers), int(n_child_layers)
        self.mapping_ = dict(sorted(self._pair(parent_acts, child_acts).items()))
        return self

    @abstractmethod
    def _pair(self, parent_acts: Acts | None, child_acts: Acts | None) -> dict[int, int]:
        """The mapping for the depths already stored on ``self``."""

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        return {}

    def _check_fitted(self) -> None:
        if not hasattr(self, "mapping_"):
            raise RuntimeError(
                f"{type(self).__name__} is not fitted; call .fit(n_parent_layers, n_child_layers, ...) first."
            )

    def inverse(self) -> dict[int, list[int]]:
        """Parent layer -> the child layers it feeds, ascending."""
        self._check_fitted()
        out: dict[int, list[int]] = {}
        for c, p in self.mapping_.items():
            out.setdefault(p, []).append(c)
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (strategy, parameters and, when fitted, the fitted state)."""
        out: dict[str, Any] = {"name": self.name, "params": self.get_params()}
        if hasattr(self, "mapping_"):
            out["n_parent_layers"] = self.n_parent_layers_
            out["n_child_layers"] = self.n_child_layers_
            out["mapping"] = {str(c): p for c, p in self.mapping_.items()}
        return out

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> LayerMap:
        """Rebuild a map written by :meth:`to_dict` (fitted state included)."""
        if data.get("name") not in LAYER_MAPS:
            raise ValueError(
                f"Unknown layer map {data.get('name')!r}; expected one of {sorted(LAYER_MAPS)}."
            )
        obj = LAYER_MAPS[data["name"]](**data.get("params", {}))
        if "mapping" in data:
            obj.n_parent_layers_ = int(data["n_parent_layers"])
            obj.n_child_layers_ = int(data["n_child_layers"])
            obj.mapping_ = {int(c): int(p) for c, p in data["mapping"].items()}
            if "similarity" in data:
                obj.similarity_ = np.asarray(data["similarity"], dtype=float)
        return obj

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        head = f"{type(self).__name__}({params})"
        if not hasattr(self, "mapping_"):
            return head
        return (
            f"{head}: parent {self.n_parent_layers_} -> child {self.n_child_layers_} layers, "
            f"child<-parent {_format_pairs(self.mapping_)}"
        )


class GreedyMap(LayerMap):
    """The paper's rule: child layer i <- parent layer i for every i both models have."""

    name = "greedy"

    def _pair(self, parent_acts, child_acts):
        return {i: i for i in range(min(self.n_parent_layers_, self.n_child_layers_))}


class ProportionalMap(LayerMap):
    """Child layer j <- parent layer round(j (L_p - 1) / (L_c - 1)) (halves round up): same relative depth.

    ``band=(min_frac, max_frac)`` keeps only child layers whose relative depth j / (L_c - 1) lies in it.
    """

    name = "proportional"

    def __init__(self, band: tuple[float, float] | None = None):
        if band is not None:
            lo, hi = (float(b) for b in band)
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(
                    f"band must be (min_frac, max_frac) with 0 <= min_frac <= max_frac <= 1, got {band}."
                )
            band = (lo, hi)
        self.band = band

    def get_params(self):
        return {"band": None if self.band is None else list(self.band)}

    def _pair(self, parent_acts, child_acts):
        lp, lc = self.n_parent_layers_, self.n_child_layers_
        span = max(lc - 1, 1)
        out = {}
        for j in range(lc):
            depth = j / span
            if self.band is None or self.band[0] <= depth <= self.band[1]:
                out[j] = int(math.floor(j * (lp - 1) / span + 0.5))
        if not out:
            raise ValueError(
                f"band {self.band} contains no child layer of a {lc}-layer child (relative depths "
                f"step by {1 / span:.3g}); widen the band."
            )
        return out


def monotone_alignment(similarity: np.ndarray) -> list[int]:
    """For each row (child layer) a column (parent layer), non-decreasing down the rows, with the
    largest total similarity."""
    s = np.asarray(similarity, dtype=float)
    if s.ndim != 2 or 0 in s.shape or not np.isfinite(s).all():
        raise ValueError(
            f"similarity must be a finite, non-empty (n_child, n_parent) matrix, got shape {s.shape}; "
            "a NaN usually means a constant activation matrix (check the anchors)."
        )
    n_rows, n_cols = s.shape
    best = s[0].copy()
    back = np.zeros((n_rows, n_cols), dtype=int)
    cols = np.arange(n_cols)
    for r in range(1, n_rows):
        running = np.maximum.accumulate(best)
        # column where the running maximum was first reached: the last strict record so far
        record = np.concatenate([[True], best[1:] > running[:-1]])
        back[r] = np.maximum.accumulate(np.where(record, cols, 0))
        best = s[r] + running
    path = [int(np.argmax(best))]
    for r in range(n_rows - 1, 0, -1):
        path.append(int(back[r, path[-1]]))
    return path[::-1]


class CKAMap(LayerMap):
    """Monotone alignment maximising linear CKA between child and parent layers on anchor activations.

    Every child layer gets one parent layer, non-decreasing with depth; ``similarity_`` is the
    (n_child_layers, n_parent_layers) CKA matrix.
    """

    name = "cka"
    reads_states = True

    def _pair(self, parent_acts, child_acts):
        _check_all_layers(self, parent_acts, child_acts)
        child = {l: child_acts[l] for l in range(self.n_child_layers_)}
        parent = {l: parent_acts[l] for l in range(self.n_parent_layers_)}
        self.similarity_ = cka_matrix(child, parent)
        return dict(enumerate(monotone_alignment(self.similarity_)))

    def to_dict(self):
        out = super().to_dict()
        if hasattr(self, "similarity_"):
            out["similarity"] = self.similarity_.tolist()
        return out


class FitMap(LayerMap):
    """Each child layer paired with the parent layer whose states predict it best: held-out R² of a
    standardised ridge map (α = ``alpha`` × the mean eigenvalue) from every parent layer to every
    child layer, on at most ``max_rows`` anchor rows (a seeded ``held_out`` share scores). With
    ``monotone`` the pairing is the non-decreasing one with the largest total R²; ``similarity_`` is
    the (n_child_layers, n_parent_layers) R² matrix. ``on="differences"``: ``Transfer`` hands it the
    corpus's contrast rows instead of the states (what a transferred vector is), when it has them."""

    name = "fit"

    def __init__(self, monotone: bool = True, alpha: float = 0.1, max_rows: int = 3000, held_out: float = 0.25,
                 seed: int = 0, on: str = "states"):
        if alpha <= 0 or not 0 < held_out < 1 or max_rows < 8:
            raise ValueError(f"FitMap needs alpha > 0, 0 < held_out < 1 and max_rows >= 8 (got {alpha}, {held_out}, {max_rows}).")
        if on not in ("states", "differences"):
            raise ValueError(f"FitMap on= 'states' or 'differences', not {on!r}.")
        self.monotone, self.alpha, self.max_rows = bool(monotone), float(alpha), int(max_rows)
        self.held_out, self.seed, self.on = float(held_out), int(seed), on

    @property
    def reads_states(self) -> bool:  # on="differences" pairs on the corpus's contrasts
        return self.on == "states"

    def get_params(self):
        return {"monotone": self.monotone, "alpha": self.alpha, "max_rows": self.max_rows,
                "held_out": self.held_out, "seed": self.seed, "on": self.on}

    def _pair(self, parent_acts, child_acts):
        _check_all_layers(self, parent_acts, child_acts)
        n = len(parent_acts[0])
        rng = np.random.default_rng(self.seed)
        rows = rng.permutation(n)[: self.max_rows]
        n_test = max(1, int(round(self.held_out * len(rows))))
        test, train = rows[:n_test], rows[n_test:]
        if len(train) < 4:
            raise ValueError(f"FitMap needs at least 8 anchor rows to fit and score, got {n}; use more anchor texts.")

        def std(acts, layer):
            x = torch.as_tensor(acts[layer]).float()
            mu, sd = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
            return (x[train] - mu) / sd, (x[test] - mu) / sd

        ys = [std(child_acts, l) for l in range(self.n_child_layers_)]
        y_train = torch.cat([y[0] for y in ys], 1)
        y_test = torch.cat([y[1] for y in ys], 1)
        spread = (y_test**2).sum(0)
        widths = [y[0].shape[1] for y in ys]
        sim = np.zeros((self.n_child_layers_, self.n_parent_layers_))
        for p in range(self.n_parent_layers_):
            x_train, x_test = std(parent_acts, p)
            gram = x_train.T @ x_train
            gram += self.alpha * float(torch.trace(gram)) / gram.shape[0] * torch.eye(gram.shape[0])
            w = torch.linalg.solve(gram, x_train.T @ y_train)
            r2 = 1 - ((y_test - x_test @ w) ** 2).sum(0) / spread.clamp(min=1e-12)
            sim[:, p] = [float(part.mean()) for part in r2.split(widths)]
        self.similarity_ = sim
        if self.monotone:
            return dict(enumerate(monotone_alignment(sim)))
        return {c: int(np.argmax(sim[c])) for c in range(self.n_child_layers_)}

    def to_dict(self):
        out = super().to_dict()
        if hasattr(self, "similarity_"):
            out["similarity"] = self.similarity_.tolist()
        return out


def _check_all_layers(layer_map: LayerMap, parent_acts, child_acts) -> None:
    """Raise unless both activation dicts hold every layer of their model."""
    if parent_acts is None or child_acts is None:
        raise ValueError(
            f"{type(layer_map).__name__} needs anchor activations: fit(n_parent, n_child, parent_acts, child_acts), "
            "e.g. from xsteer.transfer.collect_anchor_activations (or use Transfer.fit)."
        )
    for who, acts, depth in (
        ("parent", parent_acts, layer_map.n_parent_layers_),
        ("child", child_acts, layer_map.n_child_layers_),
    ):
        missing = sorted(set(range(depth)) - set(acts))
        if missing:
            raise ValueError(
                f"{type(layer_map).__name__} needs activations of every {who} layer; layers {missing} are "
                "missing. Collect all layers (layers=None)."
            )


class ExplicitMap(LayerMap):
    """A user-given child layer -> parent layer dictionary, checked against both depths."""

    name = "explicit"

    def __init__(self, mapping: Mapping[int, int]):
        if not mapping:
            raise ValueError("ExplicitMap needs at least one child layer -> parent layer entry.")
        self.mapping = {int(c): int(p) for c, p in mapping.items()}

    def get_params(self):
        return {"mapping": dict(sorted(self.mapping.items()))}

    def _pair(self, parent_acts, child_acts):
        for who, layers, depth in (
            ("child", list(self.mapping), self.n_child_layers_),
            ("parent", list(self.mapping.values()), self.n_parent_layers_),
        ):
            bad = sorted({l for l in layers if not 0 <= l < depth})
            if bad:
                raise ValueError(
                    f"ExplicitMap: {who} layers {bad} are outside the {who} model; valid {who} "
                    f"layers are 0..{depth - 1} ({depth} blocks)."
                )
        return dict(self.mapping)


LAYER_MAPS: dict[str, type[LayerMap]] = {
    cls.name: cls for cls in (GreedyMap, ProportionalMap, CKAMap, FitMap, ExplicitMap)
}


def make_layer_map(spec: str | Mapping[int, int] | LayerMap) -> LayerMap:
    """A layer map from a strategy name, a child -> parent dict (explicit), or a LayerMap."""
    if isinstance(spec, LayerMap):
        return spec
    if isinstance(spec, Mapping):
        return ExplicitMap(spec)
    if spec in ("greedy", "proportional", "cka", "fit"):
        return LAYER_MAPS[spec]()
    raise ValueError(
        f"Unknown layer map {spec!r}; use 'greedy', 'proportional', 'cka', 'fit', a dict child -> parent "
        "layer, or a LayerMap instance."
    )
