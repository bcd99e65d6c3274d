"""Per-layer steering vectors of one model, with their provenance; safetensors + JSON storage and
llama.cpp control-vector export.

Layer ``l`` is the 0-based transformer block; its vector is added at ``blocks.{l}.hook_resid_post``.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, fields
from numbers import Integral
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from xsteer.storage import read_pair, write_pair

__all__ = ["SteeringVectors"]

_UNIT_TOL = 1e-4


@dataclass
class SteeringVectors:
    """Unit steering directions per layer of one model, plus how they were made.

    ``explained_variance`` (PC1 explained-variance ratio) and ``sign_agreement`` (share of held-out
    pairs whose positive side projects higher) are keyed by layer; ``provenance`` holds any other
    JSON-serialisable facts (transfer strategies, fit scores, ...).
    """

    directions: dict[int, torch.Tensor]
    model_name: str
    d_model: int
    n_layers: int
    method: str
    seed: int | None = None
    data_hash: str | None = None
    explained_variance: dict[int, float] = field(default_factory=dict)
    sign_agreement: dict[int, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not self.directions:
            raise ValueError("SteeringVectors needs at least one layer; got an empty `directions`.")
        checked = {}
        for layer, vec in self.directions.items():
            layer = self._check_layer(layer)
            vec = torch.as_tensor(vec).detach().to("cpu", torch.float32).contiguous()
            where = f"Vector at layer {layer} of {self.model_name!r}"
            if vec.shape != (self.d_model,):
                raise ValueError(
                    f"{where} has shape {tuple(vec.shape)}; expected ({self.d_model},), i.e. (d_model,)."
                )
            if not torch.isfinite(vec).all():
                raise ValueError(
                    f"{where} has NaN or infinite entries; check the activations it came from."
                )
            norm = float(vec.norm())
            if abs(norm - 1.0) > _UNIT_TOL:
                raise ValueError(
                    f"{where} has norm {norm:.6g}, not 1 (tolerance {_UNIT_TOL}). Normalise it first "
                    "(v / v.norm()), or build with SteeringVectors.from_raw(...), which does that."
                )
            checked[layer] = vec
        self.directions = dict(sorted(checked.items()))
        self.explained_variance = self._per_layer("explained_variance")
        self.sign_agreement = self._per_layer("sign_agreement")
        try:  # stored as its JSON form, so a save/load round trip returns an equal object
            self.provenance = json.loads(json.dumps(self.provenance))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"provenance must be JSON-serialisable ({err}); convert tensors/arrays to lists "
                "and other objects to strings."
            ) from err

    def _check_layer(self, layer: Any) -> int:
        if not isinstance(layer, Integral) or isinstance(layer, bool):
            raise ValueError(f"Layer keys must be integers, got {layer!r}.")
        if not 0 <= layer < self.n_layers:
            raise ValueError(
                f"Layer {layer} is outside [0, {self.n_layers}) of {self.model_name!r} "
                f"({self.n_layers} blocks); use 0-based block indices."
            )
        return int(layer)

    def _per_layer(self, name: str) -> dict[int, float]:
        values = {int(k): float(v) for k, v in getattr(self, name).items()}
        extra = sorted(set(values) - set(self.directions))
        if extra:
            raise ValueError(
                f"{name} has layers {extra} without a direction; drop them or add their vectors."
            )
        return dict(sorted(values.items()))

    @classmethod
    def from_raw(
        cls, directions: Mapping[int, torch.Tensor | np.ndarray], **kwargs: Any
    ) -> SteeringVectors:
        """Build from directions of any norm, scaling each to unit length (sign kept)."""
        unit = {}
        for layer, vec in directions.items():
            vec = torch.as_tensor(vec).detach().to("cpu", torch.float32)
            norm = float(vec.norm())
            if not math.isfinite(norm) or norm == 0.0:
                raise ValueError(
                    f"Vector at layer {layer} has norm {norm}; a zero or non-finite vector has no "
                    "direction. Check the activations it came from."
                )
            unit[layer] = vec / norm
        return cls(directions=unit, **kwargs)

    # ------------------------------------------------------------------ container protocol

    @property
    def layers(self) -> list[int]:
        """Layers that carry a vector, ascending."""
        return list(self.directions)

    def __getitem__(self, layer: int) -> torch.Tensor:
        if layer not in self.directions:
            raise KeyError(f"No vector at layer {layer}; available layers: {self.layers}.")
        return self.directions[layer]

    def __len__(self) -> int:
        return len(self.directions)

    def __iter__(self) -> Iterator[int]:
        return iter(self.layers)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SteeringVectors):
            return NotImplemented
        same_vectors = self.layers == other.layers and all(
            torch.equal(self.directions[l], other.directions[l]) for l in self.layers
        )
        rest = [f.name for f in fields(self) if f.name != "directions"]
        return same_vectors and all(getattr(self, n) == getattr(other, n) for n in rest)

    def __repr__(self) -> str:
        return (
            f"SteeringVectors(model_name={self.model_name!r}, method={self.method!r}, "
            f"d_model={self.d_model}, n_layers={self.n_layers}, layers={self.layers})"
        )

    def select(self, layers: Iterable[int]) -> SteeringVectors:
        """The same vectors restricted to ``layers`` (each must carry a vector)."""
        wanted = sorted(set(layers))
        missing = [l for l in wanted if l not in self.directions]
        if missing:
            raise KeyError(f"No vectors at layers {missing}; available layers: {self.layers}.")

        def keep(per_layer: dict) -> dict:
            return {l: per_layer[l] for l in wanted if l in per_layer}

        return SteeringVectors(
            directions=keep(self.directions), model_name=self.model_name, d_model=self.d_model,
            n_layers=self.n_layers, method=self.method, seed=self.seed, data_hash=self.data_hash,
            explained_variance=keep(self.explained_variance), sign_agreement=keep(self.sign_agreement),
            provenance=self.provenance,
        )

    # ------------------------------------------------------------------ compatibility

    def _check_width(self, width: int, target: str) -> None:
        if int(width) != self.d_model:
            raise ValueError(
                f"Width mismatch: these vectors of {self.model_name!r} are {self.d_model}-wide, but "
                f"{target} is {int(width)}-wide. Fix: transfer the vectors with "
                "xsteer.transfer.Transfer (fitted on paired activations), or load the model they came from."
            )

    def check_compatible(self, model: Any) -> None:
        """Raise ValueError unless ``model`` has this width and every layer of these vectors."""
        name = getattr(model.cfg, "model_name", None) or "the model"
        self._check_width(model.cfg.d_model, repr(name))
        depth = int(model.cfg.n_layers)
        outside = [l for l in self.layers if l >= depth]
        if outside:
            raise ValueError(
                f"Layers {outside} do not exist in {name!r}, which has {depth} blocks (0..{depth - 1}). "
                "Fix: pick layers inside it with .select(...), or map layers with xsteer.transfer."
            )

    # ------------------------------------------------------------------ storage

    def save(self, path: str | Path) -> Path:
        """Write ``path.safetensors`` (tensors ``layer.{l}``) and ``path.json`` (everything else);
        return the ``.safetensors`` path."""
        tensors = {f"layer.{l}": v for l, v in self.directions.items()}
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "directions"}
        meta["layers"] = self.layers
        return write_pair(path, tensors, meta)

    @classmethod
    def load(
        cls, path: str | Path, *, model: Any = None, d_model: int | None = None
    ) -> SteeringVectors:
        """Read vectors written by :meth:`save`; with ``model`` / ``d_model`` check they fit it."""
        what = "a SteeringVectors (written by SteeringVectors.save)"
        tensors, meta = read_pair(path, what)
        allowed = {f.name for f in fields(cls) if f.name != "directions"}
        unknown = sorted(set(meta) - allowed - {"layers"})
        missing = sorted({"layers", "model_name", "d_model", "n_layers", "method"} - set(meta))
        if unknown or missing:
            problem = f"unknown keys {unknown}" if unknown else f"missing keys {missing}"
            raise ValueError(
                f"The sidecar JSON of {path} has {problem}; it is not {what}. Re-save the vectors."
            )
        layers = meta.pop("layers")
        if sorted(tensors) != sorted(f"layer.{l}" for l in layers):
            raise ValueError(
                f"The tensors of {path} are {sorted(tensors)} but its JSON lists layers {layers}; "
                "the pair is inconsistent. Re-save the vectors."
            )
        for key in ("explained_variance", "sign_agreement"):
            meta[key] = {int(k): v for k, v in meta.get(key, {}).items()}
        vectors = cls(directions={l: tensors[f"layer.{l}"] for l in layers}, **meta)
        if d_model is not None:
            vectors._check_width(d_model, f"the requested width (d_model={d_model})")
        if model is not None:
            vectors.check_compatible(model)
        return vectors

    def to_gguf(self, path: str | Path) -> Path:
        """Write a llama.cpp control vector (``--control-vector``); return its path.

        Tensor ``direction.{l}`` (F32, 1-D) is the vector added to the output of block ``l``.
        llama.cpp has no slot for block 0, so a vector at layer 0 is skipped with a warning.
        """
        keep = control_vector_layers(self.layers, path)
        return write_control_vector(path, {l: self.directions[l] for l in keep}, self.model_name)


#: ``general.architecture`` of a llama.cpp control-vector GGUF.
CONTROL_VECTOR_ARCH = "controlvector"


def gguf_path(path: str | Path) -> Path:
    """``path`` with a ``.gguf`` suffix."""
    path = Path(path)
    return path if path.suffix == ".gguf" else path.with_name(path.name + ".gguf")


def control_vector_layers(layers: Iterable[int], path: str | Path) -> list[int]:
    """The layers a llama.cpp control vector at ``path`` can hold: block 0 has no slot there (and a
    file with one is refused whole), so it is left out with a warning; nothing left is an error."""
    layers = list(layers)
    if 0 in layers:
        warnings.warn(
            "llama.cpp control vectors cannot steer block 0; the layer-0 vector is left out of "
            f"{gguf_path(path).name}. Extract at layers >= 1 if you need every vector in llama.cpp.",
            UserWarning,
            stacklevel=3,
        )
    keep = [l for l in layers if l > 0]
    if not keep:
        raise ValueError(
            "Only a layer-0 vector is present, which llama.cpp cannot use; export vectors at layers >= 1."
        )
    return keep


def write_control_vector(path: str | Path, directions: Mapping[int, Any], model_hint: str) -> Path:
    """Write raw per-layer vectors (added as they are) as a control-vector GGUF; return its path."""
    import gguf

    path = gguf_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = CONTROL_VECTOR_ARCH
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_string(f"{arch}.model_hint", str(model_hint))
    writer.add_uint32(f"{arch}.layer_count", len(directions))
    for layer in sorted(directions):
        vec = torch.as_tensor(directions[layer]).detach().to("cpu", torch.float32).numpy()
        writer.add_tensor(f"direction.{int(layer)}", np.ascontiguousarray(vec))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
