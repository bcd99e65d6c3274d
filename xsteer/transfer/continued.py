"""Anchors at generation-time states: the child continues each anchor text's opening with its own
greedy tokens, both models then read opening + continuation (teacher-forced), and only the
token-aligned positions inside the continuation are rows — the states the child is in while it
generates, where steering acts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from xsteer.plain import plain_view

__all__ = ["OPENING_WORDS", "Continuations", "continue_texts", "openings"]

OPENING_WORDS = 8


@dataclass(frozen=True)
class Continuations:
    """``texts``: opening + the model's continuation; ``starts``: the character where each
    continuation begins (rows are taken after it)."""

    texts: tuple[str, ...]
    starts: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.starts):
            raise ValueError("Continuations needs one start per text.")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: Sequence[bool]) -> Continuations:
        """The continuations where ``keep`` is true."""
        pick = [i for i, k in enumerate(keep) if k]
        return Continuations(tuple(self.texts[i] for i in pick), tuple(self.starts[i] for i in pick))


def openings(texts: Sequence[str], n_words: int = OPENING_WORDS) -> list[str]:
    """The first ``n_words`` words of each text longer than that, each opening once (in order)."""
    if n_words < 1:
        raise ValueError(f"n_words must be >= 1, not {n_words}.")
    cut = [" ".join(t.split()[:n_words]) for t in texts if len(t.split()) > n_words]
    return list(dict.fromkeys(cut))


def continue_texts(model, prompts: Sequence[str], *, max_new_tokens: int = 32, batch_size: int = 16,
                   progress: bool = False) -> Continuations:
    """``model``'s greedy continuation of each prompt (no chat template), as prompt + continuation
    text; prompts that yield no new text are dropped."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, not {max_new_tokens}.")
    view, tok = plain_view(model), model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    texts, starts = [], []
    for start in tqdm(range(0, len(prompts), batch_size), desc="continuations", disable=not progress):
        chunk = list(prompts[start : start + batch_size])
        ids = [tok(p)["input_ids"] for p in chunk]
        width = max(len(i) for i in ids)
        input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in ids], device=view.device)
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=view.device)
        with torch.no_grad():
            out = view.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=pad)
        for p, row in zip(chunk, out[:, width:]):
            new = tok.decode([t for t in row.tolist() if t != pad and t != tok.eos_token_id], skip_special_tokens=True)
            if new.strip():
                texts.append(p + new)
                starts.append(len(p))
    return Continuations(tuple(texts), tuple(starts))
