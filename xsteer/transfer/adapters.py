"""Dimension adapters: linear maps from a d_parent-wide residual stream into a d_child-wide one.

Each adapter is fitted on paired anchor activations of one (parent layer, child layer) pair. It
learns ``W_`` (d_parent, d_child) between centred parent rows and centred child rows; a *direction*
maps as ``v @ W_`` (no intercept). ``score_`` is the R² of the fitted map on a held-out share of the
anchors: 1 - SSE / SS per child dimension, averaged over dimensions (as sklearn's r2_score), with SS around
the training mean of the child rows (so a map no better than
predicting that mean scores <= 0). After scoring, the map is refitted on all anchors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "DimAdapter",
    "IdentityAdapter",
    "TruncatePadAdapter",
    "RandomProjectionAdapter",
    "RidgeAdapter",
    "ProcrustesAdapter",
    "ADAPTERS",
    "DEFAULT_ALPHAS",
    "make_adapter",
]

DEFAULT_ALPHAS = tuple(10.0**k for k in range(-4, 4))
_TENSORS = ("W_", "mean_parent_", "mean_child_")


def _rows(x: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must be (n_anchors, width), got shape {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError(
            f"{what} has NaN or infinite entries; recollect the activations in float32."
        )
    return x


def _labels(n: int, groups: Sequence[int] | None) -> np.ndarray:
    labels = np.arange(n) if groups is None else np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must give one label per row ({n}), got shape {labels.shape}.")
    return labels


def _split(groups: np.ndarray, held_out: float, seed: int, widths: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held-out); rows of one group stay on one side."""
    labels = np.unique(groups)
    n_held = max(1, int(round(held_out * len(labels))))
    perm = np.random.default_rng(seed).permutation(labels)
    is_held = np.isin(groups, perm[:n_held])
    train, test = np.flatnonzero(~is_held), np.flatnonzero(is_held)
    if len(labels) - n_held < 2:
        raise ValueError(
            f"Too few anchors to fit and score a {widths or 'parent -> child'} map: {len(groups)} rows in "
            f"{len(labels)} texts leave {len(labels) - n_held} texts to fit (need 2; a map this wide wants "
            f"hundreds) after holding out {held_out:.0%}. Use more anchor texts, or none: "
            "Transfer().fit(parent, child) fits on the built-in anchor corpus."
        )
    return train, test


def _blocks(groups: np.ndarray) -> list[torch.Tensor]:
    """Row indices of every group, stacked per group size: tensors (n_groups_of_size_k, k)."""
    _, inverse = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    by_size: dict[int, list[np.ndarray]] = {}
    for m in members:
        by_size.setdefault(len(m), []).append(m)
    return [torch.as_tensor(np.stack(ms)) for ms in by_size.values()]


