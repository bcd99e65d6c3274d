"""Transfer fidelity: does a concept carried from parent to child still read (and steer) in the child?

``readout_fidelity(parent, child, concepts=..., layer_maps=..., adapters=...)`` scores, per concept
and child layer, the held-out AUROC of the transferred vector beside the child's own vector and a
random-direction null; ``write_report`` saves report.md / report.json.
"""

from .readout import (
    ChildLayerReadout,
    ConceptReadout,
    FidelityResult,
    RandomNull,
    TransferLayerReadout,
    default_anchor_texts,
    fit_transfers,
    random_null,
    readout_fidelity,
    readout_from_activations,
)

__all__ = [
    "ChildLayerReadout",
    "ConceptReadout",
    "FidelityResult",
    "RandomNull",
    "TransferLayerReadout",
    "default_anchor_texts",
    "fit_transfers",
    "random_null",
    "readout_fidelity",
    "readout_from_activations",
]
