"""Transfer fidelity: does a concept carried from parent to child still read (and steer) in the child?

``readout_fidelity(parent, child, concepts=..., layer_maps=..., adapters=...)`` scores, per concept
and child layer, the held-out AUROC of the transferred vector beside the child's own vector and a
random-direction null; ``write_report`` saves report.md / report.json. ``collect_model_acts`` /
``fidelity_from_acts`` split the model passes from the (cheap) scoring, so one set of activations
serves both directions of a pair. ``steering_fidelity`` / ``dose_response`` measure behaviour:
concept shift of generated text (external judges) against fluency cost, transferred vs own vs random.
"""

from .readout import (
    ANCHOR_MODES,
    ChildLayerReadout,
    ConceptReadout,
    FidelityResult,
    ModelActs,
    RandomNull,
    TransferLayerReadout,
    cached_model_acts,
    collect_model_acts,
    concept_anchor_texts,
    default_anchor_texts,
    fidelity_from_acts,
    fit_transfers,
    random_null,
    readout_fidelity,
    readout_from_activations,
)
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
)
from .report import format_markdown, format_strength_table, format_summary_table, write_report
from .judges import LanguageJudge, SentimentJudge, completion_nll, distinct_n, make_judge
from .steering import DoseResponse, SteeringFidelity, dose_response, steering_fidelity
from .where import steerable_layers, targeted_map

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
    "ANCHOR_MODES",
    "concept_anchor_texts",
    "ChildLayerReadout",
    "DoseResponse",
    "LanguageJudge",
    "SentimentJudge",
    "SteeringFidelity",
    "completion_nll",
    "distinct_n",
    "dose_response",
    "make_judge",
    "steerable_layers",
    "steering_fidelity",
    "targeted_map",
    "ConceptReadout",
    "FidelityResult",
    "ModelActs",
    "RandomNull",
    "TransferLayerReadout",
    "cached_model_acts",
    "collect_model_acts",
    "default_anchor_texts",
    "fidelity_from_acts",
    "fit_transfers",
    "format_markdown",
    "format_strength_table",
    "format_summary_table",
    "random_null",
    "readout_fidelity",
    "readout_from_activations",
    "write_report",
]
