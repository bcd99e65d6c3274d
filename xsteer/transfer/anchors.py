"""Anchor activations: one row per (text, pooling) per layer, paired across models by text."""

from __future__ import annotations

import hashlib
import json
from typing import Literal, Sequence

import numpy as np
import torch

from xsteer.activations import collect_pooled

__all__ = [
    "MIN_ANCHORS",
    "anchor_texts",
    "anchor_hash",
    "anchor_groups",
    "collect_anchor_activations",
    "collect_corpus_activations",
]

MIN_ANCHORS = 2
Pooling = Literal["last", "mean"]


def anchor_texts(texts: Sequence[str]) -> list[str]:
    """The texts as a list without duplicates (first occurrence kept), checked for use as anchors."""
    if isinstance(texts, str):
        raise TypeError(
            "anchor texts must be a list of strings, not one string; wrap it in a list."
        )
    out = list(dict.fromkeys(texts))
    bad = [t for t in out if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(
            f"anchor texts must be non-empty strings; got {bad[:3]!r}. Drop or fix them."
        )
    if len(out) < MIN_ANCHORS:
        raise ValueError(
            f"Need at least {MIN_ANCHORS} distinct anchor texts, got {len(out)}; pass a list of varied "
            "texts (a few hundred recommended: part fits the adapters, the rest scores them), e.g. "
            "the questions of a task's training split."
        )
    return out


def anchor_hash(texts: Sequence[str], pooling: Sequence[Pooling]) -> str:
    """Short content hash of the anchor texts and poolings (for provenance)."""
    raw = json.dumps({"texts": list(texts), "pooling": list(pooling)}, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def anchor_groups(n_texts: int, n_poolings: int) -> torch.Tensor:
    """Text index of every row of :func:`collect_anchor_activations` (rows are pooling-major)."""
    return torch.arange(n_texts).repeat(n_poolings)


def collect_anchor_activations(
    model,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    pooling: Pooling | Sequence[Pooling] = ("last", "mean"),
    batch_size: int = 16,
    progress: bool = True,
) -> dict[int, torch.Tensor]:
    """``resid_post`` rows per layer, (n_texts * n_poolings, d_model) float32: all texts pooled the
    first way, then all texts pooled the next way. Duplicate texts are dropped (see :func:`anchor_texts`)."""
    pooling = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    if not pooling:
        raise ValueError("pooling must name at least one of 'last', 'mean'.")
    texts = anchor_texts(texts)
    parts = collect_pooled(model, texts, layers, poolings=pooling, batch_size=batch_size, progress=progress)
    return {l: torch.cat([parts[p][l] for p in pooling]) for l in parts[pooling[0]]}


def collect_corpus_activations(
    model,
    corpus,
    keep,
    pooling: Sequence[Pooling],
    batch_size: int = 16,
    progress: bool = True,
) -> dict[int, torch.Tensor]:
    """Rows of :func:`collect_anchor_activations` for the texts of ``keep`` (a subset of ``corpus``,
    an AnchorCorpus), pooling-major. Every source of ``corpus`` but the user's own ("user") is read
    whole through the disk activation cache, so a fixed corpus costs one pass per model and machine
    whatever a hold-out later removes from it."""
    pooling = tuple(pooling)
    wanted = set(keep.texts)
    row_of: dict[str, tuple[int, int]] = {}
    blocks = []
    for source in dict.fromkeys(corpus.sources):
        texts = [t for t, s in zip(corpus.texts, corpus.sources) if s == source]
        cached = source != "user"
        if not cached:
            texts = [t for t in texts if t in wanted]
        if not texts:
            continue
        block = collect_pooled(model, texts, None, poolings=pooling, batch_size=batch_size, progress=progress,
                               cache=cached)
        row_of.update({t: (len(blocks), i) for i, t in enumerate(texts)})
        blocks.append(block)
    offsets = np.cumsum([0] + [len(next(iter(block[pooling[0]].values()))) for block in blocks])
    index = torch.as_tensor([offsets[b] + i for b, i in (row_of[t] for t in keep.texts)], dtype=torch.long)
    return {
        layer: torch.cat([torch.cat([block[p][layer] for block in blocks])[index] for p in pooling])
        for layer in blocks[0][pooling[0]]
    }
