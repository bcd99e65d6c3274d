"""Built-in concepts and ``load_concept``: a built-in name, ``task:<name>`` or a JSONL path."""

from __future__ import annotations

import os
import random
from pathlib import Path

from xsteer.contrast import ContrastPair, arithmetic_pairs, from_task

from .base import Concept, concept_from_pairs
from .files import read_pairs_jsonl
from .language import language_pairs
from .sentiment import sentiment_pairs

__all__ = ["CONCEPTS", "load_concept"]

_BUILTIN = {
    "sentiment": (sentiment_pairs, "sentiment", "positive vs. negative sentiment word in the same sentence"),
    "language": (language_pairs, "language", "French (positive) vs. the parallel English sentence (negative)"),
    "arith_truth": (None, None, "true vs. false arithmetic statement ('17 + 25 = 42.' vs '... = 45.')"),
}
CONCEPTS: tuple[str, ...] = tuple(_BUILTIN)
"""Built-in concept names; ``load_concept`` also takes ``task:<task name>`` and JSONL paths."""


def _unique(pairs: list[ContrastPair]) -> list[ContrastPair]:
    """Drop pairs whose positive or negative text already occurred (no train/test leakage)."""
    seen: set[str] = set()
    out = []
    for p in pairs:
        if p.positive in seen or p.negative in seen:
            continue
        seen.update((p.positive, p.negative))
        out.append(p)
    return out


def _arith_truth(n: int, seed: int) -> list[ContrastPair]:
    pairs = _unique(arithmetic_pairs(2 * n, seed))
    if len(pairs) < n:
        raise ValueError(f"arith_truth could only make {len(pairs)} distinct pairs, fewer than n={n}.")
    return pairs[:n]


def _sample(pairs: list[ContrastPair], n: int, seed: int) -> list[ContrastPair]:
    return pairs if len(pairs) <= n else random.Random(seed).sample(pairs, n)


def load_concept(
    name_or_path: str | os.PathLike,
    *,
    n: int = 256,
    seed: int = 0,
    held_out: float = 0.25,
    data_dir: str | os.PathLike | None = None,
    judge: str | None = None,
) -> Concept:
    """A concept by built-in name (``CONCEPTS``), ``task:<task>`` (pairs from the task's train split,
    local data in ``data_dir`` or ``$XSTEER_DATA_DIR``) or a JSONL file path; at most ``n`` pairs,
    ``held_out`` of them in the test split, everything seeded. ``judge`` applies to files only.
    """
    spec = str(name_or_path)
    key = spec.strip().lower()
    if n < 1:
        raise ValueError(f"n must be >= 1, not {n}.")
    if key in _BUILTIN:
        make, builtin_judge, desc = _BUILTIN[key]
        pairs = _arith_truth(n, seed) if make is None else make(n, seed)
        return concept_from_pairs(key, pairs, held_out=held_out, seed=seed, judge=builtin_judge, description=desc)
    if key.startswith("task:"):
        from xsteer.tasks import load_task

        task_name = spec.split(":", 1)[1].strip()
        task = load_task(task_name, data_dir=data_dir, seed=seed)
        pairs = _unique(from_task(task, n=n, seed=seed, split="train"))
        desc = f"{task.name} train split: question + gold solution vs. question + corrupted solution"
        return concept_from_pairs(f"task:{task.name}", pairs, held_out=held_out, seed=seed, description=desc)
    path = Path(spec)
    if path.suffix == ".jsonl" or path.is_file():
        pairs = _sample(read_pairs_jsonl(path), n, seed)
        return concept_from_pairs(path.stem, pairs, held_out=held_out, seed=seed, judge=judge, description=f"pairs from {path}")
    raise ValueError(
        f"Unknown concept {spec!r}; use one of {CONCEPTS}, 'task:<task name>' or a path to a JSONL file."
    )
