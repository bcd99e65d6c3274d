"""Built-in concepts and ``load_concept``: a built-in name, ``task:<name>`` or a JSONL path; and
``load_judge``: a user's judge named as ``module:attr`` or ``path/to/file.py:attr``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import random
import sys
from pathlib import Path

from xsteer.contrast import ContrastPair, arithmetic_pairs, from_task
from xsteer.tasks import load_task

from .base import JUDGES, Concept, JudgeLike, check_judge, concept_from_pairs
from .files import read_pairs_jsonl
from .language import language_pairs
from .sentiment import sentiment_pairs
from .topics import TOPICS, topic_concept

__all__ = ["CONCEPTS", "load_concept", "load_judge"]

# name -> (pair maker, built-in judge, description, instruction of the prompting baseline)
_BUILTIN = {
    "sentiment": (sentiment_pairs, "sentiment", "positive vs. negative sentiment word in the same sentence",
                  "Answer in a warm, positive and enthusiastic tone."),
    "language": (language_pairs, "language", "French (positive) vs. the parallel English sentence (negative)",
                 "Answer in French."),
    "arith_truth": (None, None, "true vs. false arithmetic statement ('17 + 25 = 42.' vs '... = 45.')", None),
}
CONCEPTS: tuple[str, ...] = (*_BUILTIN, *TOPICS)
"""Built-in concept names (the topics judged by their keyword share, ``TopicJudge``); ``load_concept``
also takes ``task:<task name>`` and JSONL paths."""


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
    judge: JudgeLike | None = None,
    instruction: str | None = None,
) -> Concept:
    """A concept by built-in name (``CONCEPTS``), ``task:<task>`` (pairs from the task's train split,
    local data in ``data_dir`` or ``$XSTEER_DATA_DIR``) or a JSONL file path; at most ``n`` pairs,
    ``held_out`` of them in the test split, everything seeded. ``judge`` (a built-in name, an object
    with ``.score(texts)`` or a callable; see :func:`load_judge`) and ``instruction`` (the prompting
    baseline) replace a built-in concept's own.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n (pairs per concept) must be an int such as 256, not {type(n).__name__}.")
    if n < 1:
        raise ValueError(f"n must be >= 1, not {n}.")
    check_judge(judge, f"concept {str(name_or_path)!r}")
    spec = str(name_or_path)
    key = spec.strip().lower()
    if key in _BUILTIN:
        make, builtin_judge, desc, builtin_instruction = _BUILTIN[key]
        pairs = _arith_truth(n, seed) if make is None else make(n, seed)
        return concept_from_pairs(key, pairs, held_out=held_out, seed=seed, judge=judge or builtin_judge,
                                  description=desc, instruction=instruction or builtin_instruction)
    if key in TOPICS:
        return topic_concept(key, n=n, seed=seed, held_out=held_out, judge=judge, instruction=instruction)
    if key.startswith("task:"):
        task_name = spec.split(":", 1)[1].strip()
        task = load_task(task_name, data_dir=data_dir, seed=seed)
        pairs = _unique(from_task(task, n=n, seed=seed, split="train"))
        desc = f"{task.name} train split: question + gold solution vs. question + corrupted solution"
        return concept_from_pairs(f"task:{task.name}", pairs, held_out=held_out, seed=seed, judge=judge,
                                  description=desc, instruction=instruction)
    path = Path(spec)
    if path.suffix == ".jsonl" or path.is_file():
        pairs = _sample(read_pairs_jsonl(path), n, seed)
        return concept_from_pairs(path.stem, pairs, held_out=held_out, seed=seed, judge=judge,
                                  description=f"pairs from {path}", instruction=instruction)
    raise ValueError(
        f"Unknown concept {spec!r}; use one of {CONCEPTS}, 'task:<task name>' or a path to a JSONL file."
    )


def _user_module(where: str, spec: str):
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"Judge {spec!r}: no Python file at {path}; give path/to/file.py:NAME or module:NAME.")
        name = f"xsteer_user_judge_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ImportError as err:
        raise ValueError(
            f"Judge {spec!r}: cannot import module {where!r} ({err}); put it on PYTHONPATH or give "
            "path/to/file.py:NAME."
        ) from None


def load_judge(spec: str) -> JudgeLike:
    """A user judge from ``module:NAME`` or ``path/to/file.py:NAME``: NAME is an object with
    ``.score(texts)``, a function texts -> scores, or a class whose no-argument instance has
    ``.score``; a built-in judge name (``JUDGES``) is returned as it is."""
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"A judge spec is a string like 'my_judges:formality' or 'judges.py:Formality', not {spec!r}.")
    if spec in JUDGES:
        return spec
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr.isidentifier():
        raise ValueError(
            f"Judge {spec!r} is not module:NAME or path/to/file.py:NAME (or a built-in: {JUDGES})."
        )
    module = _user_module(where, spec)
    if not hasattr(module, attr):
        raise ValueError(f"Judge {spec!r}: {where} has no attribute {attr!r}; name a judge object, function or class in it.")
    judge = getattr(module, attr)
    if isinstance(judge, type):
        try:
            judge = judge()
        except TypeError as err:
            raise ValueError(
                f"Judge {spec!r}: the class {attr} cannot be made without arguments ({err}); name an instance "
                "or a function instead."
            ) from None
        if not callable(getattr(judge, "score", None)):
            raise TypeError(f"Judge {spec!r}: instances of {attr} have no .score(texts) method; add one.")
    return check_judge(judge, f"judge {spec!r}")
