"""Concept-free contrast directions of an anchor corpus: for each labelled group of texts (a topic,
a style, a lexicon word) within one source, the mean activation of the group minus the mean of its
source. A difference-fitted map (``DifferenceAdapter``) learns from these rows."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["contrast_texts", "group_contrasts"]


def _groups(sources: Sequence[str], labels: Mapping[str, Sequence[str]], min_size: int):
    """(members, bases, base_of, names): the row sets of every group and of every (source, column)
    whose groups it is contrasted against."""
    sources = np.asarray(sources, dtype=object)
    n = len(sources)
    columns = {k: np.asarray(v, dtype=object) for k, v in labels.items()}
    for k, v in columns.items():
        if v.shape != (n,):
            raise ValueError(f"labels[{k!r}] has {len(v)} entries for {n} texts; give one label per text.")
    members: list[np.ndarray] = []
    bases: list[np.ndarray] = []  # one row set per (source, column)
    base_of: list[int] = []
    names: list[str] = []
    for src in dict.fromkeys(sources):
        in_src = sources == src
        for col, lab in columns.items():
            have = in_src & (lab != "")
            groups = [g for g in dict.fromkeys(lab[have]) if (have & (lab == g)).sum() >= min_size]
            if len(groups) < 2:
                continue
            bases.append(np.flatnonzero(have))
            for g in groups:
                members.append(np.flatnonzero(have & (lab == g)))
                base_of.append(len(bases) - 1)
                names.append(f"{src}|{col}|{g}")
    if not names:
        raise ValueError("No contrast groups: label at least two groups of >= min_size texts in one source.")
    return members, bases, base_of, names


def contrast_texts(sources: Sequence[str], labels: Mapping[str, Sequence[str]], *, min_size: int = 2) -> np.ndarray:
    """True for each text some contrast of :func:`group_contrasts` reads (the others change no
    contrast: unlabelled texts, and sources with fewer than two groups in every column)."""
    _, bases, _, _ = _groups(sources, labels, min_size)
    mask = np.zeros(len(sources), dtype=bool)
    mask[np.concatenate(bases)] = True
    return mask


def group_contrasts(
    acts: Mapping[int, torch.Tensor],
    sources: Sequence[str],
    labels: Mapping[str, Sequence[str]],
    *,
    min_size: int = 2,
) -> tuple[dict[int, torch.Tensor], list[str]]:
    """Contrast rows per layer, (n_contrasts, d), and their names ("source|column|label").

    ``acts``: layer -> (n_texts, d) rows of the corpus texts; ``sources``: each text's source;
    ``labels``: column name -> one label per text ("" = unlabelled). A group needs ``min_size``
    texts, and its source at least one other group in that column (else its contrast is zero).
    """
    members, bases, base_of, names = _groups(sources, labels, min_size)
    n = len(sources)
    out = {}
    for layer, x in acts.items():
        x = torch.as_tensor(x).double()
        if x.shape[0] != n:
            raise ValueError(f"acts at layer {layer} have {x.shape[0]} rows for {n} texts.")
        base = torch.stack([x[b].mean(0) for b in bases])
        out[layer] = torch.stack([x[m].mean(0) - base[k] for m, k in zip(members, base_of)]).float()
    return out, names
