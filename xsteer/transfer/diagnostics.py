"""How close transferred vectors come to the child's own vectors, against a random-direction null."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xsteer.vectors import SteeringVectors

__all__ = ["TransferDiagnostics", "cosine_to_reference"]


@dataclass
class TransferDiagnostics:
    """Per-layer cosine of transferred vs reference vectors, the adapters' held-out R², and the null:
    mean and 95th percentile of |cos| between random unit directions and the reference vectors."""

    cosine: dict[int, float]
    r2: dict[int, float]
    null_mean: float
    null_p95: float
    d_model: int
    n_random: int
    seed: int

    def rows(self) -> list[dict[str, Any]]:
        """One record per layer (for a table): cosine, |cosine| above the null's 95th percentile, R²."""
        return [
            {
                "layer": l,
                "cosine": c,
                "above_null_p95": abs(c) > self.null_p95,
                "null_mean": self.null_mean,
                "null_p95": self.null_p95,
                "r2": self.r2.get(l, float("nan")),
            }
            for l, c in self.cosine.items()
        ]


def cosine_to_reference(
    transferred: SteeringVectors, reference: SteeringVectors, n_random: int = 100, seed: int = 0
) -> TransferDiagnostics:
    """Compare transferred vectors with the child's own vectors (same model) at their common layers."""
    if (transferred.model_name, transferred.d_model) != (reference.model_name, reference.d_model):
        raise ValueError(
            f"Transferred vectors are for {transferred.model_name!r} (width {transferred.d_model}) but the "
            f"reference is for {reference.model_name!r} (width {reference.d_model}); compare with the "
            "child's own vectors, extracted from the same child model."
        )
    layers = sorted(set(transferred.layers) & set(reference.layers))
    if not layers:
        raise ValueError(
            f"No common layers: transferred {transferred.layers}, reference {reference.layers}; extract "
            "the reference at the transferred layers."
        )
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}.")
    cosine = {l: float(transferred[l].double() @ reference[l].double()) for l in layers}
    gen = torch.Generator().manual_seed(seed)
    rand = torch.randn(n_random, reference.d_model, generator=gen, dtype=torch.float64)
    rand = rand / rand.norm(dim=1, keepdim=True)
    refs = torch.stack([reference[l].double() for l in layers])
    null = (rand @ refs.T).abs().numpy().ravel()
    r2 = {
        int(k): float(v)
        for k, v in transferred.provenance.get("r2", {}).items()
        if int(k) in cosine
    }
    return TransferDiagnostics(
        cosine=cosine,
        r2=r2,
        null_mean=float(null.mean()),
        null_p95=float(np.percentile(null, 95)),
        d_model=reference.d_model,
        n_random=n_random,
        seed=seed,
    )
