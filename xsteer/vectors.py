"""Per-layer steering vectors of one model, with their provenance and the model's identity;
safetensors + JSON storage and llama.cpp control-vector export.

Layer ``l`` is the 0-based transformer block; its vector is added at ``blocks.{l}.hook_resid_post``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import torch

from xsteer.checks import as_count, as_int_list, as_real
from xsteer.figures import vector_profile
from xsteer.models import Fingerprint, model_fingerprint
from xsteer.steer import steer
from xsteer.storage import read_pair, write_pair

__all__ = ["SteeringVectors"]

_UNIT_TOL = 1e-4
_GAIN_FIX = "scale by a finite, non-zero number, e.g. -v, 2 * v or v * 0.5."


def _random_unit(d: int, seed: int, layer: int) -> np.ndarray:
    """The seeded random unit direction of width ``d`` at ``layer`` (depends on nothing else)."""
    v = np.random.default_rng([seed, layer]).standard_normal(d)
    return v / np.linalg.norm(v)


def _factor(value: Any, verb: str) -> float:
    """A number to scale vectors by (a 0-d tensor or array counts as one)."""
    if isinstance(value, bool) or not (isinstance(value, Real) or getattr(value, "ndim", None) == 0):
        raise TypeError(f"SteeringVectors {verb} by a number, not {type(value).__name__}. Fix: {_GAIN_FIX}")
    return as_real("the factor", value, _GAIN_FIX)


@dataclass
class SteeringVectors:
    """Unit steering directions per layer of one model, plus how they were made and whose they are.

    ``explained_variance`` (PC1 explained-variance ratio) and ``sign_agreement`` (share of held-out
    pairs whose positive side projects higher) are keyed by layer; ``provenance`` holds any other
    JSON-serialisable facts (transfer strategies, fit scores, ...).

    ``gain`` (g, default 1) is a signed factor the vectors carry: ``-v`` negates it, ``2 * v`` and
    ``v * 0.5`` scale it, and steering adds λ·g·v_l where it would add λ·v_l, so ``steer(model, -v,
    lam)`` steers toward the negative side at strength λ. The stored directions stay unit vectors
    signed toward the positive side (their sign agreement keeps its meaning); exports fold g in.

    ``fingerprint`` identifies the model the vectors belong to (``xsteer.models.model_fingerprint``;
    None for vectors saved before it was kept): steering, evaluating or exporting them with another
    model of the same width and depth is refused unless ``check_model=False`` says it is deliberate.
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
    gain: float = 1.0
    fingerprint: Fingerprint | None = None

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("model_name", "method"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string, got {value!r}.")
        if self.seed is not None:
            self.seed = as_count("seed", self.seed, 0)
        if self.data_hash is not None and not isinstance(self.data_hash, str):
            raise TypeError(f"data_hash must be a string or None, got {type(self.data_hash).__name__}.")
        self.gain = as_real("gain", self.gain, _GAIN_FIX)
        if self.gain == 0.0:
            raise ValueError(f"gain 0 would steer nothing. Fix: {_GAIN_FIX} (λ = 0 is the unsteered model).")
        if self.fingerprint is not None:
            self.fingerprint = Fingerprint.from_dict(self.fingerprint)
        if not isinstance(self.directions, Mapping):
            raise TypeError(
                f"directions must be a dict layer -> (d_model,) tensor, not {type(self.directions).__name__}. "
                "Fix: SteeringVectors.from_raw({layer: tensor, ...}, ...)."
            )
        if not self.directions:
            raise ValueError("SteeringVectors needs at least one layer; got an empty `directions`.")
        checked = {}
        for layer, vec in self.directions.items():
            layer = self._check_layer(layer)
            try:
                vec = torch.as_tensor(vec).detach().to("cpu", torch.float32).contiguous()
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(
                    f"The vector at layer {layer} is a {type(vec).__name__}, not a tensor or array of numbers."
                ) from None
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
        outside = {l: v for l, v in self.sign_agreement.items() if not 0.0 <= v <= 1.0}
        if outside:
            raise ValueError(f"sign_agreement is a share in [0, 1]; got {outside}.")
        try:  # stored as its JSON form, so a save/load round trip returns an equal object
            self.provenance = json.loads(json.dumps(self.provenance))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"provenance must be JSON-serialisable ({err}); convert tensors/arrays to lists "
                "and other objects to strings."
            ) from err
        if not isinstance(self.provenance, dict):
            raise TypeError(f"provenance must be a dict, not {type(self.provenance).__name__}.")

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
        raw = getattr(self, name)
        if not isinstance(raw, Mapping):
            raise TypeError(f"{name} must be a dict layer -> number, not {type(raw).__name__}.")
        try:
            values = {int(k): float(v) for k, v in raw.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{name} must map integer layers to numbers, got {raw!r}.") from None
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
        if not isinstance(directions, Mapping):
            raise TypeError(
                f"directions must be a dict layer -> vector, not {type(directions).__name__}. "
                "Fix: SteeringVectors.from_raw({layer: tensor, ...}, model_name=..., d_model=..., n_layers=..., method=...)."
            )
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

    @classmethod
    def random(cls, like: Any, seed: int, layers: Iterable[int] | None = None) -> SteeringVectors:
        """Seeded random unit directions, the random-direction control: at the layers of ``like``
        (``SteeringVectors``: the same model, identity and gain) or at every block of ``like`` as a
        model (a bridge); ``layers`` picks others. A layer's direction depends only on (seed,
        layer, width), so any two calls agree."""
        seed = as_count("seed", seed, 0)
        if isinstance(like, SteeringVectors):
            name, width, depth = like.model_name, like.d_model, like.n_layers
            gain, fingerprint, default = like.gain, like.fingerprint, like.layers
        elif hasattr(getattr(like, "cfg", None), "d_model"):
            name, width, depth = str(like.cfg.model_name), int(like.cfg.d_model), int(like.cfg.n_layers)
            gain, fingerprint, default = 1.0, model_fingerprint(like), list(range(depth))
        else:
            raise TypeError(
                f"SteeringVectors.random needs vectors to imitate or a loaded model, not {type(like).__name__}."
            )
        layers = default if layers is None else as_int_list("layers", layers)
        return cls(
            directions={l: torch.from_numpy(_random_unit(width, seed, l)).float() for l in layers},
            model_name=name, d_model=width, n_layers=depth, method="random", seed=seed,
            gain=gain, fingerprint=fingerprint,
        )

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
        gain = "" if self.gain == 1.0 else f", gain={self.gain:g}"
        return (
            f"SteeringVectors(model_name={self.model_name!r}, method={self.method!r}, "
            f"d_model={self.d_model}, n_layers={self.n_layers}, layers={self.layers}{gain})"
        )

    def select(self, layers: Iterable[int]) -> SteeringVectors:
        """The same vectors restricted to ``layers`` (each must carry a vector)."""
        wanted = sorted(set(as_int_list("layers", layers, distinct=False)))
        if not wanted:
            raise ValueError("select([]) keeps no layer. Fix: name at least one layer with a vector.")
        missing = [l for l in wanted if l not in self.directions]
        if missing:
            raise ValueError(
                f"No vectors at layers {missing}; these vectors have layers {self.layers}. Fix: select layers "
                "they have (a transfer's proportional map reaches every child layer)."
            )

        def keep(per_layer: dict) -> dict:
            return {l: per_layer[l] for l in wanted if l in per_layer}

        return dataclasses.replace(
            self, directions=keep(self.directions), explained_variance=keep(self.explained_variance),
            sign_agreement=keep(self.sign_agreement),
        )

    # ------------------------------------------------------------------ sign and scale

    def __neg__(self) -> SteeringVectors:
        """The same directions steering the other way (gain negated)."""
        return dataclasses.replace(self, gain=-self.gain)

    def __mul__(self, factor: float) -> SteeringVectors:
        """The same directions with the gain multiplied by ``factor``."""
        return dataclasses.replace(self, gain=self.gain * _factor(factor, "multiply"))

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> SteeringVectors:
        """The same directions with the gain divided by ``divisor``."""
        divisor = _factor(divisor, "divide")
        if divisor == 0.0:
            raise ValueError(f"Cannot divide steering vectors by 0. Fix: {_GAIN_FIX}")
        return dataclasses.replace(self, gain=self.gain / divisor)

    # ------------------------------------------------------------------ use

    def apply(self, model: Any, lam: float, **options: Any):
        """Context manager that steers every forward pass of ``model`` inside it with these vectors:
        ``with vectors.apply(model, 0.5): model.generate(...)`` is ``steer(model, vectors, 0.5)``, and
        takes its options (``layers``, ``scale``, ``operator``, ``positions``, ``schedule``,
        ``check_model``)."""
        return steer(model, self, lam, **options)

    # ------------------------------------------------------------------ display

    def plot(self):
        """PC1 explained variance and held-out sign agreement per layer (plotly)."""
        return vector_profile(self)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{l}</td><td>{self.explained_variance.get(l, float('nan')):.3f}</td>"
            f"<td>{self.sign_agreement.get(l, float('nan')):.2f}</td></tr>"
            for l in self.layers
        )
        gain = "" if self.gain == 1.0 else f", gain {self.gain:g}"
        return (f"<b>{self.method} vectors of {self.model_name}</b> (width {self.d_model}, {len(self)} of "
                f"{self.n_layers} layers{gain})<table><tr><th>layer</th><th>PC1 explained variance</th>"
                f"<th>held-out sign agreement</th></tr>{rows}</table>")

    # ------------------------------------------------------------------ compatibility

    def _check_width(self, width: int, target: str) -> None:
        if int(width) != self.d_model:
            raise ValueError(
                f"Width mismatch: these vectors of {self.model_name!r} are {self.d_model}-wide, but "
                f"{target} is {int(width)}-wide. Fix: transfer the vectors with "
                "xsteer.transfer.Transfer (fitted on paired activations), or load the model they came from."
            )

    def check_compatible(self, model: Any, *, check_model: bool = True) -> None:
        """Raise ValueError unless ``model`` has this width and every layer of these vectors, and
        (with ``check_model``) is the model they belong to: another model of the same shape whose
        fingerprint differs is refused."""
        cfg = getattr(model, "cfg", None)
        if not hasattr(cfg, "d_model") or not hasattr(cfg, "n_layers"):
            raise TypeError(
                f"Expected a loaded model (xsteer.models.load_model), not {type(model).__name__}."
            )
        name = getattr(model.cfg, "model_name", None) or "the model"
        self._check_width(model.cfg.d_model, repr(name))
        depth = int(model.cfg.n_layers)
        outside = [l for l in self.layers if l >= depth]
        if outside:
            raise ValueError(
                f"Layers {outside} do not exist in {name!r}, which has {depth} blocks (0..{depth - 1}). "
                "Fix: pick layers inside it with .select(...), or map layers with xsteer.transfer."
            )
        if check_model and self.fingerprint is not None:
            theirs = model_fingerprint(model)
            if theirs is not None and not self.fingerprint.matches(theirs):
                raise ValueError(
                    f"These vectors belong to {self.model_name!r} (fingerprint {self.fingerprint}), but the "
                    f"model is {name!r} (fingerprint {theirs}): another model of the same width and depth. "
                    "Fix: carry them into this model with xsteer.transfer.Transfer, or pass check_model=False "
                    "to use them on it deliberately."
                )

    # ------------------------------------------------------------------ storage

    def save(self, path: str | Path) -> Path:
        """Write ``path.safetensors`` (tensors ``layer.{l}``) and ``path.json`` (everything else);
        return the ``.safetensors`` path."""
        tensors = {f"layer.{l}": v for l, v in self.directions.items()}
        meta = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "directions"}
        meta["fingerprint"] = None if self.fingerprint is None else self.fingerprint.to_dict()
        meta["layers"] = self.layers
        return write_pair(path, tensors, meta)

    @classmethod
    def load(
        cls, path: str | Path, *, model: Any = None, d_model: int | None = None, check_model: bool = True
    ) -> SteeringVectors:
        """Read vectors written by :meth:`save` (files from before ``gain`` and ``fingerprint`` were
        kept load with gain 1 and no fingerprint); with ``model`` / ``d_model`` check they fit it
        (see :meth:`check_compatible` for ``check_model``)."""
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
        if not isinstance(layers, list) or not all(isinstance(l, int) for l in layers):
            raise ValueError(f"The sidecar JSON of {path} lists layers {layers!r}, not integers. Re-save the vectors.")
        if sorted(tensors) != sorted(f"layer.{l}" for l in layers):
            raise ValueError(
                f"The tensors of {path} are {sorted(tensors)} but its JSON lists layers {layers}; "
                "the pair is inconsistent. Re-save the vectors."
            )
        try:
            for key in ("explained_variance", "sign_agreement"):
                meta[key] = {int(k): v for k, v in (meta.get(key) or {}).items()}
            vectors = cls(directions={l: tensors[f"layer.{l}"] for l in layers}, **meta)
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{path} does not hold valid SteeringVectors ({err}). Re-save the vectors.") from None
        if d_model is not None:
            vectors._check_width(d_model, f"the requested width (d_model={d_model})")
        if model is not None:
            vectors.check_compatible(model, check_model=check_model)
        return vectors

    def to_gguf(self, path: str | Path) -> Path:
        """Write a llama.cpp control vector (``--control-vector``); return its path.

        Tensor ``direction.{l}`` (F32, 1-D) is the vector added to the output of block ``l`` (the
        unit direction times the gain).
        llama.cpp has no slot for block 0, so a vector at layer 0 is skipped with a warning.
        """
        keep = control_vector_layers(self.layers, path)
        return write_control_vector(path, {l: self.directions[l] * self.gain for l in keep}, self.model_name)


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
