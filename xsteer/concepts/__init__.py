"""Concepts as contrast-pair sets with a held-out split: built-in, task-derived or user-supplied.

``load_concept(name)`` builds one of ``CONCEPTS`` ("sentiment", "language", "arith_truth"),
``task:<task name>`` or a JSONL file of ``{"positive": ..., "negative": ...}`` lines;
``concept_from_pairs`` wraps pairs you already have. How strongly a model holds a concept is
measured in ``xsteer.fidelity`` (``model_strength``).
"""

from .base import JUDGES, MIN_PAIRS, Concept, Judge, JudgeLike, check_judge, concept_from_pairs, judge_name
from .files import read_pairs_jsonl
from .language import language_pairs
from .registry import CONCEPTS, load_concept, load_judge
from .sentiment import sentiment_pairs

__all__ = [
    "CONCEPTS",
    "JUDGES",
    "MIN_PAIRS",
    "Concept",
    "Judge",
    "JudgeLike",
    "check_judge",
    "concept_from_pairs",
    "judge_name",
    "language_pairs",
    "load_concept",
    "load_judge",
    "read_pairs_jsonl",
    "sentiment_pairs",
]
