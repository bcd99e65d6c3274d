"""Contrastive prompt pairs: the input of concept extraction."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

__all__ = ["ContrastPair", "arithmetic_pairs", "from_task", "pairs_hash"]


@dataclass(frozen=True)
class ContrastPair:
    """Two texts that differ in the concept: ``positive`` has it, ``negative`` lacks it."""

    positive: str
    negative: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.positive.strip() or not self.negative.strip():
            raise ValueError("ContrastPair texts must be non-empty; drop the pair or fill in both sides.")
        if self.positive == self.negative:
            raise ValueError(
                f"ContrastPair has identical texts ({self.positive[:60]!r}); a pair must differ in the "
                "concept, e.g. a correct vs. a corrupted answer."
            )


def pairs_hash(pairs: Sequence[ContrastPair]) -> str:
    """A short content hash of a list of pairs, for provenance."""
    blob = json.dumps([[p.positive, p.negative] for p in pairs], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def arithmetic_pairs(n: int = 64, seed: int = 0) -> list[ContrastPair]:
    """Built-in pairs of true vs. false arithmetic statements ("17 + 25 = 42." vs "17 + 25 = 45.")."""
    if n < 1:
        raise ValueError("arithmetic_pairs needs n >= 1.")
    rng = random.Random(seed)
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
    pairs = []
    for _ in range(n):
        op = rng.choice(list(ops))
        a, b = rng.randint(2, 60), rng.randint(2, 40 if op != "*" else 12)
        true = ops[op](a, b)
        false = true + rng.choice([-1, 1]) * rng.randint(1, 9)
        stem = f"{a} {op} {b} ="
        pairs.append(ContrastPair(f"{stem} {true}.", f"{stem} {false}.", {"op": op, "true": true}))
    return pairs


def from_task(task, n: int = 64, seed: int = 0, split: str = "train") -> list[ContrastPair]:
    """Pairs from a task's split: question + gold solution vs. question + corrupted solution."""
    examples = task.split(split)
    if not examples:
        raise ValueError(f"The {split!r} split of {task.name} is empty; choose another split.")
    rng = random.Random(seed)
    chosen = rng.sample(examples, min(n, len(examples)))
    pairs = []
    for ex in chosen:
        pos, neg = task.pair_texts(ex, rng)
        pairs.append(ContrastPair(pos, neg, {"task": task.name, "id": ex.id}))
    return pairs
