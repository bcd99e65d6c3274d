"""Evaluation under steering: the whole λ grid as rows of one batch, greedy generation or
log-likelihood scoring, inference-time-scaling votes, and resumable records.

Every row of a batch is one (example, λ); per-row λ makes a grid sweep one batched pass instead of
one pass per λ, with the same answers as running each λ alone. Forward passes run on the plain view
of the model (``xsteer.plain``); greedy generation verifies the neighbouring λ's answer as a draft
(``xsteer.decode``); choices are scored as a token trie (``xsteer.choices``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from xsteer.checks import as_count, as_real
from xsteer.choices import ChoiceTrie, tree_attention_mask
from xsteer.decode import Group, Sampling, decode
from xsteer.models import check_bridge, model_fingerprint, n_layers
from xsteer.operators import Operator, operator_from_spec
from xsteer.plain import plain_view, sliding_window
from xsteer.positions import Layout, Positions, check_positions, layout
from xsteer.records import Record, RecordStore, prompt_hash
from xsteer.schedules import Schedule, check_depth, schedule_from_spec
from xsteer.steer import Scale, steering_hooks
from xsteer.tasks import Example, Task
from xsteer.vectors import SteeringVectors

__all__ = ["PAPER_LAMBDAS", "Evaluator", "check_lambdas", "its_vote"]

#: Most stored answers to the same prompt that a generated row takes as drafts.
MAX_DRAFTS = 4

#: The paper's grid: {0.01 … 0.09} ∪ {0.1 … 1.0}.
PAPER_LAMBDAS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(1, 10)) + tuple(
    round(0.1 * i, 1) for i in range(1, 11)
)


def _grid(lambdas: Sequence[float]) -> list[float]:
    """The finite λ values of ``lambdas``, each once, in the order given (a string or a lone number
    is refused)."""
    if isinstance(lambdas, (str, bytes)) or not isinstance(lambdas, (Sequence, np.ndarray, torch.Tensor, set)):
        raise TypeError(f"The λ grid must be a list of numbers such as [0.01, 0.1, 1], not {lambdas!r}.")
    values = lambdas.tolist() if hasattr(lambdas, "tolist") else list(lambdas)
    grid = list(dict.fromkeys(as_real("λ", x, "pass finite numbers, e.g. [0.01, 0.1, 1].") for x in values))
    if not grid:
        raise ValueError("The λ grid is empty; pass e.g. --lambdas 0.01,0.05,0.1 (or use the paper's grid).")
    return grid


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """A validated, sorted, de-duplicated λ grid of the protocol (finite, >= 0)."""
    grid = sorted(_grid(lambdas))
    if any(x < 0 for x in grid):
        raise ValueError(
            f"λ values must be >= 0 (got {[x for x in grid if x < 0]}); steer the other way by "
            "negating the vectors (-vectors), not λ."
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

    ``mode`` is the task's: "generate" (greedy, KV-cached, batched, each row stopping at the task's
    stop strings or an end token) or "loglik" (multiple choice by summed continuation
    log-probability of the plain-format prompt; ``loglik_norm=True`` divides by the continuation's
    length in characters). ``prefix_cache`` reuses the KV cache of the task's shared few-shot
    prefix across the examples of a batch (both modes). Records already in ``store`` are never
    recomputed. ``operator``, ``positions`` and ``schedule`` are passed to ``steering_hooks``
    (default: add λ·v at every position of every layer); ``check_model=False`` lets vectors of
    another model of the same shape steer this one.

    A condition name stands for one setting (model, vectors, scale, operator, positions, schedule,
    scoring) in its store: sweeping it again with another setting is refused, since the stored
    records would answer for it.
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
        operator: Operator | str | None = None,
        positions: Positions = "all",
        schedule: Schedule | str | None = None,
        check_model: bool = True,
    ):
        check_bridge(model, "Evaluator")
        if not all(hasattr(task, a) for a in ("mode", "prompt", "is_correct", "split")) or task.mode not in ("generate", "loglik"):
            raise TypeError(
                f"Evaluator needs a task (xsteer.tasks.load_task(name), or an object like xsteer.tasks.Task), "
                f"not {type(task).__name__}."
            )
        if scale not in ("absolute", "relative"):
            raise ValueError(f"scale must be 'absolute' or 'relative', not {scale!r}.")
        if store is not None and not isinstance(store, RecordStore):
            raise TypeError(f"store must be an xsteer.records.RecordStore, not {type(store).__name__}.")
        if operator is not None and not isinstance(operator, Operator):
            operator = operator_from_spec(operator)
        if schedule is not None and not isinstance(schedule, Schedule):
            schedule = schedule_from_spec(schedule)
        if schedule is not None:
            check_depth(schedule, n_layers(model))
        self.model = model
        self.operator, self.schedule = operator, schedule
        self.positions = check_positions(positions, task.mode)
        self.task = task
        self.scale = scale
        self.batch_size = as_count("batch_size", batch_size)
        self.store = store if store is not None else RecordStore()
        self.loglik_norm = bool(loglik_norm)
        self.check_model = bool(check_model)
        self.max_new_tokens = task.max_new_tokens if max_new_tokens is None else as_count("max_new_tokens", max_new_tokens)
        self.prefix_cache = prefix_cache
        self.progress = progress
        self.tokenizer = model.tokenizer
        eos = model.original_model.generation_config.eos_token_id
        self._eos_ids = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None}

    # ------------------------------------------------------------------ public

    def sweep(
        self,
        examples: Sequence[Example],
        split: str,
        condition: str,
        vectors: SteeringVectors | None,
        lambdas: Sequence[float],
    ) -> dict[float, list[Record]]:
        """Evaluate every example at every λ; returns λ -> records in example order (each λ once, in
        the order given; negative λ steers the other way)."""
        examples = self._examples(examples, split)
        for name, value in (("split", split), ("condition", condition)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, not {value!r}.")
        lambdas = _grid(lambdas)
        if vectors is None and any(l != 0 for l in lambdas):
            raise ValueError("Non-zero λ needs steering vectors; pass vectors or lambdas=[0.0].")
        if vectors is not None:
            steering_hooks(self.model, vectors, 0.0, scale=self.scale, operator=self.operator,
                           positions=self.positions, schedule=self.schedule, check_model=self.check_model)
        self.store.claim(condition, self._setting(vectors))
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
        examples = self._examples(examples, split)
        n = as_count("n", n)
        temperature = as_real("temperature", temperature, "sample at a temperature > 0, e.g. 0.7.", positive=True)
        seed = as_count("seed", seed, 0)
        self.store.claim("self_consistency", self._setting(None, sampling=(temperature, seed)))
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

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _examples(examples, split) -> list[Example]:
        """A non-empty list of Examples with distinct ids (records are kept per id)."""
        if isinstance(examples, Example) or isinstance(examples, (str, bytes)) or not isinstance(examples, Sequence):
            raise TypeError(f"examples must be a list of Examples (task.split(...)), not {type(examples).__name__}.")
        if not examples:
            raise ValueError(f"No examples to evaluate for split {split!r}; check the task's splits.")
        bad = [e for e in examples if not isinstance(e, Example)]
        if bad:
            raise TypeError(f"examples must hold xsteer.tasks.Example items, not {type(bad[0]).__name__}.")
        twice = sorted({i for i, c in Counter(e.id for e in examples).items() if c > 1})
        if twice:
            raise ValueError(
                f"Examples share ids {twice[:3]}; records are kept per id, so one would answer for the other. "
                "Fix: give every example its own id."
            )
        return list(examples)

    def _setting(self, vectors, sampling: tuple | None = None) -> str:
        """What a condition's records answer: the model, the vectors with how they steer, the scoring."""
        fingerprint = model_fingerprint(self.model)
        setting = {
            "model": [str(self.model.cfg.model_name), None if fingerprint is None else str(fingerprint)],
            "task": [getattr(self.task, "name", type(self.task).__name__), self.task.mode],
            "scoring": [self.loglik_norm, self.max_new_tokens, sampling],
        }
        if vectors is not None:
            digest = hashlib.sha256()
            for l in vectors.layers:
                digest.update(f"{l}:".encode())
                digest.update(vectors[l].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            setting["steering"] = [
                digest.hexdigest()[:16], float(getattr(vectors, "gain", 1.0)), self.scale,
                None if self.operator is None else self.operator.to_dict(), self.positions,
                None if self.schedule is None else self.schedule.to_dict(),
            ]
        return json.dumps(setting, sort_keys=True, default=str)

    # ------------------------------------------------------------------ engine

    def _run(self, rows: list[_Row], split, condition, vectors, sampling: dict | None = None) -> None:
        todo = [r for r in rows if (split, condition, r.example.id, r.lam, r.sample) not in self.store]
        if not todo:
            return
        bar = tqdm(total=len(todo), desc=f"{split}:{condition}", disable=not self.progress, leave=False)
        if self.task.mode == "generate":
            lams = sorted({r.lam for r in rows})
            for part in self._parts(todo, greedy=sampling is None):
                pending = []
                for record in self._generate(part, split, condition, vectors, sampling, lams):
                    pending.append(record)
                    bar.update(1)
                    if len(pending) >= self.batch_size:
                        self.store.add(pending)
                        pending = []
                self.store.add(pending)
        else:
            examples = {r.example.id: r.example for r in todo}
            size = {i: self._loglik_size(ex) for i, ex in examples.items()}  # tokenized once per example
            todo.sort(key=lambda r: (r.lam, size[r.example.id]))  # few λ per batch, like lengths: less padding
            for start in range(0, len(todo), self.batch_size):
                batch = todo[start : start + self.batch_size]
                self.store.add(self._loglik(batch, split, condition, vectors))
                bar.update(len(batch))
        bar.close()

    @staticmethod
    def _parts(todo: list[_Row], greedy: bool) -> list[list[_Row]]:
        """Generation rows in the order they run, each part grouped by ``batch_size`` in turn:
        for greedy decoding the smallest λ's rows first and apart, so that every later row has a
        neighbouring λ's answer as its draft."""
        if not greedy:
            return [todo]
        first = min(r.lam for r in todo)
        return [part for part in ([r for r in todo if r.lam == first], [r for r in todo if r.lam != first]) if part]

    def _drafts(self, row: _Row, split, condition, lams: Sequence[float], fresh: dict) -> list[list[int]]:
        """Token ids of up to ``MAX_DRAFTS`` answers to the same prompt at other λ values of this
        sweep, nearest λ first, then the baseline's: drafts that greedy decoding verifies, never
        trusts. ``fresh`` maps ``(example id, λ)`` to the tokens of rows finished in this run (not
        yet stored); stored answers are tokenized again."""
        ex, found = row.example, []
        keys = [(split, condition, ex.id, lam, 0) for lam in sorted(lams, key=lambda l: abs(l - row.lam))]
        for key in [*keys, (split, "baseline", ex.id, 0.0, 0)]:
            if len(found) == MAX_DRAFTS or (key[3] == row.lam and key[1] == condition):
                continue
            if key[1] == condition and (ex.id, key[3]) in fresh:
                found.append(fresh[ex.id, key[3]])
            elif key in self.store:
                found.append(self.tokenizer(self.store[key].output, add_special_tokens=False)["input_ids"])
        return found

    def _hooks(self, vectors, lams: list[float]):
        if vectors is None or all(l == 0 for l in lams):
            return []
        return steering_hooks(  # checked against the model once, in sweep
            self.model, vectors, torch.tensor(lams), scale=self.scale, operator=self.operator,
            positions=self.positions, schedule=self.schedule, check_model=False,
        )

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
        """A prompt's text and the token ids of its shared prefix and of its own suffix: the whole
        text tokenized at once (as Hugging Face and lm-evaluation-harness do), cut at the last token
        that ends inside the prefix text. Tokenizing the parts apart would differ where a token
        spans the seam: byte-level BPE writes a prefix's closing "\n\n" as one token alone but as
        two before a word. The prefix is the same token sequence for every example whose suffix
        starts alike (``_layout`` checks before sharing its KV cache). ``chat=False`` renders the
        plain format."""
        rendered = self.task.prompt(example, self.tokenizer if chat else None)
        special = not rendered.chat  # a chat template already wrote BOS
        try:
            enc = self.tokenizer(rendered.text, add_special_tokens=special, return_offsets_mapping=True)
        except NotImplementedError:  # a slow tokenizer has no offsets: tokenize the parts apart
            prefix = self.tokenizer(rendered.prefix, add_special_tokens=special)["input_ids"]
            suffix = self.tokenizer(rendered.suffix, add_special_tokens=False)["input_ids"]
            return rendered.text, prefix, suffix
        ids, seam = enc["input_ids"], len(rendered.prefix)
        cut = next((i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > seam), len(ids))
        return rendered.text, ids[:cut], ids[cut:]

    def _prefix_cache(self, prefix: list[int], vectors, lams: list[float]):
        """KV cache of the shared prefix, computed once per distinct λ and gathered per row."""
        distinct = sorted(set(lams))
        view = plain_view(self.model)
        ids = torch.tensor([prefix] * len(distinct), device=view.device)
        with view.hooks(self._hooks(vectors, distinct)), layout(lambda: Layout.of(ids > -1, 0, ends_prompt=False)):
            cache = view.model(input_ids=ids, use_cache=True, logits_to_keep=1).past_key_values
        cache.batch_select_indices(torch.tensor([distinct.index(l) for l in lams], device=ids.device))
        return cache

    def _layout(self, prefixes, suffixes, vectors, lams, extra: int):
        """Token ids and attention mask of a batch of prompts, plus the KV cache of their common
        prefix (``None`` without one): with the cache, padding goes between prefix and suffix and
        only the suffixes remain to be run. A model with sliding-window layers gets the cache only
        if the prompts and ``extra`` more tokens fit in its window (the window counts padding)."""
        pad, device = self.tokenizer.pad_token_id, self.model.cfg.device
        prefix, width = prefixes[0], max(map(len, suffixes))
        window = sliding_window(plain_view(self.model).model.config)
        fits = window is None or len(prefix) + width + extra < window
        if self.prefix_cache and prefix and fits and all(p == prefix for p in prefixes):
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

    def _generate(self, rows: list[_Row], split, condition, vectors, sampling: dict | None, lams) -> Iterator[Record]:
        """Records of greedy (or sampled) generation, as rows finish: groups of ``batch_size`` rows
        (the few-shot prefix computed once per distinct λ of a group) join the running batch when
        it falls below a quarter of that; each row stops at an end token or the task's stop
        strings. Greedy rows verify other λ values' answers as drafts (``_drafts``)."""
        prompts: dict[int, str] = {}
        fresh: dict[tuple[str, float], list[int]] = {}  # (example id, λ) -> tokens, rows finished so far

        def groups() -> Iterator[Group]:  # drawn lazily: drafts see the rows finished so far
            for start in range(0, len(rows), self.batch_size):
                chunk = rows[start : start + self.batch_size]
                texts, prefixes, suffixes = zip(*(self._prompt_ids(r.example, chat=True) for r in chunk))
                ids, mask, cache = self._layout(prefixes, suffixes, vectors, [r.lam for r in chunk], self.max_new_tokens)
                keys = list(range(start, start + len(chunk)))
                prompts.update(zip(keys, texts))
                drafts = [self._drafts(r, split, condition, lams, fresh) if sampling is None else [] for r in chunk]
                yield Group(
                    keys, ids[:, 0 if cache is None else len(prefixes[0]) :], mask, cache,
                    drafts=[d[0] if d else None for d in drafts],
                    lookup=[[*d[1:], p + s] for d, p, s in zip(drafts, prefixes, suffixes)],
                )

        draw = None if not sampling else Sampling(temperature=sampling["temperature"], seed=sampling["seed"])
        for key, tokens in decode(
            plain_view(self.model), groups(), hooks_for=lambda keys: self._hooks(vectors, [rows[k].lam for k in keys]),
            max_new_tokens=self.max_new_tokens, finished=self._finished, sampling=draw,
            refill_below=self.batch_size // 4,
        ):
            if sampling is None:
                fresh[rows[key].example.id, rows[key].lam] = tokens
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            yield self._record(rows[key], split, condition, prompts.pop(key), text, self.task.extract(text))

    def _finished(self, tokens: list[int]) -> int | None:
        """How many generated tokens to keep once a row is done: through an end token, or through
        the token that completes one of the task's stop strings; None while it runs on."""
        if tokens[-1] in self._eos_ids:
            return len(tokens)
        stops = self.task.stop_strings()
        if stops:  # checked after every token: a new stop string lies in the last few (≤ 4 per character)
            tail = tokens[-(4 * max(map(len, stops)) + 4) :]
            text = self.tokenizer.decode(tail, skip_special_tokens=True)
            if any(stop in text for stop in stops):
                return len(tokens)
        return None

    def _loglik_size(self, example: Example) -> int:
        """The tokens scoring ``example`` runs beyond the shared prefix: its suffix and every choice."""
        _, _, suffix = self._prompt_ids(example, chat=False)
        choices = self.task.continuations(example)
        return len(suffix) + sum(len(self.tokenizer(c, add_special_tokens=False)["input_ids"]) for c in choices)

    @torch.inference_mode()
    def _loglik(self, batch: list[_Row], split, condition, vectors) -> list[Record]:
        """Score every choice of the plain-format prompt: the shared few-shot prefix runs once per
        distinct λ, each row's question once, and the question's KV cache is shared by its choices."""
        view = plain_view(self.model)
        tok, hf, device = self.tokenizer, view.model, view.device
        prompts, prefixes, suffixes = zip(*(self._prompt_ids(r.example, chat=False) for r in batch))
        conts = [
            [tok(c, add_special_tokens=False)["input_ids"] for c in self.task.continuations(r.example)]
            for r in batch
        ]
        lams = [r.lam for r in batch]
        ids, mask, cache = self._layout(prefixes, suffixes, vectors, lams, max(len(c) for cs in conts for c in cs))
        cached = 0 if cache is None else len(prefixes[0])
        with view.hooks(self._hooks(vectors, lams)), layout(lambda: Layout.of(mask[:, cached:], 0)):
            out = hf(
                input_ids=ids[:, cached:], attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, cached:],
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            )
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts each choice's 1st token

        tries = [ChoiceTrie.build(cs) for cs in conts]
        width = max(len(t.tokens) for t in tries)
        if width:  # every later token of every choice, predicted by its trie node
            nodes = torch.tensor([t.tokens + [tok.pad_token_id] * (width - len(t.tokens)) for t in tries], device=device)
            depths = torch.tensor([t.depths + [0] * (width - len(t.tokens)) for t in tries], device=device)
            ancestry = torch.stack([t.ancestry(width) for t in tries]).to(device)
            allowed = torch.cat([mask.bool()[:, None, :].expand(-1, width, -1), ancestry], dim=-1)
            positions = mask.sum(-1, keepdim=True) + depths
            key_pos = torch.cat([(mask.cumsum(-1) - 1).clamp(min=0), positions], dim=-1)
            attention = tree_attention_mask(hf.config, allowed, positions, key_pos, mask.shape[1], hf.dtype)
            with view.hooks(self._hooks(vectors, lams)), layout(lambda: Layout.of(nodes[:, :0], width)):
                hidden = hf.get_decoder()(
                    input_ids=nodes, attention_mask=attention, position_ids=positions,
                    past_key_values=out.past_key_values,
                ).last_hidden_state
        # every scored token: its choice, row, predicting node (-1: the question's end) and id
        picks = [
            (n, i, -1 if k == 0 else t.node[tuple(c[:k])], c[k])
            for n, (i, c, t) in enumerate((i, c, tries[i]) for i, cs in enumerate(conts) for c in cs)
            for k in range(len(c))
        ]
        choice, row, node, token = torch.tensor(picks, device=device).T
        value = first[row, token]
        inner = node >= 0  # the head runs only at trie nodes that predict a scored token
        if inner.any():
            value[inner] = view.token_logprobs(hidden[row[inner], node[inner]], token[inner]).to(value.dtype)
        flat = torch.zeros(int(choice.max()) + 1, device=device).index_add_(0, choice, value).tolist()
        bounds = [0, *itertools.accumulate(len(cs) for cs in conts)]
        scores = [flat[a:b] for a, b in zip(bounds, bounds[1:])]

        records = []
        for i, r in enumerate(batch):
            texts = self.task.continuations(r.example)
            summed = scores[i]
            normed = [v / max(1, len(t)) for v, t in zip(summed, texts)]
            ranking = normed if self.loglik_norm else summed
            label = r.example.choices[max(range(len(ranking)), key=ranking.__getitem__)][0]
            meta = {"sum": summed, "norm": normed}
            records.append(self._record(r, split, condition, prompts[i], json.dumps(meta), label, meta))
        return records
