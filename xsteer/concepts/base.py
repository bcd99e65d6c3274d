"""The ``Concept`` type: a named set of contrast pairs split into train and held-out test pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence, Union

import numpy as np

from xsteer.contrast import ContrastPair, pairs_hash
from xsteer.splits import held_out_split

__all__ = ["JUDGES", "MIN_PAIRS", "Concept", "Judge", "JudgeLike", "check_judge", "concept_from_pairs", "judge_name"]

MIN_PAIRS = 16
"""Fewest pairs a concept may have: below this the held-out AUROC has too few items to mean much."""

MIN_SPLIT = 4
"""Fewest pairs each of the train and test splits may have."""

JUDGES = ("sentiment", "language")
"""Built-in judges, by name, that score a concept's expression in generated text (``Concept.judge``)."""


class Judge(Protocol):
    """Scores the expression of a concept in texts without seeing a vector; higher = more of the
    concept's positive side. ``score`` returns one finite number per text."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


JudgeLike = Union[str, Judge, Callable[[Sequence[str]], Sequence[float]]]
"""A built-in judge name (``JUDGES``), any object with ``.score(texts)``, or a callable texts -> scores."""


def judge_name(judge: JudgeLike | None) -> str | None:
    """The name a judge is reported under: the built-in name, the object's ``.name``, or the
    callable's ``__name__`` (else its type's name)."""
    if judge is None or isinstance(judge, str):
        return judge
    name = getattr(judge, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(judge, "__name__", None) or type(judge).__name__


def check_judge(judge: JudgeLike | None, where: str = "the concept") -> JudgeLike | None:
    """``judge`` if it is None, a built-in name, an object with a callable ``.score`` or a callable;
    else a TypeError / ValueError that says what a judge may be."""
    if judge is None or callable(getattr(judge, "score", None)):
        return judge
    if isinstance(judge, str):
        if judge not in JUDGES:
            raise ValueError(
                f"Unknown judge {judge!r} for {where}; use one of {JUDGES}, an object with .score(texts), "
                "or a function texts -> scores."
            )
        return judge
    if isinstance(judge, type) or not callable(judge):
        what = f"the class {judge.__name__}" if isinstance(judge, type) else f"a {type(judge).__name__}"
        raise TypeError(
            f"The judge of {where} is {what}; give a built-in name {JUDGES}, an object with "
            ".score(texts) (e.g. an instance of the class), or a function texts -> scores."
        )
    return judge


@dataclass(frozen=True)
class Concept:
    """A concept as contrast pairs: ``train`` pairs fit vectors, disjoint ``test`` pairs score them.

    ``judge`` scores the concept's expression in text without seeing a vector: a built-in name
    ("sentiment": positive side = positive sentiment; "language": positive side = French), any
    object with ``.score(texts)``, a callable texts -> scores, or None. ``instruction`` is the
    prompting baseline of the steering-fidelity controls: a request appended to a neutral prompt
    that asks for the positive side in words (e.g. "Answer in French."), or None.
    """

    name: str
    train: list[ContrastPair]
    test: list[ContrastPair]
    judge: JudgeLike | None
    description: str = ""
    instruction: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("A concept needs a non-empty name.")
        check_judge(self.judge, f"concept {self.name!r}")
        if self.instruction is not None and (not isinstance(self.instruction, str) or not self.instruction.strip()):
            raise ValueError(
                f"Concept {self.name!r}: the instruction must be a non-empty string such as 'Answer in French.', "
                f"or None (got {self.instruction!r})."
            )
        if len(self.train) < MIN_SPLIT or len(self.test) < MIN_SPLIT:
            raise ValueError(
                f"Concept {self.name!r} has {len(self.train)} train and {len(self.test)} test pairs; each "
                f"split needs at least {MIN_SPLIT} (give more pairs or change held_out)."
            )
        train_keys = {(p.positive, p.negative) for p in self.train}
        overlap = [p for p in self.test if (p.positive, p.negative) in train_keys]
        if overlap:
            raise ValueError(
                f"Concept {self.name!r}: {len(overlap)} test pairs also appear in train "
                f"(e.g. {overlap[0].positive[:50]!r}); the held-out split must be disjoint."
            )

    @property
    def pairs(self) -> list[ContrastPair]:
        """All pairs, train first."""
        return [*self.train, *self.test]

    def texts(self, split: str = "train") -> list[str]:
        """Positive texts then negative texts of a split ("train", "test" or "all")."""
        pairs = {"train": self.train, "test": self.test, "all": self.pairs}.get(split)
        if pairs is None:
            raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}.")
        return [p.positive for p in pairs] + [p.negative for p in pairs]

    @property
    def data_hash(self) -> str:
        """Content hash of train + test pairs (provenance)."""
        return pairs_hash(self.pairs)

    def to_dict(self) -> dict[str, Any]:
        """Summary fields (not the pairs themselves)."""
        return {
            "name": self.name,
            "judge": judge_name(self.judge),
            "description": self.description,
            "instruction": self.instruction,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "data_hash": self.data_hash,
        }

    def __repr__(self) -> str:
        return f"Concept({self.name!r}, train={len(self.train)}, test={len(self.test)}, judge={judge_name(self.judge)!r})"


def _as_pairs(name: str, pairs: Sequence[ContrastPair] | Sequence[tuple[str, str]]) -> list[ContrastPair]:
    out = []
    for i, p in enumerate(pairs):
        if isinstance(p, ContrastPair):
            out.append(p)
            continue
        if not isinstance(p, (tuple, list)) or len(p) != 2 or not all(isinstance(t, str) for t in p):
            raise TypeError(
                f"Concept {name!r}: pair {i} is {type(p).__name__}; give ContrastPair objects or "
                "(positive, negative) tuples of strings."
            )
        try:
            out.append(ContrastPair(p[0], p[1]))
        except ValueError as err:
            raise ValueError(f"Concept {name!r}, pair {i}: {err}") from None
    return out


def _check_unique(name: str, pairs: list[ContrastPair]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for i, p in enumerate(pairs):
        key = (p.positive, p.negative)
        if key in seen:
            raise ValueError(
                f"Concept {name!r}: pair {i} duplicates pair {seen[key]} ({p.positive[:50]!r}); "
                "drop duplicates so the held-out split stays disjoint from train."
            )
        seen[key] = i


def concept_from_pairs(
    name: str,
    pairs: Sequence[ContrastPair] | Sequence[tuple[str, str]],
    *,
    held_out: float = 0.25,
    seed: int = 0,
    judge: JudgeLike | None = None,
    description: str = "",
    instruction: str | None = None,
) -> Concept:
    """A concept from user pairs (``ContrastPair`` or ``(positive, negative)`` tuples), split seeded;
    ``judge`` as in :class:`Concept` (a name, an object with ``.score(texts)`` or a callable)."""
    pairs = _as_pairs(name, pairs)
    if len(pairs) < MIN_PAIRS:
        raise ValueError(
            f"Concept {name!r} has {len(pairs)} pairs; at least {MIN_PAIRS} are needed for a held-out "
            "readout. Add more pairs."
        )
    _check_unique(name, pairs)
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be in (0, 1), not {held_out}.")
    train_idx, test_idx = held_out_split(len(pairs), held_out, seed)
    return Concept(
        name=name,
        train=[pairs[i] for i in train_idx],
        test=[pairs[i] for i in test_idx],
        judge=judge,
        description=description,
        instruction=instruction,
    )
