"""The vectors beside every transfer number (``docs/glossary.md``): the child's own vector (from all of
a concept's train pairs, and from only k of them: the exchange rate), and what the same transfer
carries besides the concept — random parent directions (``mapped_random``) and other concepts'
parent vectors (``wrong_concept``). Every carried vector is signed by the same vote on the child's
train pairs as the transferred one, so no control is handicapped by its sign."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from xsteer.extract import fit_direction, random_vectors
from xsteer.vectors import SteeringVectors

__all__ = ["CarriedVectors", "carry", "pair_subset", "vectors_from_acts"]

Acts = Mapping[int, torch.Tensor]


def _np(x) -> np.ndarray:
    return torch.as_tensor(x).detach().to("cpu", torch.float64).numpy()


def pair_subset(n_pairs: int, k: int, seed: int) -> np.ndarray:
    """Indices of ``k`` of ``n_pairs`` train pairs, seeded; the first k of one permutation, so the
    subsets of growing k are nested."""
    if not 1 <= k <= n_pairs:
        raise ValueError(f"k = {k} child pairs is outside 1..{n_pairs} (the concept's train pairs); pick smaller k.")
    return np.sort(np.random.default_rng([seed, 7]).permutation(n_pairs)[:k])


def vectors_from_acts(
    pos: Acts, neg: Acts, info, *, method: str = "mean_diff", seed: int = 0, pairs: np.ndarray | None = None,
    data_hash: str | None = None,
) -> SteeringVectors:
    """Unit vectors of ``info``'s model at every layer of ``pos``/``neg`` (layer -> (n_pairs, d)),
    fitted by :func:`xsteer.extract.fit_direction` on the pairs ``pairs`` (default: all)."""
    directions = {}
    for l in sorted(pos):
        diffs = _np(pos[l]) - _np(neg[l])
        if pairs is not None:
            diffs = diffs[pairs]
        directions[l] = torch.from_numpy(fit_direction(diffs, method, seed)).float()
    return SteeringVectors(directions=directions, model_name=info.name, d_model=info.d_model, n_layers=info.n_layers,
                           method=method, seed=seed, data_hash=data_hash)


@dataclass
class CarriedVectors:
    """What one fitted transfer makes of a concept's parent vector and of the controls."""

    transferred: SteeringVectors
    mapped_random: list[SteeringVectors]
    wrong_concept: dict[str, SteeringVectors]


def carry(
    transfer,
    parent_vectors: SteeringVectors,
    child_pairs_acts: tuple[Acts, Acts],
    *,
    wrong_concept: Mapping[str, SteeringVectors] | None = None,
    n_mapped_random: int = 0,
    seed: int = 0,
) -> CarriedVectors:
    """The concept's parent vector, ``n_mapped_random`` seeded random parent directions (at the same
    parent layers) and each other concept's parent vector, all through ``transfer.apply`` with the
    same child pair activations (one sign vote for all)."""
    if isinstance(n_mapped_random, bool) or not isinstance(n_mapped_random, int) or n_mapped_random < 0:
        raise ValueError(f"n_mapped_random must be an int >= 0, not {n_mapped_random!r}.")
    moved = transfer.apply(parent_vectors, child_pairs_acts)
    rand = [transfer.apply(random_vectors(parent_vectors, seed=10_000 + 1000 * seed + i), child_pairs_acts)
            for i in range(n_mapped_random)]
    wrong = {name: transfer.apply(v, child_pairs_acts) for name, v in (wrong_concept or {}).items()}
    return CarriedVectors(moved, rand, wrong)

