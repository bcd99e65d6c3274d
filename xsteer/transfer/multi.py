"""Several parents, one child: each parent's vectors carried by its own fitted ``Transfer``, the
child-space unit vectors averaged per child layer (the canonical direction of anchor coordinate
space, built in the child's own coordinates)."""

from __future__ import annotations

from typing import Sequence

import torch

from xsteer.vectors import SteeringVectors

__all__ = ["MultiParentTransfer"]


class MultiParentTransfer:
    """Fitted transfers from several parents into one child; :meth:`apply` averages their results."""

    def __init__(self, transfers: Sequence):
        transfers = list(transfers)
        if not transfers:
            raise ValueError("MultiParentTransfer needs at least one fitted Transfer.")
        for t in transfers:
            t._check_fitted()
        children = {t.child_ for t in transfers}
        if len(children) != 1:
            raise ValueError(f"Every transfer must go into the same child; got {sorted(map(str, children))}.")
        self.transfers = transfers

    @property
    def child_(self):
        """The child every transfer goes into."""
        return self.transfers[0].child_

    def apply(self, parent_vectors: Sequence[SteeringVectors], child_pairs_acts=None) -> SteeringVectors:
        """Unit mean of the transferred unit vectors at every child layer all parents reach (each
        re-signed on ``child_pairs_acts`` when given, see ``Transfer.apply``)."""
        parent_vectors = list(parent_vectors)
        if len(parent_vectors) != len(self.transfers):
            raise ValueError(f"Give one vector set per parent: {len(self.transfers)} transfers, "
                             f"{len(parent_vectors)} vector sets (same order).")
        moved = [t.apply(v, child_pairs_acts) for t, v in zip(self.transfers, parent_vectors)]
        layers = sorted(set.intersection(*(set(m.layers) for m in moved)))
        if not layers:
            raise ValueError("The parents' transfers reach no child layer in common; fit them with one layer map.")
        mean = {l: torch.stack([m[l] for m in moved]).mean(0) for l in layers}
        child = self.child_
        return SteeringVectors.from_raw(
            mean, model_name=child.name, d_model=child.d_model, n_layers=child.n_layers,
            method="transfer:mean_of_" + "+".join(t.parent_.name for t in self.transfers),
            seed=parent_vectors[0].seed, data_hash=parent_vectors[0].data_hash,
            provenance={"parents": [m.provenance for m in moved]},
        )
