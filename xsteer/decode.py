"""Batched decoding for λ sweeps: per-row stops, finished rows dropped from the batch, and
drafts (another λ's output for the same prompt) verified many tokens per forward pass.

Greedy decoding with a draft returns exactly the tokens that plain greedy decoding returns: a
drafted token is kept only where it equals the model's own argmax at that position, and the first
disagreement is replaced by the model's token (speculative decoding with a free draft: on a λ grid
neighbouring values mostly produce the same text).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from jaxtyping import Int

from xsteer.plain import PlainView, sliding_window

__all__ = ["Sampling", "decode", "propose"]

#: Most drafted tokens a row proposes after its first forward pass (the first takes the whole draft).
LOOKAHEAD = 8


@dataclass(frozen=True)
class Sampling:
    """Temperature sampling (no top-k / top-p), seeded."""

    temperature: float
    seed: int


def propose(
    generated: Sequence[int], draft: Sequence[int], limit: int, lookup: Sequence[Sequence[int]] = ()
) -> list[int]:
    """Up to ``limit`` tokens that may follow ``generated``: the draft's next tokens while the draft
    still agrees with it; after a disagreement, the tokens after the draft's occurrence of the last
    3 (else 2) generated tokens nearest to the current position, else after their last occurrence
    in a ``lookup`` sequence (such as the prompt); else nothing."""
    n = len(generated)
    if limit <= 0:
        return []
    if draft and list(draft[:n]) == list(generated):
        return list(draft[n : n + limit])
    for k in (3, 2):
        if n < k:
            continue
        tail = list(generated[-k:])
        starts = [j for j in range(len(draft) - k) if list(draft[j : j + k]) == tail]
        if starts:
            j = min(starts, key=lambda s: abs(s + k - n))
            return list(draft[j + k : j + k + limit])
        for seq in lookup:
            starts = [j for j in range(len(seq) - k) if list(seq[j : j + k]) == tail]
            if starts:
                return list(seq[starts[-1] + k : starts[-1] + k + limit])
    return []


@torch.inference_mode()
def decode(
    view: PlainView,
    ids: Int[torch.Tensor, "batch width"],
    mask: Int[torch.Tensor, "batch context"],
    *,
    cache=None,
    hooks_for: Callable[[torch.Tensor], list] = lambda rows: [],
    max_new_tokens: int,
    finished: Callable[[list[int]], int | None],
    drafts: Sequence[Sequence[int] | None] | None = None,
    lookup: Sequence[Sequence[Sequence[int]]] | None = None,
    sampling: Sampling | None = None,
) -> list[list[int]]:
    """New tokens of every row of a left-padded batch.

    ``mask`` covers ``cache`` (a KV cache of the first ``mask.shape[1] - ids.shape[1]`` positions,
    or None) and ``ids``. ``hooks_for(rows)`` gives the forward hooks for the batch rows still
    running (original indices). ``finished(tokens)`` returns how many of a row's tokens to keep once
    it is done (an end token or a stop string), else None. ``drafts`` (greedy only) are verified,
    never trusted; so are n-gram continuations found in each row's ``lookup`` token sequences
    (its prompt, other drafts). ``sampling`` draws instead of taking the argmax.
    """
    device = ids.device
    n_rows = ids.shape[0]
    if sampling is not None:
        drafts = lookup = None
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
    window = sliding_window(view.model.config)
    if window is not None and mask.shape[1] + (LOOKAHEAD + 2) * max_new_tokens >= window:
        drafts = lookup = None  # rejected drafts would shift a sliding window that counts cache slots
    drafts = [list(d or []) for d in (drafts or [None] * n_rows)]
    lookup = [[list(seq) for seq in seqs] for seqs in lookup] if lookup else [[] for _ in range(n_rows)]
    out: list[list[int]] = [[] for _ in range(n_rows)]
    rows = torch.arange(n_rows, device=device)  # original index of each running row
    feed, feed_mask, mask = ids, mask[:, -ids.shape[1] :], mask[:, : -ids.shape[1]]  # mask: the cache's
    limit = max_new_tokens - 1
    with contextlib.ExitStack() as hooked:
        hooked.enter_context(view.hooks(hooks_for(rows)))
        while True:
            props = [propose(out[r], drafts[r], min(limit, max_new_tokens - 1 - len(out[r])), lookup[r]) for r in rows.tolist()]
            width = max(map(len, props))
            draft_mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in props], device=device)
            drafted = torch.tensor([p + [0] * (width - len(p)) for p in props], device=device, dtype=feed.dtype)
            mask = torch.cat([mask, feed_mask, draft_mask.view(len(props), width)], dim=-1)
            x = torch.cat([feed, drafted.view(len(props), width)], dim=-1)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -x.shape[1] :]
            result = view.model(
                input_ids=x, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=width + 1,
            )
            cache, logits = result.past_key_values, result.logits.float()
            if sampling is None:
                chosen = logits.argmax(-1).tolist()
            else:
                probs = torch.softmax(logits[:, -1] / sampling.temperature, dim=-1)
                chosen = torch.multinomial(probs, 1, generator=generator).tolist()

            accepted, done = [], []
            for i, r in enumerate(rows.tolist()):
                n = 0
                while n < len(props[i]) and props[i][n] == chosen[i][n]:
                    n += 1
                accepted.append(n)
                for token in chosen[i][: n + 1]:
                    out[r].append(token)
                    keep = finished(out[r])
                    if keep is not None or len(out[r]) >= max_new_tokens:
                        out[r] = out[r][: keep if keep is not None else max_new_tokens]
                        done.append(i)
                        break
            # rejected drafted positions: masked out, and cropped where no row kept them
            for i, n in enumerate(accepted):
                mask[i, mask.shape[1] - width + n :] = 0
            if width > max(accepted):
                cache.crop(max(accepted) - width)
                mask = mask[:, : mask.shape[1] - width + max(accepted)]
            feed = torch.tensor([[chosen[i][n]] for i, n in enumerate(accepted)], device=device, dtype=ids.dtype)
            feed_mask = torch.ones_like(feed)
            limit = LOOKAHEAD
            if done:
                running = [i for i in range(len(rows)) if i not in set(done)]
                if not running:
                    return out
                index = torch.tensor(running, device=device)
                cache.batch_select_indices(index)
                rows, mask, feed, feed_mask = rows[index], mask[index], feed[index], feed_mask[index]
                hooked.close()
                hooked.enter_context(view.hooks(hooks_for(rows)))
