"""Transfer estimators beyond plain ridge: linear maps parent width -> child width with the adapters'
fit/transform contract (``xsteer.transfer.adapters.DimAdapter``), each fitted on the rows its
``source`` names.

- :class:`StandardizedRidgeAdapter` ("ridge_std"): ridge on standardised (or whitened) parent and
  child rows, so low-variance directions are not shrunk away and massive dimensions do not decide α.
- :class:`DifferenceAdapter` ("difference"): the same fit through the origin on *difference* rows
  (concept-free contrasts of the anchor corpus, :func:`xsteer.transfer.contrasts.group_contrasts`),
  optionally with the centred states as a prior.
- :class:`VocabBridge` ("vocab"): the same fit on token embeddings of words both vocabularies share
  (EMB2EMB), one map for every layer.
- :class:`AnchorCoordinateAdapter` ("anchor_coords"): a direction's cosines to the anchors in the
  parent (standardised units) rebuilt from the same anchors in the child (relative representations,
  anchor coordinate space).
- :class:`CovarianceProbeAdapter` ("probe_cov"): the parent vector read as a probe, carried by the
  transpose of a child -> parent map and turned into a steering direction by the child's covariance
  (v ∝ Σ_child · B · w_parent).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from xsteer.transfer.adapters import ADAPTERS, DEFAULT_ALPHAS, DimAdapter, RidgeAdapter, _rows

__all__ = [
    "AnchorCoordinateAdapter",
    "CovarianceProbeAdapter",
    "DifferenceAdapter",
    "StandardizedRidgeAdapter",
    "VocabBridge",
]


def _scale(x: torch.Tensor) -> torch.Tensor:
    """Root mean square of each column (rows already centred), floored so a dead column stays finite."""
    rms = x.pow(2).mean(0).sqrt()
    return rms.clamp(min=float(rms.max()) * 1e-6 + 1e-30)


def _whitener(x: torch.Tensor) -> torch.Tensor:
    """(d, d) matrix P with (x P)ᵀ(x P) / n = I on the span of x (null directions scaled as the
    smallest kept one)."""
    eig, vec = torch.linalg.eigh(x.T @ x / x.shape[0])
    eig = eig.clamp(min=float(eig.max()) * 1e-8)
    return vec @ torch.diag(eig.rsqrt()) @ vec.T


class StandardizedRidgeAdapter(RidgeAdapter):
    """Ridge between standardised spaces: every parent and child coordinate scaled to unit spread
    (``whiten=True``: the parent rows fully whitened) before the fit, the map scaled back after.
    α is chosen as in :class:`RidgeAdapter` (exact leave-one-group-out), now in those units."""

    name = "ridge_std"
    _params = ("alphas", "whiten", "held_out", "seed")

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, *, whiten: bool = False,
                 held_out: float = 0.2, seed: int = 0):
        super().__init__(alphas, held_out=held_out, seed=seed)
        self.whiten = bool(whiten)

    def _units(self, x, y):
        p = _whitener(x) if self.whiten else torch.diag(1.0 / _scale(x))
        return p, _scale(y)

    def _select(self, x, y, groups):
        p, sy = self._units(x, y)
        super()._select(x @ p, y / sy, groups)

    def _solve(self, x, y):
        p, sy = self._units(x, y)
        return p @ super()._solve(x @ p, y / sy) * sy


class DifferenceAdapter(StandardizedRidgeAdapter):
    """Standardised ridge through the origin on difference rows (parent contrast -> the same
    contrast in the child). ``prior`` > 0 adds the centred anchor *states* given to :meth:`fit`
    as extra rows, weighted to ``prior`` times the total weight of the differences."""

    name = "difference"
    source = "differences"
    _params = ("alphas", "whiten", "prior", "held_out", "seed")

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, *, whiten: bool = False, prior: float = 0.0,
                 held_out: float = 0.2, seed: int = 0):
        super().__init__(alphas, whiten=whiten, held_out=held_out, seed=seed)
        if prior < 0:
            raise ValueError(f"prior must be >= 0, got {prior}.")
        self.prior = float(prior)

    def fit(self, X_parent, X_child, groups=None, *, states=None) -> DifferenceAdapter:
        """Fit on difference rows (and, with ``prior`` > 0, ``states`` = (parent rows, child rows))."""
        if not self.prior or states is None:
            return super().fit(X_parent, X_child, groups)
        dp, dc = _rows(X_parent, "X_parent"), _rows(X_child, "X_child")
        sp, sc = _rows(states[0], "parent states"), _rows(states[1], "child states")
        sp, sc = sp - sp.mean(0), sc - sc.mean(0)
        w = (self.prior * dp.pow(2).sum() / sp.pow(2).sum().clamp(min=1e-30)).sqrt()
        labels = np.arange(len(dp)) if groups is None else np.asarray(groups)
        extra = labels.max() + 1 + np.arange(len(sp))
        return super().fit(torch.cat([dp, w * sp]), torch.cat([dc, w * sc]), np.concatenate([labels, extra]))


class VocabBridge(StandardizedRidgeAdapter):
    """EMB2EMB: standardised ridge on the token embeddings of words both tokenizers write as one
    token (rows from :func:`xsteer.transfer.vocab.embedding_rows`); ``Transfer`` uses the one map at
    every layer pair."""

    name = "vocab"
    source = "vocab"


class AnchorCoordinateAdapter(DimAdapter):
    """Anchor-coordinate reconstruction: in standardised units, a parent direction's coordinates
    are its inner products with the unit-length centred parent anchors; the child direction is the
    ridge least-squares vector whose inner products with the same anchors in the child match them.
    Linear: W = S_p⁻¹ Âpᵀ Âc (Âcᵀ Âc + α·mean eig)⁻¹ S_c, so it recovers maps that are isometries
    in standardised units (cosines to anchors are what it keeps). α is the one of ``alphas`` whose map
    best predicts held-out child rows (a seeded ``held_out`` share of the training groups)."""

    name = "anchor_coords"
    _params = ("alphas", "held_out", "seed")
    _json_attrs = ("score_", "n_anchors_", "alpha_")

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, *, held_out: float = 0.2, seed: int = 0):
        super().__init__(held_out=held_out, seed=seed)
        self.alphas = tuple(float(a) for a in alphas)
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be a non-empty list of positive numbers, got {alphas}.")

    @staticmethod
    def _coords(x, y):
        sx, sy = _scale(x), _scale(y)
        unit = lambda a: a / a.norm(dim=1, keepdim=True).clamp(min=1e-30)
        return sx, sy, unit(x / sx), unit(y / sy)

    def _map(self, x, y, alpha):
        sx, sy, ap, ac = self._coords(x, y)
        cc = ac.T @ ac  # Âpᵀ (Âc Âcᵀ + r)⁻¹ Âc = Âpᵀ Âc (Âcᵀ Âc + r)⁻¹: a width-sized solve
        ridge = alpha * float(torch.trace(cc)) / cc.shape[0]
        mid = torch.linalg.solve(cc + ridge * torch.eye(cc.shape[0], dtype=cc.dtype), (ap.T @ ac).T).T
        return mid / sx[:, None] * sy

    def _select(self, x, y, groups):
        from xsteer.transfer.adapters import _split

        fit, val = _split(groups, self.held_out, self.seed + 1)
        mx, my = x[fit].mean(0), y[fit].mean(0)
        sy = _scale(y[fit] - my)
        errors = [float((((x[val] - mx) @ self._map(x[fit] - mx, y[fit] - my, a) + my - y[val]) / sy).pow(2).mean())
                  for a in self.alphas]
        self.alpha_ = self.alphas[int(np.argmin(errors))]

    def _solve(self, x, y):
        return self._map(x, y, self.alpha_)


class CovarianceProbeAdapter(DimAdapter):
    """Probe-to-steering conversion: a standardised ridge map B child -> parent is fitted on the
    anchor states; a parent vector w (read as a probe) becomes the child probe B w, and the child
    steering direction Σ_child B w (Σ_child: the child's anchor covariance). W_ = Bᵀ Σ_child."""

    name = "probe_cov"
    _params = ("alphas", "held_out", "seed")
    _json_attrs = ("score_", "n_anchors_", "alpha_")

    def __init__(self, alphas: Sequence[float] = DEFAULT_ALPHAS, *, held_out: float = 0.2, seed: int = 0):
        super().__init__(held_out=held_out, seed=seed)
        self.alphas = tuple(float(a) for a in alphas)

    def _reverse(self) -> StandardizedRidgeAdapter:
        return StandardizedRidgeAdapter(self.alphas, held_out=self.held_out, seed=self.seed)

    def _select(self, x, y, groups):
        back = self._reverse()
        back._select(y, x, groups)
        self.alpha_ = back.alpha_

    def _solve(self, x, y):
        back = self._reverse()
        back.alpha_ = self.alpha_
        b = back._solve(y, x)  # (d_child, d_parent): x ≈ y b
        cov = y.T @ y / y.shape[0]
        return b.T @ cov

    def fit(self, X_parent, X_child, groups=None) -> CovarianceProbeAdapter:
        """Fit; ``score_`` is the held-out R² of the child -> parent map B (W_ predicts no rows)."""
        super().fit(X_parent, X_child, groups)
        self.score_ = self._reverse().fit(X_child, X_parent, groups).score_
        return self


ESTIMATORS: tuple[type[DimAdapter], ...] = (
    StandardizedRidgeAdapter, DifferenceAdapter, VocabBridge, AnchorCoordinateAdapter, CovarianceProbeAdapter,
)

ADAPTERS.update({cls.name: cls for cls in ESTIMATORS})
