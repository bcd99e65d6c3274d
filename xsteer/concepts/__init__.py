"""Concepts as contrast-pair sets with a held-out split: built-in, task-derived or user-supplied.

``load_concept(name)`` builds one of ``CONCEPTS`` ("sentiment", "language", "arith_truth"),
``task:<task name>`` or a JSONL file of ``{"positive": ..., "negative": ...}`` lines;
``concept_from_pairs`` wraps pairs you already have; ``model_strength`` says how strongly a model
holds a concept (held-out AUROC and sign agreement per layer, flagged when it does not).
"""

from .base import JUDGES, MIN_PAIRS, Concept, concept_from_pairs, split_concept_pairs
from .files import read_pairs_jsonl
from .language import language_pairs
from .registry import CONCEPTS, load_concept
from .sentiment import sentiment_pairs
from .strength import (
    HOLD_AUROC,
    ConceptActs,
    ConceptStrength,
    LayerStrength,
    auroc,
    auroc_ci,
    concept_acts,
    concept_strength,
    fit_directions,
    model_strength,
    sign_agreement,
)

__all__ = [
    "HOLD_AUROC",
    "ConceptActs",
    "ConceptStrength",
    "LayerStrength",
    "auroc",
    "auroc_ci",
    "concept_acts",
    "concept_strength",
    "fit_directions",
    "model_strength",
    "sign_agreement",
    "CONCEPTS",
    "JUDGES",
    "MIN_PAIRS",
    "Concept",
    "concept_from_pairs",
    "language_pairs",
    "load_concept",
    "read_pairs_jsonl",
    "sentiment_pairs",
    "split_concept_pairs",
]