class DimAdapter(ABC):
    """A fitted linear map parent width -> child width; scikit-learn style (fitted attributes end in ``_``)."""

    name: ClassVar[str]
    is_control: ClassVar[bool] = False
    #: what its rows are: "states" (activations; an intercept is fitted), "differences" (contrast
    #: vectors; fitted through the origin) or "vocab" (token embeddings of shared strings)
    source: ClassVar[str] = "states"
    _params: ClassVar[tuple[str, ...]] = ("held_out", "seed")
    _json_attrs: ClassVar[tuple[str, ...]] = ("score_", "n_anchors_")

    def __init__(self, *, held_out: float = 0.2, seed: int = 0):
        if not 0.0 < held_out < 1.0:
            raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out}.")
        self.held_out = float(held_out)
        self.seed = int(seed)

    # ------------------------------------------------------------------ strategy hooks

    def _means(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row means removed before fitting: zero for differences (no intercept)."""
        if self.source == "differences":
            return torch.zeros(x.shape[1], dtype=x.dtype), torch.zeros(y.shape[1], dtype=y.dtype)
        return x.mean(0), y.mean(0)

    def _check_widths(self, d_parent: int, d_child: int) -> None:
        """Raise if this adapter cannot map these widths."""

    def _select(self, x: torch.Tensor, y: torch.Tensor, groups: np.ndarray) -> None:
        """Choose hyper-parameters on centred training rows (``groups``: their text labels)."""

    @abstractmethod
    def _solve(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``W`` (d_parent, d_child), float64, from centred parent rows ``x`` and child rows ``y``."""

    # ------------------------------------------------------------------ public API

    def fit(
        self,
        X_parent: torch.Tensor | np.ndarray,
        X_child: torch.Tensor | np.ndarray,
        groups: Sequence[int] | None = None,
    ) -> DimAdapter:
        """Fit on paired rows (n, d_parent) and (n, d_child); rows sharing a ``groups`` label (e.g.
        two poolings of one text) are held out together."""
        x, y = _rows(X_parent, "X_parent"), _rows(X_child, "X_child")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"X_parent has {x.shape[0]} rows but X_child has {y.shape[0]}; rows must be the same "
                "anchor texts in the same order."
            )
        self._check_widths(x.shape[1], y.shape[1])
        labels = _labels(x.shape[0], groups)
        train, test = _split(labels, self.held_out, self.seed, f"{x.shape[1]} -> {y.shape[1]}")
        mp, mc = self._means(x[train], y[train])
        xt, yt = x[train] - mp, y[train] - mc
        if float(xt.abs().max()) == 0.0:
            raise ValueError(
                "The parent anchor activations are identical across texts; use varied anchor texts."
            )
        self._select(xt, yt, labels[train])
        pred = mc + (x[test] - mp) @ self._solve(xt, yt)
        # R² per child dimension, then averaged (sklearn's 'uniform_average'): a variance-weighted
        # R² would be decided by the few massive-activation dimensions these models have.
        spread = ((y[test] - mc) ** 2).sum(0)
        resid = ((y[test] - pred) ** 2).sum(0)
        keep = spread > 0
        self.score_ = float((1.0 - resid[keep] / spread[keep]).mean()) if keep.any() else float("nan")
        mp, mc = self._means(x, y)
        self.W_ = self._solve(x - mp, y - mc).float()
        self.mean_parent_, self.mean_child_ = mp.float(), mc.float()
        self.n_anchors_ = int(x.shape[0])
        return self

    def transform(self, v: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Map direction(s) (d_parent,) or (k, d_parent) to (d_child,) or (k, d_child); no intercept."""
        if not hasattr(self, "W_"):
            raise RuntimeError(
                f"{type(self).__name__} is not fitted; call .fit(X_parent, X_child) first."
            )
        v = torch.as_tensor(v).detach().to("cpu", torch.float64)
        d_parent = self.W_.shape[0]
        if v.ndim not in (1, 2) or v.shape[-1] != d_parent:
            raise ValueError(
                f"{type(self).__name__} maps {d_parent}-wide vectors, got shape {tuple(v.shape)}; "
                f"pass ({d_parent},) or (k, {d_parent}) from the parent it was fitted on."
            )
        return (v @ self.W_.double()).float()

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable."""
        params = {k: getattr(self, k) for k in self._params}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}

    def to_dict(self) -> dict[str, Any]:
        """Strategy, parameters and fitted non-tensor attributes (tensors: :meth:`tensors`)."""
        return {
            "name": self.name,
            "params": self.get_params(),
            "fitted": {k: getattr(self, k) for k in self._json_attrs if hasattr(self, k)},
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """Fitted tensors by attribute name without the trailing underscore."""
        return {k.rstrip("_"): getattr(self, k) for k in _TENSORS if hasattr(self, k)}

    @staticmethod
    def from_dict(
        data: Mapping[str, Any], tensors: Mapping[str, torch.Tensor] | None = None
    ) -> DimAdapter:
        """Rebuild an adapter from :meth:`to_dict` (and :meth:`tensors` for the fitted state)."""
        if data.get("name") not in ADAPTERS:
            raise ValueError(
                f"Unknown adapter {data.get('name')!r}; expected one of {sorted(ADAPTERS)}."
            )
        obj = ADAPTERS[data["name"]](**data.get("params", {}))
        for k, v in data.get("fitted", {}).items():
            setattr(obj, k, v)
        for k, v in (tensors or {}).items():
            setattr(obj, k + "_", v.to(torch.float32))
        return obj

    def clone(self) -> DimAdapter:
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params)
        head = f"{type(self).__name__}({params})"
        if self.is_control:
            head += " [control]"
        if hasattr(self, "W_"):
            d_p, d_c = self.W_.shape
            head += f" fitted {d_p}->{d_c}, held-out R2={self.score_:.3f}"
        return head


class IdentityAdapter(DimAdapter):
    """No mapping: the parent vector is used as is (equal widths only)."""

    name = "identity"

    def _check_widths(self, d_parent, d_child):
        if d_parent != d_child:
            raise ValueError(
                f"IdentityAdapter needs equal widths, got parent {d_parent} and child {d_child}. Use "
                "RidgeAdapter (default) or ProcrustesAdapter, or the controls TruncatePadAdapter / "
                "RandomProjectionAdapter."
            )

    def _solve(self, x, y):
        return torch.eye(x.shape[1], y.shape[1], dtype=torch.float64)


class TruncatePadAdapter(DimAdapter):
    """Control: keep the first d_child coordinates, or pad with zeros (ignores the anchors)."""

    name = "truncate_pad"
    is_control = True

    def _solve(self, x, y):
        return torch.eye(x.shape[1], y.shape[1], dtype=torch.float64)


