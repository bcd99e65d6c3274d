"""Moving steering vectors from a parent model into a child of another width and depth: layer maps
(child layer <- parent layer) and dimension adapters / estimators (d_parent -> d_child), fitted on
paired anchor activations, contrasts of the built-in anchor corpus or the shared vocabulary,
measured and saved. ``Transfer().fit(parent, child)`` is the best measured transfer."""

from xsteer.transfer.adapters import (
    ADAPTERS,
    DEFAULT_ALPHAS,
    DimAdapter,
    IdentityAdapter,
    ProcrustesAdapter,
    RandomProjectionAdapter,
    RidgeAdapter,
    TruncatePadAdapter,
    make_adapter,
)
from xsteer.transfer.aligned import (
    MIN_ALIGNED,
    AlignedBatch,
    RidgeStats,
    aligned_positions,
    fit_aligned_ridge,
    iter_aligned_batches,
)
from xsteer.transfer.anchors import (
    anchor_groups,
    anchor_hash,
    anchor_texts,
    collect_anchor_activations,
)
from xsteer.transfer.cka import cka_matrix, linear_cka
from xsteer.transfer.contrasts import group_contrasts
from xsteer.transfer.continued import Continuations, continue_texts, openings
from xsteer.transfer.corpus import AnchorCorpus, builtin_corpus, concept_markers, hold_out
from xsteer.transfer.estimators import (
    AnchorCoordinateAdapter,
    CovarianceProbeAdapter,
    DifferenceAdapter,
    StandardizedRidgeAdapter,
    VocabBridge,
)
from xsteer.transfer.diagnostics import TransferDiagnostics, cosine_to_reference
from xsteer.transfer.layer_maps import (
    LAYER_MAPS,
    CKAMap,
    ExplicitMap,
    FitMap,
    GreedyMap,
    LayerMap,
    ProportionalMap,
    make_layer_map,
    monotone_alignment,
)
from xsteer.transfer.multi import MultiParentTransfer
from xsteer.transfer.steerability import accessibility_profile, accessible_band
from xsteer.transfer.transfer import ModelInfo, Transfer
from xsteer.transfer.vocab import embedding_rows, shared_words

__all__ = [
    "ADAPTERS",
    "AnchorCoordinateAdapter",
    "AnchorCorpus",
    "CovarianceProbeAdapter",
    "DifferenceAdapter",
    "FitMap",
    "MultiParentTransfer",
    "StandardizedRidgeAdapter",
    "VocabBridge",
    "accessibility_profile",
    "accessible_band",
    "builtin_corpus",
    "concept_markers",
    "Continuations",
    "continue_texts",
    "openings",
    "embedding_rows",
    "group_contrasts",
    "hold_out",
    "shared_words",
    "DEFAULT_ALPHAS",
    "LAYER_MAPS",
    "MIN_ALIGNED",
    "AlignedBatch",
    "RidgeStats",
    "aligned_positions",
    "fit_aligned_ridge",
    "iter_aligned_batches",
    "CKAMap",
    "DimAdapter",
    "ExplicitMap",
    "GreedyMap",
    "IdentityAdapter",
    "LayerMap",
    "ModelInfo",
    "ProcrustesAdapter",
    "ProportionalMap",
    "RandomProjectionAdapter",
    "RidgeAdapter",
    "Transfer",
    "TransferDiagnostics",
    "TruncatePadAdapter",
    "anchor_groups",
    "anchor_hash",
    "anchor_texts",
    "cka_matrix",
    "collect_anchor_activations",
    "cosine_to_reference",
    "linear_cka",
    "make_adapter",
    "make_layer_map",
    "monotone_alignment",
]
