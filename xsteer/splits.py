"""The one held-out split: a seeded share of items (or of groups of rows) kept out of a fit."""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["held_out_split"]


def held_out_split(
    items: int | Sequence | np.ndarray, held_out: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit rows, held-out rows), each sorted: ``round(held_out × k)`` of the ``k`` groups are
    held out (at least one when ``held_out > 0``).

    ``items`` is a count ``n`` (every row its own group) or one group label per row (rows of one
    group, e.g. one text pooled two ways, land on the same side).
    """
    if not 0 <= held_out < 1:
        raise ValueError(f"held_out must be a fraction in [0, 1), not {held_out!r}.")
    labels = np.arange(int(items)) if np.ndim(items) == 0 else np.asarray(items)
    groups = np.unique(labels)
    perm = np.random.default_rng(seed).permutation(groups)
    n_held = int(round(held_out * len(groups)))
    if held_out > 0:
        n_held = max(1, n_held)
    is_held = np.isin(labels, perm[:n_held])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)
