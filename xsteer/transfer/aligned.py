"""Token-aligned anchors: every position where two tokenizations of one text end a token at the
same character, with both models' ``resid_post`` there, and a ridge adapter fitted from streamed
sufficient statistics of those rows (memory independent of the row count)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from xsteer.activations import check_layers, resid_states
from xsteer.transfer.adapters import RidgeAdapter
from xsteer.transfer.estimators import StandardizedRidgeAdapter

__all__ = [
    "MIN_ALIGNED",
    "AlignedBatch",
    "RidgeStats",
    "aligned_positions",
    "encode_with_offsets",
    "fit_aligned_ridge",
    "iter_aligned_batches",
    "split_texts",
]

MIN_ALIGNED = 100
MAX_TOKENS = 256


def aligned_positions(
    offsets_a: Sequence[tuple[int, int]], offsets_b: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Index pairs (i, j), in text order, where token i of ``a`` and token j of ``b`` both end at the
    same character; zero-width spans (special tokens, padding) are skipped, and when several tokens
    end at one character (pieces of one multi-byte character) the last one counts."""

    def ends(offsets) -> dict[int, int]:
        out: dict[int, int] = {}
        for i, (s, e) in enumerate(offsets):
            if e > s:
                out[int(e)] = i
        return out

    ea, eb = ends(offsets_a), ends(offsets_b)
    return [(ea[e], eb[e]) for e in sorted(ea.keys() & eb.keys())]


