"""Fluency costs of steered text: the unsteered child's negative log-likelihood of a completion
(``completion_nll``, batched with left padding) and the share of distinct word n-grams
(``distinct_n``: low = repetitive, degenerate text)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from xsteer.plain import plain_view

__all__ = ["completion_nll", "distinct_n"]


def distinct_n(text: str, n: int) -> float:
    """Distinct word n-grams ÷ all word n-grams of ``text`` (whitespace words); NaN below n words."""
    if n < 1:
        raise ValueError(f"distinct_n needs n >= 1, not {n}.")
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


@torch.inference_mode()
def completion_nll(
    model,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
) -> np.ndarray:
    """Mean NLL (nats per token) of each completion given its prompt under ``model`` as it is (no
    hooks), batched with left padding; NaN for an empty completion."""
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions; pass one of each per row.")
    view = plain_view(model)
    pad = model.tokenizer.pad_token_id
    pad = 0 if pad is None else pad
    out = np.full(len(prompt_ids), np.nan)
    rows = [i for i in range(len(prompt_ids)) if len(completion_ids[i]) and len(prompt_ids[i])]
    rows.sort(key=lambda i: len(prompt_ids[i]) + len(completion_ids[i]))  # little padding per batch
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        full = [list(prompt_ids[i]) + list(completion_ids[i]) for i in chunk]
        width = max(map(len, full))
        ids = torch.tensor([[pad] * (width - len(f)) + f for f in full], device=view.device)
        mask = torch.tensor([[0] * (width - len(f)) + [1] * len(f) for f in full], device=view.device)
        keep = max(len(completion_ids[i]) for i in chunk) + 1
        logits = view.model(
            input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            logits_to_keep=keep,
        ).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # position j predicts token j + 1 of the kept tail
        targets = ids[:, -(keep - 1) :]
        token_lp = logp.gather(-1, targets[..., None])[..., 0]
        for r, i in enumerate(chunk):
            k = len(completion_ids[i])
            out[i] = float(-token_lp[r, -k:].mean())
    return out
