"""xsteer: concept steering vectors taken from a parent LLM and transferred into smaller child models
of other families, on TransformerLens bridges.

The researcher's story at the top level::

    import xsteer as xs

    parent, child = xs.load_model("gemma-3-270m"), xs.load_model("smollm2-135m")
    concept = xs.load_concept("sentiment")                     # pairs, split into train / test
    v_parent = xs.extract_vectors(parent, concept.train)       # one unit vector per parent layer
    v_child = xs.Transfer().fit(parent, child).apply(v_parent) # into the child's space and layers
    with v_child.apply(child, 0.1, scale="relative"):          # steer every forward pass inside
        ...

See README.md, docs/api.md and docs/glossary.md.
"""

from xsteer.activations import collect_activations
from xsteer.concepts import CONCEPTS, Concept, concept_from_pairs, load_concept
from xsteer.contrast import ContrastPair, arithmetic_pairs, from_task
from xsteer.extract import extract_vectors, random_vectors
from xsteer.fidelity import (
    dose_response,
    model_strength,
    readout_fidelity,
    steering_fidelity,
)
from xsteer.models import ModelCache, load_model, tiny_model
from xsteer.operators import Add, Clamp, NormPreservingAdd, Project
from xsteer.pipeline import TransferConfig, run_transfer
from xsteer.results import TransferResult
from xsteer.schedules import Band, Ramp
from xsteer.steer import relative_size, residual_norms, steer
from xsteer.tasks import load_task
from xsteer.transfer import Transfer
from xsteer.vectors import SteeringVectors

__version__ = "0.1.0"

__all__ = [
    "CONCEPTS",
    "Add",
    "Band",
    "Clamp",
    "Concept",
    "ContrastPair",
    "ModelCache",
    "NormPreservingAdd",
    "Project",
    "Ramp",
    "SteeringVectors",
    "Transfer",
    "TransferConfig",
    "TransferResult",
    "arithmetic_pairs",
    "collect_activations",
    "concept_from_pairs",
    "dose_response",
    "extract_vectors",
    "from_task",
    "load_concept",
    "load_model",
    "load_task",
    "model_strength",
    "random_vectors",
    "readout_fidelity",
    "relative_size",
    "residual_norms",
    "run_transfer",
    "steer",
    "steering_fidelity",
    "tiny_model",
]
