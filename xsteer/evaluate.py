"""Evaluation under steering: the whole λ grid as rows of one batch, greedy generation or
log-likelihood scoring, inference-time-scaling votes, and resumable records.

Every row of a batch is one (example, λ); per-row λ makes a grid sweep one batched pass instead of
one pass per λ, with the same answers as running each λ alone.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from xsteer.records import Record, RecordStore, prompt_hash
from xsteer.steer import Scale, steering_hooks
from xsteer.tasks import Example, Task
from xsteer.vectors import SteeringVectors

__all__ = ["PAPER_LAMBDAS", "Evaluator", "check_lambdas", "its_vote"]

#: The paper's grid: {0.01 … 0.09} ∪ {0.1 … 1.0}.
PAPER_LAMBDAS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(1, 10)) + tuple(
    round(0.1 * i, 1) for i in range(1, 11)
)


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """A validated, sorted, de-duplicated λ grid."""
    grid = sorted({float(x) for x in lambdas})
    if not grid:
        raise ValueError("The λ grid is empty; pass e.g. --lambdas 0.01,0.05,0.1 (or use the paper's grid).")
    if any(x < 0 for x in grid):
        raise ValueError(
            f"λ values must be >= 0 (got {[x for x in grid if x < 0]}); steer the other way by "
            "negating the vectors, not λ."
        )
    return grid


def its_vote(predictions: dict[float, str | None]) -> str | None:
    """Inference-time scaling: the most frequent parseable answer over the grid.

    Unparseable answers (None) do not vote; a tie goes to the tied answer first produced by the
    smallest λ (the one closest to the unsteered model); no parseable answer gives None.
    """
    ordered = [(lam, p) for lam, p in sorted(predictions.items()) if p is not None]
    if not ordered:
        return None
    counts = Counter(p for _, p in ordered)
    top = max(counts.values())
    return next(p for _, p in ordered if counts[p] == top)


@dataclass
class _Row:
    example: Example
    lam: float
    sample: int = 0


def _grid_rows(examples: Sequence[Example], lambdas: Sequence[float]) -> list[_Row]:
    """The rows of a grid sweep in the order they are batched: λ-major, so a batch holds many
    examples of few λ values and each few-shot prefix KV cache (one per distinct λ of a batch)
    serves many rows."""
    return [_Row(ex, lam) for lam in lambdas for ex in examples]


class Evaluator:
    """Runs a task on a (child) model under steering and keeps every answer as a ``Record``.

    ``mode`` is the task's: "generate" (greedy, KV-cached, batched, stops at the answer line or EOS)
    or "loglik" (multiple choice by summed continuation log-probability of the plain-format prompt;
    ``loglik_norm=True`` divides by the continuation's length in characters). ``prefix_cache``
    reuses the KV cache of the task's shared few-shot prefix across the examples of a batch (both
    modes). Records already in ``store`` are never recomputed.
    """

    def __init__(
        self,
        model,
        task: Task,
        *,
        scale: Scale = "absolute",
        batch_size: int = 16,
        store: RecordStore | None = None,
        loglik_norm: bool = False,
        max_new_tokens: int | None = None,
        prefix_cache: bool = True,
        progress: bool = True,
    ):
        self.model = model
        self.task = task
        self.scale = scale
        self.batch_size = batch_size
        self.store = store if store is not None else RecordStore()
        self.loglik_norm = loglik_norm
        self.max_new_tokens = max_new_tokens or task.max_new_tokens
        self.prefix_cache = prefix_cache
        self.progress = progress
        self.tokenizer = model.tokenizer

    # ------------------------------------------------------------------ public

    def sweep(
        self,
        examples: Sequence[Example],
        split: str,
        condition: str,
        vectors: SteeringVectors | None,
        lambdas: Sequence[float],
    ) -> dict[float, list[Record]]:
        """Evaluate every example at every λ; returns λ -> records in example order."""
        if not examples:
            raise ValueError(f"No examples to evaluate for split {split!r}; check the task's splits.")
        if vectors is None and any(l != 0 for l in lambdas):
            raise ValueError("Non-zero λ needs steering vectors; pass vectors or lambdas=[0.0].")
        lambdas = [float(l) for l in lambdas]
        self._run(_grid_rows(examples, lambdas), split, condition, vectors)
        return {
            lam: [self.store[(split, condition, ex.id, lam, 0)] for ex in examples] for lam in lambdas
        }

    def sample(
        self, examples: Sequence[Example], split: str, n: int, *, temperature: float = 0.7, seed: int = 0
    ) -> list[list[Record]]:
        """``n`` temperature samples per example from the unsteered model (self-consistency control).

        Generate mode samples whole generations. Log-likelihood mode samples choices from
        softmax(summed log-prob / temperature) of the unsteered scores, which costs no extra forward.
        """
        if self.task.mode == "generate":
            rows = [_Row(ex, 0.0, s) for ex in examples for s in range(n)]
            sampling = {"temperature": temperature, "seed": seed}
            self._run(rows, split, "self_consistency", None, sampling=sampling)
        else:
            base = self.sweep(examples, split, "baseline", None, [0.0])[0.0]
            records = []
            for i, (ex, rec) in enumerate(zip(examples, base)):
                logits = np.asarray(rec.meta["norm" if self.loglik_norm else "sum"]) / temperature
                probs = np.exp(logits - logits.max())
                draws = np.random.default_rng([seed, i]).choice(len(probs), size=n, p=probs / probs.sum())
                for s, k in enumerate(draws):
                    row = _Row(ex, 0.0, s)
                    label = ex.choices[k][0]
                    records.append(self._record(row, split, "self_consistency", "", label, label))
            self.store.add(records)
        return [[self.store[(split, "self_consistency", ex.id, 0.0, s)] for s in range(n)] for ex in examples]

    # ------------------------------------------------------------------ engine

    def _run(self, rows: list[_Row], split, condition, vectors, sampling: dict | None = None) -> None:
        todo = [r for r in rows if (split, condition, r.example.id, r.lam, r.sample) not in self.store]
        if not todo:
            return
        bar = tqdm(total=len(todo), desc=f"{split}:{condition}", disable=not self.progress, leave=False)
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            if self.task.mode == "generate":
                records = self._generate(batch, split, condition, vectors, sampling)
            else:
                records = self._loglik(batch, split, condition, vectors)
            self.store.add(records)
            bar.update(len(batch))
        bar.close()

    def _hooks(self, vectors, lams: list[float]):
        if vectors is None or all(l == 0 for l in lams):
            return []
        return steering_hooks(self.model, vectors, torch.tensor(lams), scale=self.scale)

    def _record(self, row: _Row, split, condition, prompt: str, output: str, pred, meta=None) -> Record:
        ex = row.example
        return Record(
            split=split,
            condition=condition,
            example_id=ex.id,
            lam=row.lam,
            prompt_hash=prompt_hash(prompt),
            output=output,
            prediction=pred,
            gold=ex.answer,
            correct=bool(self.task.is_correct(pred, ex)),
            sample=row.sample,
            meta=meta or {},
        )

    def _prompt_ids(self, example: Example, chat: bool) -> tuple[str, list[int], list[int]]:
        """A prompt's text and the token ids of its shared prefix and of its own suffix, tokenized
        apart so that the prefix is the same token sequence for every example. ``chat=False``
        renders the plain format."""
        rendered = self.task.prompt(example, self.tokenizer if chat else None)
        special = not rendered.chat  # a chat template already wrote BOS
        prefix = self.tokenizer(rendered.prefix, add_special_tokens=special)["input_ids"]
        suffix = self.tokenizer(rendered.suffix, add_special_tokens=False)["input_ids"]
        return rendered.text, prefix, suffix

    def _prefix_cache(self, prefix: list[int], vectors, lams: list[float]):
        """KV cache of the shared prefix, computed once per distinct λ and gathered per row."""
        distinct = sorted(set(lams))
        ids = torch.tensor([prefix] * len(distinct), device=self.model.cfg.device)
        with self.model.hooks(fwd_hooks=self._hooks(vectors, distinct)):
            cache = self.model.original_model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_select_indices(torch.tensor([distinct.index(l) for l in lams], device=ids.device))
        return cache

    def _layout(self, prefixes, suffixes, vectors, lams):
        """Token ids and attention mask of a batch of prompts, plus the KV cache of their common
        prefix (``None`` without one): with the cache, padding goes between prefix and suffix and
        only the suffixes remain to be run."""
        pad, device = self.tokenizer.pad_token_id, self.model.cfg.device
        prefix = prefixes[0]
        if self.prefix_cache and prefix and all(p == prefix for p in prefixes):
            width = max(map(len, suffixes))
            ids = [prefix + [pad] * (width - len(s)) + s for s in suffixes]
            mask = [[1] * len(prefix) + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
            cache = self._prefix_cache(prefix, vectors, lams)
        else:
            full = [p + s for p, s in zip(prefixes, suffixes)]
            longest = max(map(len, full))
            ids = [[pad] * (longest - len(f)) + f for f in full]
            mask = [[0] * (longest - len(f)) + [1] * len(f) for f in full]
            cache = None
        return torch.tensor(ids, device=device), torch.tensor(mask, device=device), cache

    @torch.inference_mode()
    def _generate(self, batch: list[_Row], split, condition, vectors, sampling: dict | None) -> list[Record]:
        """Greedy (or sampled) generation of every row; with ``prefix_cache`` the few-shot prefix is
        computed once per distinct λ of the batch."""
        texts, prefixes, suffixes = zip(*(self._prompt_ids(r.example, chat=True) for r in batch))
        lams = [r.lam for r in batch]
        ids, mask, cache = self._layout(prefixes, suffixes, vectors, lams)
        kwargs = dict(
            max_new_tokens=self.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            stop_strings=self.task.stop_strings() or None,
            tokenizer=self.tokenizer,
        )
        if cache is not None:
            kwargs["past_key_values"] = cache
        if sampling:  # seeded per batch: reproducible for the same batches
            torch.manual_seed(sampling["seed"] + sum(r.sample for r in batch) + len(batch))
            kwargs.update(do_sample=True, temperature=sampling["temperature"], top_p=1.0, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with self.model.hooks(fwd_hooks=self._hooks(vectors, lams)):
            out = self.model.original_model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        outputs = self.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
        return [
            self._record(r, split, condition, p, t, self.task.extract(t))
            for r, p, t in zip(batch, texts, outputs)
        ]

    @torch.inference_mode()
    def _loglik(self, batch: list[_Row], split, condition, vectors) -> list[Record]:
        """Score every choice of the plain-format prompt: the shared few-shot prefix runs once per
        distinct λ, each row's question once, and the question's KV cache is shared by its choices."""
        tok, hf, device = self.tokenizer, self.model.original_model, self.model.cfg.device
        prompts, prefixes, suffixes = zip(*(self._prompt_ids(r.example, chat=False) for r in batch))
        conts = [
            [tok(c, add_special_tokens=False)["input_ids"] for c in self.task.continuations(r.example)]
            for r in batch
        ]
        lams = [r.lam for r in batch]
        ids, mask, cache = self._layout(prefixes, suffixes, vectors, lams)
        cached = 0 if cache is None else len(prefixes[0])
        with self.model.hooks(fwd_hooks=self._hooks(vectors, lams)):
            out = hf(
                input_ids=ids[:, cached:], attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, cached:],
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            )
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts each choice's 1st token

        owner = [i for i, cs in enumerate(conts) for _ in cs]
        flat = [c for cs in conts for c in cs]
        scores = [float(first[o, c[0]]) for o, c in zip(owner, flat)]
        longest = max(map(len, flat))
        if longest > 1:  # remaining continuation tokens, on top of the shared context cache
            cache = out.past_key_values
            index = torch.tensor(owner, device=device)
            cache.batch_select_indices(index)
            cont_ids = torch.tensor([c + [tok.pad_token_id] * (longest - len(c)) for c in flat], device=device)
            cont_mask = torch.tensor([[1] * len(c) + [0] * (longest - len(c)) for c in flat], device=device)
            start = mask[index].sum(-1, keepdim=True)
            with self.model.hooks(fwd_hooks=self._hooks(vectors, [lams[o] for o in owner])):
                logits = hf(
                    input_ids=cont_ids,
                    attention_mask=torch.cat([mask[index], cont_mask], dim=-1),
                    position_ids=start + torch.arange(longest, device=device),
                    past_key_values=cache,
                ).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, cont_ids[:, 1:, None]).squeeze(-1)
            scores = [s + float(logp[j, : len(flat[j]) - 1].sum()) for j, s in enumerate(scores)]

        records, j = [], 0
        for i, r in enumerate(batch):
            texts = self.task.continuations(r.example)
            summed = scores[j : j + len(texts)]
            j += len(texts)
            normed = [v / max(1, len(t)) for v, t in zip(summed, texts)]
            ranking = normed if self.loglik_norm else summed
            label = r.example.choices[max(range(len(ranking)), key=ranking.__getitem__)][0]
            meta = {"sum": summed, "norm": normed}
            records.append(self._record(r, split, condition, prompts[i], json.dumps(meta), label, meta))
        return records
