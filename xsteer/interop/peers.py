"""Steering vectors to and from the peer libraries ``repeng`` and ``steering-vectors``, through files
(xsteer needs transformers >= 5.9 while the peers pin older releases, so they live in their own venvs).

All three add a vector to the output of a decoder layer at every position, so the layer numbers map
one to one; only the storage differs. λ (and a relative scale) folds into the exported vectors, so
the peer applies them at its own strength 1.

**repeng** (checked against repeng 0.4.0, ``repeng/extract.py`` and ``repeng/control.py``):
``ControlVector(model_type, directions: dict[int, np.ndarray])``. ``directions[l]`` is added by
``ControlModel`` to the output of ``model.model.layers[l]`` (``set_control(vector, coeff)`` adds
``coeff·directions[l]``; ``normalize=False`` and operator ``+`` by default). ``read_representations``
reads layer ``l`` from ``hidden_states[l + 1]`` (negative layer ids are made non-negative first), so
repeng's ``l`` is the 0-based block, xsteer's ``blocks.{l}.hook_resid_post``. ``export_gguf`` /
``import_gguf`` store it as a llama.cpp control vector (``direction.{l}``, model_type as
``controlvector.model_hint``), the same numbering llama.cpp uses at run time (``direction.{l}`` is
added to the output of block ``l``; see ``xsteer.interop.llamacpp``). So the exchange file is that
GGUF: ``ControlVector.import_gguf(path)`` then ``set_control(vector, coeff=1.0)``. repeng can steer
block 0, llama.cpp cannot (it refuses a file with ``direction.0``); ``to_repeng`` keeps layer 0 and
warns.

**steering-vectors** (checked against steering-vectors 0.12.2, ``steering_vector.py``):
``SteeringVector(layer_activations: dict[int, Tensor], layer_type="decoder_block")``;
``apply(model, multiplier=m)`` adds ``m·layer_activations[l]`` to the output (first element of the
tuple) of the ``l``-th matched ``decoder_block`` (``model.layers.{l}`` for Llama-like models), at
every position by default (``min_token_index=0``); negative ``l`` index from the end. Other
``layer_type`` values ("mlp", "self_attn", "input_layernorm", "post_attention_layernorm") hook other
modules and have no xsteer equivalent. The exchange file is a ``torch.save`` of the dataclass fields:
``SteeringVector(**torch.load(path))``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from xsteer.interop._raw import scaled, unscaled
from xsteer.interop.llamacpp import read_control_vector, write_control_vector
from xsteer.vectors import SteeringVectors

__all__ = ["from_repeng", "from_steering_vectors", "to_repeng", "to_steering_vectors"]

#: steering-vectors' layer type whose output is xsteer's ``blocks.{l}.hook_resid_post``.
DECODER_BLOCK = "decoder_block"


def _model_type(model: Any, vectors: SteeringVectors) -> str:
    """HF ``config.model_type`` of a bridge or HF model (repeng's ``ControlVector.model_type``)."""
    hf = getattr(model, "original_model", model)
    kind = getattr(getattr(hf, "config", None), "model_type", None)
    return str(kind) if kind else vectors.model_name


# --------------------------------------------------------------------------- repeng


def to_repeng(
    vectors: SteeringVectors,
    path: str | Path,
    lam: float,
    *,
    model_type: str | None = None,
    scale: str = "absolute",
    model: Any = None,
    norms: Mapping[int, float] | None = None,
    layers: Sequence[int] | None = None,
    check_model: bool = True,
) -> Path:
    """Write ``vectors`` at strength ``lam`` as the GGUF ``repeng.ControlVector.import_gguf`` reads;
    return its path. ``model_type`` (repeng's ``ControlVector.model_type``, the HF ``config.model_type``)
    defaults to ``model``'s, else the vectors' model name. In repeng:
    ``ControlModel(hf_model, layers).set_control(ControlVector.import_gguf(path), coeff=1.0)`` adds what
    ``steer(model, vectors, lam, scale=scale)`` adds."""
    raw = scaled(vectors, lam, scale=scale, model=model, norms=norms, layers=layers, check_model=check_model)
    if 0 in raw:
        warnings.warn(
            "The repeng file has a layer-0 vector (direction.0): repeng steers it, but llama.cpp refuses the "
            "whole file. Drop layer 0 (layers=...) to use the file in llama.cpp too.",
            UserWarning,
            stacklevel=2,
        )
    return write_control_vector(path, raw, model_type or _model_type(model, vectors))


def from_repeng(
    path: str | Path,
    *,
    model: Any = None,
    model_name: str | None = None,
    d_model: int | None = None,
    n_layers: int | None = None,
    scale: str = "absolute",
    norms: Mapping[int, float] | None = None,
) -> tuple[SteeringVectors, dict[int, float]]:
    """Read a repeng ``ControlVector.export_gguf`` file: (unit vectors, per-layer strengths), so that
    ``steer(model, vectors, c, schedule=PerLayer(strengths))`` adds what repeng's
    ``set_control(vector, coeff=c)`` adds. ``model`` (or ``d_model`` and ``n_layers``) is the model it
    is for; another width or layers beyond its depth are refused."""
    path = Path(path)
    hint, raw = read_control_vector(path)
    return unscaled(
        {l: torch.from_numpy(v) for l, v in raw.items()}, path, "repeng control vector",
        model=model, model_name=model_name, d_model=d_model, n_layers=n_layers, scale=scale, norms=norms,
        method="repeng", provenance={"source": f"repeng ControlVector {path.name}", "model_type": hint},
    )


# --------------------------------------------------------------------------- steering-vectors


def to_steering_vectors(
    vectors: SteeringVectors,
    path: str | Path,
    lam: float,
    *,
    scale: str = "absolute",
    model: Any = None,
    norms: Mapping[int, float] | None = None,
    layers: Sequence[int] | None = None,
    check_model: bool = True,
) -> Path:
    """Write ``vectors`` at strength ``lam`` as ``steering_vectors.SteeringVector`` fields (``.pt``);
    return its path. In steering-vectors: ``with SteeringVector(**torch.load(path)).apply(hf_model):``
    (multiplier 1) adds what ``steer(model, vectors, lam, scale=scale)`` adds."""
    raw = scaled(vectors, lam, scale=scale, model=model, norms=norms, layers=layers, check_model=check_model)
    path = Path(path)
    if path.suffix not in (".pt", ".pth"):
        path = path.with_name(path.name + ".pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"layer_activations": {int(l): v.clone() for l, v in raw.items()}, "layer_type": DECODER_BLOCK}, path)
    return path


def from_steering_vectors(
    path: str | Path,
    *,
    model: Any = None,
    model_name: str | None = None,
    d_model: int | None = None,
    n_layers: int | None = None,
    scale: str = "absolute",
    norms: Mapping[int, float] | None = None,
) -> tuple[SteeringVectors, dict[int, float]]:
    """Read a ``.pt`` of ``SteeringVector`` fields (``torch.save(dataclasses.asdict(sv))`` or
    :func:`to_steering_vectors`): (unit vectors, per-layer strengths), so that ``steer(model, vectors,
    m, schedule=PerLayer(strengths))`` adds what ``sv.apply(model, multiplier=m)`` adds. Only
    ``layer_type="decoder_block"`` maps onto xsteer; negative layers count from the last block."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"steering-vectors file {path} does not exist; check the path.")
    try:
        fields = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable torch file ({type(err).__name__}); write it with "
            "torch.save({'layer_activations': sv.layer_activations, 'layer_type': sv.layer_type}, path)."
        ) from None
    if not isinstance(fields, dict) or not isinstance(fields.get("layer_activations"), dict):
        raise ValueError(
            f"{path} is not a steering-vectors SteeringVector file: it needs a dict with 'layer_activations' "
            "(layer -> tensor) and 'layer_type'; save dataclasses.asdict(sv)."
        )
    layer_type = fields.get("layer_type", DECODER_BLOCK)
    if layer_type != DECODER_BLOCK:
        raise ValueError(
            f"{path} steers layer_type {layer_type!r}; xsteer steers decoder-block outputs only. Re-train the "
            "steering-vectors vector with layer_type='decoder_block'."
        )
    raw = fields["layer_activations"]
    bad = [l for l in raw if not isinstance(l, int) or isinstance(l, bool)]
    if bad:
        raise ValueError(f"{path}: layer keys {bad!r} are not integers; SteeringVector layers are ints.")
    return unscaled(
        raw, path, "steering-vectors SteeringVector",
        model=model, model_name=model_name, d_model=d_model, n_layers=n_layers, scale=scale, norms=norms,
        method="steering-vectors", provenance={"source": f"steering-vectors SteeringVector {path.name}"},
        negative_layers=True,
    )
