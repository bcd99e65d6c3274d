"""Transfer fidelity: does a concept carried from parent to child still read (and steer) in the child?

``readout_fidelity(parent, child, concepts=...)`` scores, per concept and child layer, the held-out
AUROC of the transferred vector (through ``Transfer()`` fitted with the concept held out, or the
transfers or layer maps × adapters given) beside the child's own vector, a
random-direction null and the controls (mapped_random, wrong_concept, child_own on k pairs);
``write_report`` saves report.md / report.json. ``collect_model_acts`` / ``fidelity_from_acts``
split the model passes from the (cheap) scoring, so one set of activations serves both directions.
``steering_fidelity`` / ``dose_response`` (the engine, ``xsteer.fidelity.dose``) measure behaviour:
the judge's shift of generated text against fluency cost, transferred beside every control.
``fidelity_suite`` runs both for several transfer estimators, concepts and directions.
"""

from .strength import (
    HOLD_AUROC,
    ConceptActs,
    ConceptStrength,
    LayerStrength,
    auroc,
    auroc_ci,
    check_readable,
    concept_acts,
    concept_strength,
    fit_directions,
    model_strength,
)
from .controls import CarriedVectors, carry, pair_subset, vectors_from_acts
from .readout import (
    ANCHOR_MODES,
    ChildLayerReadout,
    ConceptReadout,
    ControlLayerReadout,
    FidelityResult,
    ModelActs,
    RandomNull,
    TransferLayerReadout,
    cached_model_acts,
    collect_model_acts,
    concept_anchor_texts,
    default_anchor_texts,
    fidelity_from_acts,
    fit_default_transfers,
    fit_transfers,
    random_null,
    readout_fidelity,
    readout_from_activations,
    transfers_by_concept,
)
from .report import format_markdown, format_strength_table, format_summary_table, write_report
from xsteer.concepts.judges import CheckedJudge, LanguageJudge, SentimentJudge, make_judge
from .fluency import completion_nll, distinct_n
from .dose import (
    DEFAULT_LAMBDAS,
    NEUTRAL_PROMPTS,
    Band,
    BudgetComparison,
    Curve,
    DoseResponse,
    ExchangeRate,
    OpenPrompts,
    PromptingBaseline,
    anti_steerability,
    compare_at_budget,
    dose_response,
    exchange_rate,
    lam_at_cost,
    run_curves,
    shift_and_cost,
    shift_at_cost,
)
from .side_effect import SideEffect, TaskSideEffects, task_side_effects
from .where import steerable_layers, targeted_map
from .steering import SteeringFidelity, steer_concept, steering_fidelity
from .suite import DIRECTIONS, SuiteConfig, SuiteResult, SuiteRow, fidelity_suite

__all__ = [
    "ANCHOR_MODES",
    "DEFAULT_LAMBDAS",
    "DIRECTIONS",
    "HOLD_AUROC",
    "NEUTRAL_PROMPTS",
    "Band",
    "BudgetComparison",
    "CarriedVectors",
    "CheckedJudge",
    "ChildLayerReadout",
    "ConceptActs",
    "ConceptReadout",
    "ConceptStrength",
    "ControlLayerReadout",
    "Curve",
    "DoseResponse",
    "ExchangeRate",
    "FidelityResult",
    "LanguageJudge",
    "LayerStrength",
    "ModelActs",
    "OpenPrompts",
    "PromptingBaseline",
    "RandomNull",
    "SentimentJudge",
    "SideEffect",
    "SteeringFidelity",
    "SuiteConfig",
    "SuiteResult",
    "SuiteRow",
    "TaskSideEffects",
    "TransferLayerReadout",
    "anti_steerability",
    "auroc",
    "auroc_ci",
    "cached_model_acts",
    "carry",
    "check_readable",
    "collect_model_acts",
    "compare_at_budget",
    "completion_nll",
    "concept_acts",
    "concept_anchor_texts",
    "concept_strength",
    "default_anchor_texts",
    "distinct_n",
    "dose_response",
    "exchange_rate",
    "fidelity_from_acts",
    "fidelity_suite",
    "fit_default_transfers",
    "fit_directions",
    "fit_transfers",
    "format_markdown",
    "format_strength_table",
    "format_summary_table",
    "lam_at_cost",
    "make_judge",
    "model_strength",
    "pair_subset",
    "random_null",
    "readout_fidelity",
    "readout_from_activations",
    "run_curves",
    "shift_and_cost",
    "shift_at_cost",
    "steer_concept",
    "steerable_layers",
    "steering_fidelity",
    "targeted_map",
    "task_side_effects",
    "transfers_by_concept",
    "vectors_from_acts",
    "write_report",
]