class RandomProjectionAdapter(DimAdapter):
    """Control: a seeded random semi-orthogonal map (ignores the anchors)."""

    name = "random_projection"
    is_control = True
    _params = ("seed", "held_out")

    def __init__(self, seed: int = 0, *, held_out: float = 0.2):
        super().__init__(held_out=held_out, seed=seed)

    def _solve(self, x, y):
        d_p, d_c = x.shape[1], y.shape[1]
        gen = torch.Generator().manual_seed(self.seed)
        q, _ = torch.linalg.qr(
            torch.randn(max(d_p, d_c), min(d_p, d_c), generator=gen, dtype=torch.float64)
        )
        return q if d_p >= d_c else q.T


class RidgeAdapter(DimAdapter):
    """Centred ridge regression child ~ parent; the default adapter.

    ``alphas`` are relative to the mean eigenvalue of the centred parent covariance (scale-free);
    ``alpha_`` is the one with the smallest exact leave-one-text-out error on the training rows
    (rows sharing a ``groups`` label leave together), so the held-out ``score_`` stays untouched
    by the choice; ``cv_errors_`` holds that error (mean squared, per child coordinate) per alpha.
    """

    name = "ridge"
    _params = ("alphas", "held_out", "seed")
    _json_attrs = ("score_", "n_anchors_", "alpha_", "cv_errors_", "score_last_")

    def __init__(
        self, alphas: Sequence[float] = DEFAULT_ALPHAS, *, held_out: float = 0.2, seed: int = 0
    ):
        super().__init__(held_out=held_out, seed=seed)
        self.alphas = tuple(float(a) for a in alphas)
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be a non-empty list of positive numbers, got {alphas}.")

    @staticmethod
    def _svd(x):
        """Thin SVD (u, s, v) of ``x`` from the smaller Gram matrix (null directions dropped), and
        the mean eigenvalue of xᵀx over the parent width (the unit of ``alphas``)."""
        wide = x.shape[0] < x.shape[1]
        eig, vec = torch.linalg.eigh(x @ x.T if wide else x.T @ x)
        keep = eig > eig.max() * 1e-12
        s, vec = eig[keep].sqrt(), vec[:, keep]
        other = (x.T if wide else x) @ vec / s
        u, v = (vec, other) if wide else (other, vec)
        return u, s, v, float(eig[keep].sum()) / x.shape[1]

    def _select(self, x, y, groups):
        u, s, _, unit = self._svd(x)
        uty = u.T @ y
        blocks = _blocks(groups)
        errors = []
        for a in self.alphas:
            shrink = s**2 / (s**2 + a * unit)
            resid = y - u @ (shrink[:, None] * uty)
            error = 0.0
            for idx in blocks:  # exact leave-one-group-out residuals: (I - H_gg)^-1 r_g
                ug = u[idx]
                intercept = 0.0 if self.source == "differences" else 1.0 / x.shape[0]
                hat = intercept + (ug * shrink) @ ug.transpose(1, 2)  # the intercept counts too
                eye = torch.eye(idx.shape[1], dtype=hat.dtype)
                error += float((torch.linalg.solve(eye - hat, resid[idx]) ** 2).sum())
            errors.append(error / y.numel())
        self.cv_errors_ = errors
        self.alpha_ = self.alphas[int(np.argmin(errors))]

    def _solve(self, x, y):
        u, s, v, unit = self._svd(x)
        return v @ ((s / (s**2 + self.alpha_ * unit))[:, None] * (u.T @ y))


class ProcrustesAdapter(DimAdapter):
    """Semi-orthogonal map U Vᵀ from the SVD of the centred cross-covariance Xᵀ Y, times an isotropic
    ``scale_`` when ``scale`` (least-squares optimal when d_parent <= d_child)."""

    name = "procrustes"
    _params = ("scale", "held_out", "seed")
    _json_attrs = ("score_", "n_anchors_", "scale_")

    def __init__(self, scale: bool = True, *, held_out: float = 0.2, seed: int = 0):
        super().__init__(held_out=held_out, seed=seed)
        self.scale = bool(scale)

    def _solve(self, x, y):
        u, s, vh = torch.linalg.svd(x.T @ y, full_matrices=False)
        q = u @ vh
        self.scale_ = float(s.sum()) / float(((x @ q) ** 2).sum()) if self.scale else 1.0
        return self.scale_ * q


ADAPTERS: dict[str, type[DimAdapter]] = {
    cls.name: cls
    for cls in (
        IdentityAdapter,
        TruncatePadAdapter,
        RandomProjectionAdapter,
        RidgeAdapter,
        ProcrustesAdapter,
    )
}


def make_adapter(spec: str | DimAdapter) -> DimAdapter:
    """An unfitted adapter from a strategy name or a template instance (cloned)."""
    if isinstance(spec, DimAdapter):
        return spec.clone()
    if spec not in ADAPTERS:
        raise ValueError(
            f"Unknown adapter {spec!r}; use one of {sorted(ADAPTERS)} or a DimAdapter instance."
        )
    return ADAPTERS[spec]()