def encode_with_offsets(model, texts: Sequence[str], max_tokens: int = MAX_TOKENS):
    """What :func:`xsteer.activations.encode` gives (ids, mask, position ids), right-truncated to
    ``max_tokens``, plus the character offsets of those same ids ((batch, seq) list of spans,
    special tokens and padding as zero-width)."""
    enc = model.tokenizer(
        list(texts),
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=max_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    mask = enc["attention_mask"]
    offsets = enc["offset_mapping"].clone()
    offsets[enc["special_tokens_mask"].bool() | ~mask.bool()] = 0
    device = model.cfg.device
    ids = {
        "input_ids": enc["input_ids"].to(device),
        "attention_mask": mask.to(device),
        "position_ids": (mask.cumsum(-1) - 1).clamp(min=0).to(device),
    }
    return ids, offsets.tolist()


@dataclass
class AlignedBatch:
    """Aligned rows of a batch of texts: ``text`` (n_rows,) input index of each row's text,
    ``parent`` / ``child`` layer -> (n_rows, width) float32 ``resid_post``."""

    text: np.ndarray
    parent: dict[int, torch.Tensor]
    child: dict[int, torch.Tensor]


def iter_aligned_batches(
    parent,
    child,
    texts: Sequence[str],
    parent_layers: Sequence[int] | None = None,
    child_layers: Sequence[int] | None = None,
    *,
    batch_size: int = 16,
    max_tokens: int = MAX_TOKENS,
    progress: bool = False,
    starts: Sequence[int] | None = None,
) -> Iterator[AlignedBatch]:
    """Aligned ``resid_post`` rows of both models, one batch of texts at a time (texts in input
    order; padding-safe: rows equal those of one-text-at-a-time runs). ``starts``: per text, a
    character offset; only positions whose token ends after it are rows."""
    if starts is not None and len(starts) != len(texts):
        raise ValueError(f"starts has {len(starts)} offsets for {len(texts)} texts; give one per text.")
    p_layers = check_layers(parent, parent_layers)
    c_layers = check_layers(child, child_layers)
    for start in tqdm(range(0, len(texts), batch_size), desc="aligned anchors", disable=not progress):
        chunk = list(texts[start : start + batch_size])
        enc_p, off_p = encode_with_offsets(parent, chunk, max_tokens)
        enc_c, off_c = encode_with_offsets(child, chunk, max_tokens)
        rows_t, rows_i, rows_j, text_idx = [], [], [], []
        for t in range(len(chunk)):
            pairs = aligned_positions(off_p[t], off_c[t])
            if starts is not None:
                pairs = [(i, j) for i, j in pairs if off_p[t][i][1] > starts[start + t]]
            rows_t += [t] * len(pairs)
            rows_i += [i for i, _ in pairs]
            rows_j += [j for _, j in pairs]
            text_idx += [start + t] * len(pairs)
        if not rows_t:
            continue
        t_idx = torch.as_tensor(rows_t)
        acts_p, acts_c = resid_states(parent, enc_p, p_layers), resid_states(child, enc_c, c_layers)
        yield AlignedBatch(
            text=np.asarray(text_idx),
            parent={l: acts_p[l][t_idx, torch.as_tensor(rows_i)] for l in p_layers},
            child={l: acts_c[l][t_idx, torch.as_tensor(rows_j)] for l in c_layers},
        )


def split_texts(n_texts: int, held_out: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out texts: a seeded ``held_out`` share (at least one) of ``n_texts``."""
    perm = np.random.default_rng(seed).permutation(n_texts)
    held = np.zeros(n_texts, dtype=bool)
    held[perm[: max(1, int(round(held_out * n_texts)))]] = True
    return held


class RidgeStats:
    """Sufficient statistics of paired rows x (d_x) -> y (d_y) in float64: count, Σx, Σy, XᵀX,
    XᵀY and Σy² per dimension, accumulated with :meth:`update`."""

    def __init__(self, d_x: int, d_y: int):
        self.n = 0
        self.sx, self.sy = np.zeros(d_x), np.zeros(d_y)
        self.xx, self.xy = np.zeros((d_x, d_x)), np.zeros((d_x, d_y))
        self.yy = np.zeros(d_y)

    def update(self, x, y) -> RidgeStats:
        """Add rows ``x`` (n, d_x) and ``y`` (n, d_y)."""
        x = np.asarray(torch.as_tensor(x).double())
        y = np.asarray(torch.as_tensor(y).double())
        if x.shape[0] != y.shape[0] or x.shape[1:] != self.sx.shape or y.shape[1:] != self.sy.shape:
            raise ValueError(
                f"RidgeStats({self.sx.size}, {self.sy.size}) got rows {x.shape} and {y.shape}; pass "
                "paired (n, d_x) and (n, d_y) arrays."
            )
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError("Anchor rows have NaN or infinite entries; load the models in float32.")
        self.n += x.shape[0]
        self.sx += x.sum(0)
        self.sy += y.sum(0)
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.yy += (y**2).sum(0)
        return self

    def __add__(self, other: RidgeStats) -> RidgeStats:
        out = RidgeStats(self.sx.size, self.sy.size)
        for k in ("n", "sx", "sy", "xx", "xy", "yy"):
            setattr(out, k, getattr(self, k) + getattr(other, k))
        return out

    def means(self) -> tuple[np.ndarray, np.ndarray]:
        """Row means of x and y."""
        return self.sx / self.n, self.sy / self.n

    def solve(self, alpha: float, standardize: bool = False) -> np.ndarray:
        """Centred ridge map W (d_x, d_y); ``alpha`` in units of the mean eigenvalue of the centred
        XᵀX (as RidgeAdapter's ``alphas``); ``standardize``: the ridge of x scaled to unit spread
        per coordinate (as StandardizedRidgeAdapter), mapped back to raw units."""
        mx, my = self.means()
        cxx = self.xx - self.n * np.outer(mx, mx)
        cxy = self.xy - self.n * np.outer(mx, my)
        unit = np.trace(cxx) / cxx.shape[0]
        if not unit > 0:
            raise ValueError(
                "The parent anchor activations are identical across rows; use varied anchor texts."
            )
        if not standardize:
            return np.linalg.solve(cxx + alpha * unit * np.eye(cxx.shape[0]), cxy)
        d = np.sqrt(np.maximum(np.diag(cxx), np.diag(cxx).max() * 1e-12))
        cs = cxx / np.outer(d, d)
        w = np.linalg.solve(cs + alpha * np.trace(cs) / cs.shape[0] * np.eye(cs.shape[0]), cxy / d[:, None])
        return w / d[:, None]

    def r2(self, W: np.ndarray, mx: np.ndarray, my: np.ndarray) -> float:
        """R² of predictions ``my + (x - mx) @ W`` on these rows: 1 - SSE / SS per y dimension (SS
        around ``my``, the training mean), averaged over dimensions with SS > 0 (as RidgeAdapter)."""
        n = self.n
        xx = self.xx - np.outer(mx, self.sx) - np.outer(self.sx, mx) + n * np.outer(mx, mx)
        xy = self.xy - np.outer(mx, self.sy) - np.outer(self.sx, my) + n * np.outer(mx, my)
        spread = self.yy - 2 * my * self.sy + n * my**2
        sse = spread - 2 * (W * xy).sum(0) + (W * (xx @ W)).sum(0)
        keep = spread > 0
        return float((1.0 - sse[keep] / spread[keep]).mean()) if keep.any() else float("nan")


def _adapter_from_stats(
    train: RidgeStats, held: RidgeStats, template: RidgeAdapter, held_last: RidgeStats | None = None
) -> RidgeAdapter:
    """A fitted RidgeAdapter: ``alpha_`` maximises held-out R² over ``template.alphas``, ``score_`` is
    that R², ``score_last_`` the R² of the held-out texts' last aligned rows alone, and the map is
    refitted on train + held-out rows; ``heldout_r2_`` per alpha. A StandardizedRidgeAdapter
    template fits on standardised parent coordinates."""
    standardize = isinstance(template, StandardizedRidgeAdapter)
    mx, my = train.means()
    maps = [train.solve(a, standardize) for a in template.alphas]
    scores = [held.r2(w, mx, my) for w in maps]
    best = int(np.nanargmax(scores))
    full = train + held
    out = template.clone()
    out.alpha_ = template.alphas[best]
    out.score_ = float(scores[best])
    if held_last is not None and held_last.n:
        out.score_last_ = float(held_last.r2(maps[best], mx, my))
    out.heldout_r2_ = [float(s) for s in scores]
    mx, my = full.means()
    out.W_ = torch.from_numpy(full.solve(out.alpha_, standardize)).float()
    out.mean_parent_, out.mean_child_ = torch.from_numpy(mx).float(), torch.from_numpy(my).float()
    out.n_anchors_ = int(full.n)
    return out


def fit_aligned_ridge(
    parent,
    child,
    texts: Sequence[str],
    mapping: Mapping[int, int],
    template: RidgeAdapter | None = None,
    *,
    batch_size: int = 16,
    max_tokens: int = MAX_TOKENS,
    min_rows: int = MIN_ALIGNED,
    progress: bool = False,
    starts: Sequence[int] | None = None,
) -> tuple[dict[int, RidgeAdapter], int]:
    """One RidgeAdapter per child layer of ``mapping`` (child -> parent layer), fitted on every aligned
    position of ``texts`` (after ``starts`` where given, see :func:`iter_aligned_batches`) from
    streamed statistics; a seeded share ``template.held_out`` of the *texts* scores it. Returns
    (child layer -> adapter, rows used)."""
    template = template or RidgeAdapter()
    if not isinstance(template, RidgeAdapter):
        raise TypeError(f"fit_aligned_ridge fits ridge adapters; got {type(template).__name__}.")
    held_text = split_texts(len(texts), template.held_out, template.seed)
    p_layers, c_layers = sorted(set(mapping.values())), sorted(mapping)
    stats: dict[tuple[bool, int], RidgeStats] = {}
    n_held = 0
    for batch in iter_aligned_batches(
        parent, child, texts, p_layers, c_layers,
        batch_size=batch_size, max_tokens=max_tokens, progress=progress, starts=starts,
    ):
        is_held = held_text[batch.text]
        n_held += int(is_held.sum())
        is_last = np.r_[batch.text[1:] != batch.text[:-1], True]  # each text's last aligned row
        for side, pick in ((False, ~is_held), (True, is_held), ("last", is_held & is_last)):
            rows = torch.as_tensor(np.flatnonzero(pick))
            if len(rows) == 0:
                continue
            for c, p in mapping.items():
                x, y = batch.parent[p][rows], batch.child[c][rows]
                key = (side, c)
                if key not in stats:
                    stats[key] = RidgeStats(x.shape[1], y.shape[1])
                stats[key].update(x, y)
    c0 = c_layers[0]
    n_train = stats[(False, c0)].n if (False, c0) in stats else 0
    total = n_train + n_held
    if total < min_rows or n_train < 2 or n_held < 1:
        raise ValueError(
            f"The {len(texts)} anchor texts align on only {total} token positions across the two "
            f"tokenizers ({n_train} to fit, {n_held} held out; need at least {min_rows}); pass more or "
            "longer anchor texts, raise max_tokens, or use pooling='last'."
        )
    adapters = {c: _adapter_from_stats(stats[(False, c)], stats[(True, c)], template, stats.get(("last", c)))
                for c in c_layers}
    return adapters, total
