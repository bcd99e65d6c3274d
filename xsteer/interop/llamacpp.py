"""llama.cpp control vectors (GGUF, ``--control-vector`` / ``--control-vector-scaled``), to and from xsteer.

The file (also what repeng's ``ControlVector.export_gguf`` writes and ``llama-cvector-generator``
produces) is a GGUF with ``general.architecture = "controlvector"``, ``controlvector.model_hint``
(free text: repeng puts the HF ``model_type``, llama.cpp its architecture name, xsteer the model
name), ``controlvector.layer_count`` and one F32 1-D tensor ``direction.{k}`` per steered layer.

Layer convention (llama.cpp ``common_control_vector_load`` + ``llama_adapter_cvec``, and confirmed
by running llama.cpp, see docs/interop.md): ``direction.{k}`` is added, times the scale, to the
output of 0-based block ``k`` at every position, i.e. xsteer's ``blocks.{k}.hook_resid_post`` =
HF ``hidden_states[k + 1]``. So xsteer's layer ``l`` is ``direction.{l}``, unchanged. llama.cpp has
no slot for block 0 (a file with ``direction.0`` is refused whole) and silently ignores
``direction.{k}`` for ``k >= n_layer``; the vectors are not normalised, so λ folds into them.
Note that ``llama-cvector-generator`` reads its vectors from the output of block ``k - 1`` and writes
them as ``direction.{k}``: its files steer one block later than they were read; that is its choice,
the runtime convention above is what a file means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from xsteer.interop._raw import scaled, unscaled
from xsteer.vectors import (
    CONTROL_VECTOR_ARCH,
    SteeringVectors,
    control_vector_layers,
    write_control_vector,
)

__all__ = ["ARCH", "from_llamacpp", "read_control_vector", "to_llamacpp", "write_control_vector"]

#: ``general.architecture`` of a control-vector GGUF.
ARCH = CONTROL_VECTOR_ARCH


def _string_field(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None or not len(field.parts):
        return None
    return bytes(field.parts[-1]).decode("utf-8", errors="replace")


def read_control_vector(path: str | Path) -> tuple[str | None, dict[int, np.ndarray]]:
    """(model hint, raw vector per ``direction.{k}``) of a control-vector GGUF, checked as llama.cpp
    checks it (F32, 1-D, one width); a model GGUF or any other file is refused with a one-line error."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Control vector {path} does not exist; check the path.")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as err:  # bad magic, truncated file, ...
        raise ValueError(
            f"{path} is not a GGUF file ({type(err).__name__}: {err}); pass a llama.cpp control vector "
            "(written by xsteer.interop.to_llamacpp, repeng's export_gguf or llama-cvector-generator)."
        ) from None
    arch = _string_field(reader, "general.architecture")
    names = [t.name for t in reader.tensors]
    if arch != ARCH:
        raise ValueError(
            f"{path} is a GGUF of architecture {arch!r} with {len(names)} tensors (e.g. {names[:2]}), not a "
            f"control vector (architecture {ARCH!r}); pass the control-vector file, not the model."
        )
    directions: dict[int, np.ndarray] = {}
    for tensor in reader.tensors:
        prefix, _, index = tensor.name.partition(".")
        if prefix != "direction" or not index.lstrip("-").isdigit():
            raise ValueError(
                f"{path}: tensor {tensor.name!r} is not 'direction.<layer>'; llama.cpp would refuse this control vector."
            )
        if tensor.tensor_type != gguf.GGMLQuantizationType.F32 or len(tensor.shape) != 1:
            raise ValueError(
                f"{path}: {tensor.name} is {tensor.tensor_type.name} of shape {list(tensor.shape)}; llama.cpp "
                "needs F32 1-D direction tensors. Re-export the control vector."
            )
        layer = int(index)
        if layer in directions:
            directions[layer] = directions[layer] + np.array(tensor.data, dtype=np.float32)  # llama.cpp sums them
        else:
            directions[layer] = np.array(tensor.data, dtype=np.float32)
    if not directions:
        raise ValueError(f"{path} is a control vector without direction tensors; it steers nothing.")
    return _string_field(reader, f"{ARCH}.model_hint"), directions


def to_llamacpp(
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
    """Write ``vectors`` at strength ``lam`` as a llama.cpp control vector (λ folded in); return its path.

    ``llama-cli -m model.gguf --control-vector FILE`` then adds what ``steer(model, vectors, lam,
    scale=scale)`` adds (``--control-vector-scaled FILE:s`` multiplies it by s). ``scale="relative"``
    needs ``model`` (or its ``norms``). A layer-0 vector is left out with a warning: llama.cpp cannot
    steer block 0 and refuses a file that has one.
    """
    raw = scaled(vectors, lam, scale=scale, model=model, norms=norms, layers=layers, check_model=check_model)
    keep = control_vector_layers(raw, path)
    return write_control_vector(path, {l: raw[l] for l in keep}, vectors.model_name)


def from_llamacpp(
    path: str | Path,
    *,
    model: Any = None,
    model_name: str | None = None,
    d_model: int | None = None,
    n_layers: int | None = None,
    scale: str = "absolute",
    norms: Mapping[int, float] | None = None,
) -> tuple[SteeringVectors, dict[int, float]]:
    """Read a llama.cpp control vector: (unit vectors, per-layer strengths).

    ``direction.{k}`` becomes xsteer layer ``k``; ``steer(model, vectors, 1.0,
    schedule=PerLayer(strengths))`` then adds what ``--control-vector FILE`` adds in llama.cpp.
    ``model`` (a bridge or HF model), else ``d_model`` and ``n_layers``, is the model it is for: a
    control vector of another width or with layers beyond its depth is refused (llama.cpp would
    refuse the first and silently drop the second).
    """
    path = Path(path)
    hint, raw = read_control_vector(path)
    return unscaled(
        {l: torch.from_numpy(v) for l, v in raw.items()}, path, "control vector",
        model=model, model_name=model_name, d_model=d_model, n_layers=n_layers, scale=scale, norms=norms,
        method="llamacpp", provenance={"source": f"llama.cpp control vector {path.name}", "model_hint": hint},
    )
