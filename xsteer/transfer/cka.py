"""Linear centred kernel alignment (CKA) between activation matrices whose rows are paired."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

__all__ = ["linear_cka", "cka_matrix"]


def _centred(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.ndim != 2:
        raise ValueError(f"CKA needs (n_rows, width) matrices, got shape {tuple(x.shape)}.")
    return x - x.mean(0, keepdim=True)


def _self_norm(xc: torch.Tensor) -> float:
    """Frobenius norm of the centred Gram matrix, computed in the smaller space."""
    small = xc @ xc.T if xc.shape[0] < xc.shape[1] else xc.T @ xc
    return float(torch.linalg.matrix_norm(small))


def _cka(xc: torch.Tensor, yc: torch.Tensor, x_norm: float, y_norm: float) -> float:
    if x_norm == 0.0 or y_norm == 0.0:
        return float("nan")
    return float(torch.linalg.matrix_norm(yc.T @ xc) ** 2) / (x_norm * y_norm)


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Linear CKA of two (n, d_x) and (n, d_y) matrices with paired rows; NaN if either is constant."""
    xc, yc = _centred(x), _centred(y)
    if xc.shape[0] != yc.shape[0]:
        raise ValueError(
            f"CKA needs paired rows, got {xc.shape[0]} and {yc.shape[0]} rows; pass activations "
            "of the same texts in the same order."
        )
    if xc.shape[0] < 2:
        raise ValueError("CKA needs at least 2 rows; pass activations of at least 2 texts.")
    return _cka(xc, yc, _self_norm(xc), _self_norm(yc))


def cka_matrix(rows: Mapping[int, torch.Tensor], cols: Mapping[int, torch.Tensor]) -> np.ndarray:
    """Linear CKA of every layer in ``rows`` against every layer in ``cols``, layers in ascending order."""
    rc = {l: _centred(rows[l]) for l in sorted(rows)}
    cc = {l: _centred(cols[l]) for l in sorted(cols)}
    counts = {m.shape[0] for m in (*rc.values(), *cc.values())}
    if len(counts) != 1:
        raise ValueError(
            f"CKA needs paired rows, got row counts {sorted(counts)} across layers; collect every "
            "layer of both models on the same texts."
        )
    rn = {l: _self_norm(m) for l, m in rc.items()}
    cn = {l: _self_norm(m) for l, m in cc.items()}
    return np.array([[_cka(rc[a], cc[b], rn[a], cn[b]) for b in cc] for a in rc])
