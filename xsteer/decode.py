"""Batched decoding for λ sweeps: per-row stops, finished rows dropped from the batch and new rows
merged in as it empties, and drafts (another λ's output for the same prompt) verified many tokens
per forward pass.

Greedy decoding with a draft returns exactly the tokens that plain greedy decoding returns: a
drafted token is kept only where it equals the model's own argmax at that position, and the first
disagreement is replaced by the model's token (speculative decoding with a free draft: on a λ grid
neighbouring values mostly produce the same text).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import torch
from jaxtyping import Int

from xsteer.checks import as_count, as_real
from xsteer.plain import PlainView, sliding_window
from xsteer.positions import Layout, layout

__all__ = ["Group", "Sampling", "decode", "propose"]

#: Most drafted tokens a row proposes after its first forward pass (the first takes the whole draft).
LOOKAHEAD = 8
#: Most tokens proposed from an n-gram match (fewer of them are right than of an aligned draft).
NGRAM_LOOKAHEAD = 3
#: On the CPU, one more forward pass costs about as much as this many padded token positions: a
#: joining group's first pass (prompt + whole draft) is split where that saves more padding.
PASS_SLOTS = 32


@dataclass(frozen=True)
class Sampling:
    """Temperature sampling (no top-k / top-p), seeded."""

    temperature: float
    seed: int

    def __post_init__(self) -> None:
        fix = "sample at a finite temperature > 0 (e.g. 0.7), with an integer seed >= 0."
        object.__setattr__(self, "temperature", as_real("temperature", self.temperature, fix, positive=True))
        object.__setattr__(self, "seed", as_count("seed", self.seed, 0))


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
            return list(draft[j + k : j + k + min(limit, NGRAM_LOOKAHEAD)])
        for seq in lookup:
            starts = [j for j in range(len(seq) - k) if list(seq[j : j + k]) == tail]
            if starts:
                return list(seq[starts[-1] + k : starts[-1] + k + min(limit, NGRAM_LOOKAHEAD)])
    return []


@dataclass
class Group:
    """Rows that join decoding together: left-padded prompts ``ids`` whose attention ``mask`` also
    covers ``cache`` (a KV cache of their first ``mask.shape[1] - ids.shape[1]`` positions, or
    None); ``keys`` name the rows to the caller; ``drafts`` (one token list or None per row) and
    ``lookup`` (token lists per row, e.g. the prompt) are verified, never trusted."""

    keys: list[Hashable]
    ids: Int[torch.Tensor, "batch width"]
    mask: Int[torch.Tensor, "batch context"]
    cache: Any = None
    drafts: Sequence[Sequence[int] | None] | None = None
    lookup: Sequence[Sequence[Sequence[int]]] | None = None


@dataclass
class _Rows:
    """Running rows: tokens so far, the KV cache and the mask over it, the next tokens to feed."""

    keys: list
    out: list[list[int]]
    drafts: list[list[int]]
    lookup: list[list[list[int]]]
    feed: torch.Tensor
    feed_mask: torch.Tensor
    mask: torch.Tensor
    cache: Any = None
    hooks: list | None = None  # for these rows; rebuilt when they change

    @classmethod
    def start(cls, group: Group, drafting: bool) -> "_Rows":
        n, width = len(group.keys), group.ids.shape[1]
        drafts = [list(d or []) for d in group.drafts] if drafting and group.drafts else [[] for _ in range(n)]
        lookup = [[list(s) for s in seqs] for seqs in group.lookup] if drafting and group.lookup else [[]] * n
        return cls(list(group.keys), [[] for _ in range(n)], drafts, lookup, group.ids, group.mask[:, -width:],
                   group.mask[:, :-width], group.cache)

    def keep(self, index: list[int]) -> None:
        self.hooks = None
        picked = torch.tensor(index, device=self.feed.device, dtype=torch.long)
        self.cache.batch_select_indices(picked)
        self.mask, self.feed, self.feed_mask = self.mask[picked], self.feed[picked], self.feed_mask[picked]
        for name in ("keys", "out", "drafts", "lookup"):
            setattr(self, name, [getattr(self, name)[i] for i in index])

    def split(self, parts: list[list[int]]) -> list["_Rows"]:
        """New row sets of the rows indexed by each part (copies), before the first pass; prompt
        columns that are padding in every row of a part are dropped."""
        out = []
        for index in parts:
            picked = torch.tensor(index, device=self.feed.device, dtype=torch.long)
            feed_mask = self.feed_mask[picked]
            skip = int((feed_mask.cumsum(-1) == 0).sum(-1).min())  # leading all-padding columns
            cache = None
            if self.cache is not None:
                cache = copy.copy(self.cache)  # layers copied shallowly: selecting rebinds their tensors
                cache.layers = [copy.copy(layer) for layer in self.cache.layers]
                cache.batch_select_indices(picked)
            out.append(_Rows(
                [self.keys[i] for i in index], [[] for _ in index], [self.drafts[i] for i in index],
                [self.lookup[i] for i in index], self.feed[picked][:, skip:], feed_mask[:, skip:],
                self.mask[picked], cache,
            ))
        return out

    def absorb(self, others: list["_Rows"]) -> None:
        """Append the rows of ``others``, shorter caches left-padded with masked zeros."""
        self.hooks = None
        sets = [self, *others]
        width = max(rows.mask.shape[1] for rows in sets)
        for layers in zip(*(rows.cache.layers for rows in sets)):
            layers[0].keys = torch.cat([_left_pad(layer.keys, width, 2) for layer in layers])
            layers[0].values = torch.cat([_left_pad(layer.values, width, 2) for layer in layers])
        self.mask = torch.cat([_left_pad(rows.mask, width, 1) for rows in sets])
        self.feed = torch.cat([rows.feed for rows in sets])
        self.feed_mask = torch.cat([rows.feed_mask for rows in sets])
        for rows in others:
            for name in ("keys", "out", "drafts", "lookup"):
                getattr(self, name).extend(getattr(rows, name))


def _first_passes(rows: _Rows, max_new_tokens: int) -> list[list[int]]:
    """Row indices of a joining group, split into first passes that together compute the fewest
    token positions, counting ``PASS_SLOTS`` per pass: rows sorted by prompt + draft length,
    contiguous runs found by dynamic programming."""
    prompt = rows.feed_mask.sum(-1).tolist()
    draft = [len(propose([], d, max_new_tokens - 1)) for d in rows.drafts]  # what the first pass feeds
    order = sorted(range(len(prompt)), key=lambda i: (prompt[i] + draft[i], prompt[i]))
    best, cut = [0] + [float("inf")] * len(order), [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        widest_prompt = widest_draft = 0
        for start in range(end - 1, -1, -1):
            widest_prompt = max(widest_prompt, prompt[order[start]])
            widest_draft = max(widest_draft, draft[order[start]])
            cost = best[start] + PASS_SLOTS + (end - start) * (widest_prompt + widest_draft)
            if cost < best[end]:
                best[end], cut[end] = cost, start
    parts, end = [], len(order)
    while end:
        parts.append(order[cut[end] : end])
        end = cut[end]
    return parts[::-1]


def _left_pad(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    shape = list(x.shape)
    shape[dim] = width - x.shape[dim]
    return torch.cat([x.new_zeros(shape), x], dim=dim)


@torch.inference_mode()
def decode(
    view: PlainView,
    groups: Iterable[Group],
    *,
    hooks_for: Callable[[list], list] = lambda keys: [],
    max_new_tokens: int,
    finished: Callable[[list[int]], int | None],
    sampling: Sampling | None = None,
    refill_below: int = 0,
) -> Iterator[tuple[Hashable, list[int]]]:
    """``(key, new tokens)`` of every row of every group, as each row finishes.

    ``hooks_for(keys)`` gives the forward hooks for the rows named. ``finished(tokens)`` returns how
    many of a row's tokens to keep once it is done (an end token or a stop string), else None.
    The next group is drawn only when fewer than ``refill_below`` rows still run (so it can take
    drafts from rows already yielded); its prompts run in a pass of their own, then its rows join
    the running batch. ``sampling`` draws instead of taking the argmax (and ignores drafts).
    """
    max_new_tokens = as_count("max_new_tokens", max_new_tokens)
    generator = None
    if sampling is not None:
        generator = torch.Generator(device=view.device).manual_seed(sampling.seed)
    window = sliding_window(view.model.config)
    if window is not None:
        refill_below = 0  # merged rows would have to share a window that counts cache slots
    running: _Rows | None = None
    pending = iter(groups)
    while True:
        if running is None or len(running.keys) < max(1, refill_below):
            group = next(pending, None)
            if group is not None:
                # rejected drafts would shift a sliding window that counts cache slots
                drafting = sampling is None and (
                    window is None or group.mask.shape[1] + (LOOKAHEAD + 2) * max_new_tokens < window
                )
                joining = _Rows.start(group, drafting)
                # on the CPU padding costs compute: split the first pass (merging needs a global window)
                if window is None and view.device.type == "cpu" and any(joining.drafts):
                    parts = joining.split(_first_passes(joining, max_new_tokens))
                else:
                    parts = [joining]
                for part in parts:
                    yield from _step(view, part, hooks_for, max_new_tokens, finished, sampling, generator)
                alive = [rows for rows in (running, *parts) if rows is not None and rows.keys]
                running = alive[0] if alive else None
                if len(alive) > 1:
                    running.absorb(alive[1:])
                continue
        if running is None or not running.keys:
            return
        yield from _step(view, running, hooks_for, max_new_tokens, finished, sampling, generator)


def _step(view, rows: _Rows, hooks_for, max_new_tokens, finished, sampling, generator):
    """One forward pass of ``rows`` (fed tokens + drafted ones); yields the rows it finishes and
    drops them."""
    device = rows.feed.device
    props = [
        propose(out, draft, max_new_tokens - 1 - len(out) if not out else min(LOOKAHEAD, max_new_tokens - 1 - len(out)), seqs)
        for out, draft, seqs in zip(rows.out, rows.drafts, rows.lookup)
    ]
    width = max(map(len, props))
    draft_mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in props], device=device)
    drafted = torch.tensor([p + [0] * (width - len(p)) for p in props], device=device, dtype=rows.feed.dtype)
    mask = torch.cat([rows.mask, rows.feed_mask, draft_mask.view(len(props), width)], dim=-1)
    x = torch.cat([rows.feed, drafted.view(len(props), width)], dim=-1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -x.shape[1] :]
    if rows.hooks is None:
        rows.hooks = hooks_for(rows.keys)
    # the rows' first pass feeds their prompts (then drafts); every later pass generated tokens only
    prompt = rows.feed_mask if not any(rows.out) else rows.feed_mask[:, :0]
    with view.hooks(rows.hooks), layout(lambda: Layout.of(prompt, x.shape[1] - prompt.shape[1])):
        result = view.model(
            input_ids=x, attention_mask=mask, position_ids=positions, past_key_values=rows.cache,
            use_cache=True, logits_to_keep=width + 1,
        )
    rows.cache, logits = result.past_key_values, result.logits.float()
    if sampling is None:
        chosen = logits.argmax(-1).tolist()
    else:
        probs = torch.softmax(logits[:, -1] / sampling.temperature, dim=-1)
        chosen = torch.multinomial(probs, 1, generator=generator).tolist()

    accepted, done = [], []
    for i, out in enumerate(rows.out):
        n = 0
        while n < len(props[i]) and props[i][n] == chosen[i][n]:
            n += 1
        accepted.append(n)
        for token in chosen[i][: n + 1]:
            out.append(token)
            keep = finished(out)
            if keep is not None or len(out) >= max_new_tokens:
                del out[keep if keep is not None else max_new_tokens :]
                done.append(i)
                break
    # rejected drafted positions: masked out, and cropped where no row kept them
    for i, n in enumerate(accepted):
        mask[i, mask.shape[1] - width + n :] = 0
    if width > max(accepted):
        rows.cache.crop(max(accepted) - width)
        mask = mask[:, : mask.shape[1] - width + max(accepted)]
    rows.mask = mask
    rows.feed = torch.tensor([[chosen[i][n]] for i, n in enumerate(accepted)], device=device, dtype=rows.feed.dtype)
    rows.feed_mask = torch.ones_like(rows.feed)
    for i in done:
        yield rows.keys[i], rows.out[i]
    if done:
        rows.keep([i for i in range(len(rows.keys)) if i not in set(done)])
