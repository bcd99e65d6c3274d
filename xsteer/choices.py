"""Multiple-choice continuations as a token trie, scored in one forward pass on top of the
question's KV cache.

Choices often share leading tokens (" 1" of " 12" / " 13" …). Every token a choice is scored on
is predicted by the end of the question (its first token) or by a node of the trie (a distinct
proper prefix of some choice). The nodes of every row run as one block of queries whose attention
mask lets each node see the question and its own ancestors only, so no row's cache is copied once
per choice and no shared prefix is computed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from jaxtyping import Bool, Int

from xsteer.plain import sliding_window

__all__ = ["ChoiceTrie", "tree_attention_mask"]


@dataclass
class ChoiceTrie:
    """The nodes of one row: ``tokens[j]`` at depth ``depths[j]`` below the question, ``parents[j]``
    its parent node (-1: the question); ``node[prefix]`` is the node that predicts the token after
    ``prefix``."""

    tokens: list[int]
    parents: list[int]
    depths: list[int]
    node: dict[tuple[int, ...], int]

    @classmethod
    def build(cls, continuations: Sequence[Sequence[int]]) -> "ChoiceTrie":
        trie = cls([], [], [], {})
        for cont in continuations:
            for t in range(1, len(cont)):
                prefix = tuple(cont[:t])
                if prefix not in trie.node:
                    trie.node[prefix] = len(trie.tokens)
                    trie.tokens.append(cont[t - 1])
                    trie.parents.append(trie.node.get(prefix[:-1], -1))
                    trie.depths.append(t - 1)
        return trie

    def ancestry(self, width: int) -> Bool[torch.Tensor, "width width"]:
        """``[j, a]``: node a is node j or one of its ancestors (padding nodes see only themselves)."""
        seen = torch.eye(width, dtype=torch.bool)
        for j, parent in enumerate(self.parents):
            if parent >= 0:
                seen[j] |= seen[parent]
        return seen


def tree_attention_mask(
    config,
    allowed: Bool[torch.Tensor, "batch query key"],
    query_pos: Int[torch.Tensor, "batch query"],
    key_pos: Int[torch.Tensor, "batch key"],
    cached: int,
    dtype: torch.dtype,
):
    """The additive 4D attention mask(s) a Hugging Face decoder takes for ``allowed``: for models
    with sliding-window layers also the windowed mask (by position), cut to the keys such a
    layer's cache still holds after ``cached`` positions; a dict by layer type where the model
    mixes both."""

    def additive(ok):
        zero = torch.zeros((), dtype=dtype, device=ok.device)
        return torch.where(ok, zero, torch.finfo(dtype).min)[:, None]

    window = sliding_window(config)
    if window is None:
        return additive(allowed)
    in_window = query_pos[:, :, None] - key_pos[:, None, :] < window
    sliding = additive(allowed & in_window)[..., max(0, cached - (window - 1)) :]
    if getattr(config, "layer_types", None) is None:
        return sliding
    return {"full_attention": additive(allowed), "sliding_attention": sliding}
