"""Steering vectors as lm-evaluation-harness's ``steered`` model file, and back.

lm-eval (>= 0.4.8, checked against 0.4.13's ``lm_eval/models/hf_steered.py``) loads a ``.pt`` file
(``torch.save``) of ::

    {hookpoint: {"steering_vector": Tensor(d,), "steering_coefficient": float,
                 "action": "add", "bias": None, "head_index": None}, ...}

It resolves each ``hookpoint`` among ``model.base_model.named_modules()``, registers a forward hook
on that module and, for ``action="add"``, adds ``steering_coefficient * steering_vector`` to the
module's output (the first element when the output is a tuple) at every position, prompt and
generated tokens alike. For the Hugging Face decoders xsteer loads (Llama, Qwen, Gemma, Phi-3,
Mistral) ``base_model`` is the decoder stack and ``layers.{l}`` its ``l``-th decoder layer, whose
output is xsteer's ``blocks.{l}.hook_resid_post``. So xsteer's layer ``l`` is hookpoint
``layers.{l}``, and λ with its scale folds into the coefficient:

- ``scale="absolute"``: coefficient λ on the unit vector (xsteer adds λ·v_l);
- ``scale="relative"``: coefficient λ·m_l, m_l the model's median residual norm at layer l
  (``xsteer.steer.residual_norms``), so the file needs the model (or its norms) to be written.

Run it with ``lm_eval --model steered --model_args pretrained=<folder>,steer_path=<file>.pt ...``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from xsteer.checks import as_real
from xsteer.interop._raw import check_scale, model_label, model_shape, relative_norms, scale_factors
from xsteer.models import Fingerprint, model_fingerprint
from xsteer.vectors import SteeringVectors

__all__ = ["HOOKPOINT", "from_lm_eval", "hookpoint", "lm_eval_config", "to_lm_eval"]

#: Hookpoint of xsteer's layer ``l`` under ``model.base_model`` (the decoder stack).
HOOKPOINT = "layers.{}"
_HOOKPOINT_RE = re.compile(r"layers\.(\d+)")
_META_KEY = "xsteer"  # extra per-hookpoint key: lm-eval reads only the keys it knows
_UNIT_TOL = 1e-4  # as SteeringVectors'


def hookpoint(layer: int) -> str:
    """lm-eval hookpoint of xsteer's layer ``layer`` (``blocks.{l}.hook_resid_post``)."""
    return HOOKPOINT.format(int(layer))


def lm_eval_config(
    vectors: SteeringVectors,
    lam: float,
    *,
    scale: str = "absolute",
    model: Any = None,
    norms: Mapping[int, float] | None = None,
    layers: Sequence[int] | None = None,
    check_model: bool = True,
) -> dict[str, dict[str, Any]]:
    """The ``steered``-model dictionary: hookpoint ``layers.{l}`` → unit vector with coefficient
    λ·g·c_l (g the vectors' gain; c_l = 1 for ``scale="absolute"``, the median residual norm m_l for
    ``"relative"``)."""
    lam, factors = scale_factors(vectors, lam, scale=scale, model=model, norms=norms, layers=layers,
                                 why="folds into each coefficient", check_model=check_model)
    layers = list(factors)
    about = {
        "model_name": vectors.model_name, "d_model": vectors.d_model, "n_layers": vectors.n_layers,
        "method": vectors.method, "seed": vectors.seed, "data_hash": vectors.data_hash,
        "provenance": vectors.provenance, "lam": lam, "gain": vectors.gain, "scale": scale,
        "fingerprint": None if vectors.fingerprint is None else vectors.fingerprint.to_dict(),
    }
    config = {}
    for l in layers:
        per_layer = {
            "layer": l, "scale_factor": factors[l],
            "explained_variance": vectors.explained_variance.get(l),
            "sign_agreement": vectors.sign_agreement.get(l),
        }
        config[hookpoint(l)] = {
            "steering_vector": vectors[l].clone(),
            "steering_coefficient": lam * vectors.gain * factors[l],
            "action": "add",
            "bias": None,
            "head_index": None,
            _META_KEY: json.dumps({**about, **per_layer}),
        }
    return config


def to_lm_eval(
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
    """Write ``vectors`` at strength ``lam`` as an lm-eval ``steered`` file (``.pt``); return its path.

    ``scale="relative"`` needs ``model`` (or its ``norms``) to fold m_l into each coefficient;
    ``layers`` restricts the export (default: every layer with a vector). Evaluate with
    ``lm_eval --model steered --model_args pretrained=<HF folder>,steer_path=<path>``.
    """
    config = lm_eval_config(vectors, lam, scale=scale, model=model, norms=norms, layers=layers, check_model=check_model)
    path = Path(path)
    if path.suffix not in (".pt", ".pth"):
        path = path.with_name(path.name + ".pt")  # lm-eval picks the loader by this suffix
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(config, path)
    return path


def _load(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"lm-eval steering file {path} does not exist; check the path.")
    try:
        config = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path} is not a readable lm-eval steering .pt ({type(err).__name__}: {err}); write it with "
            "torch.save({hookpoint: {'steering_vector': ..., 'steering_coefficient': ..., 'action': 'add'}})."
        ) from None
    if not isinstance(config, dict) or not config:
        raise ValueError(
            f"{path} holds {type(config).__name__}, not a non-empty dict hookpoint -> settings; it is not an "
            "lm-eval steering file."
        )
    return config


def from_lm_eval(
    path: str | Path,
    *,
    model_name: str | None = None,
    model: Any = None,
    d_model: int | None = None,
    n_layers: int | None = None,
    scale: str = "absolute",
    norms: Mapping[int, float] | None = None,
) -> tuple[SteeringVectors, dict[int, float]]:
    """Read an lm-eval ``steered`` file: (unit vectors per xsteer layer, per-layer coefficients).

    A coefficient is the strength on the unit vector: ``steering_coefficient × ‖steering_vector‖``
    for ``scale="absolute"``, divided by m_l for ``scale="relative"`` (needs ``model`` or ``norms``),
    so a file written by :func:`to_lm_eval` gives back its λ at every layer. Steer with the same
    per-layer strengths as lm-eval: ``steer(model, vectors, 1.0, schedule=PerLayer(coefficients))``
    (absolute scale). ``model`` (a bridge or HF model), else ``d_model`` / ``n_layers``, checks
    the vectors' width and layers; a file written by xsteer carries its own model name and depth.
    """
    check_scale(scale)
    path = Path(path)
    config = _load(path)
    entries: dict[int, tuple[torch.Tensor, float]] = {}
    metas: dict[int, dict] = {}
    for key, info in config.items():
        match = _HOOKPOINT_RE.fullmatch(str(key))
        if match is None:
            raise ValueError(
                f"{path}: hookpoint {key!r} is not a decoder layer xsteer can map; use 'layers.N' (block N "
                "under model.base_model, i.e. xsteer's blocks.N.hook_resid_post), without a 'model.' prefix."
            )
        layer = int(match.group(1))
        if not isinstance(info, dict) or "steering_vector" not in info:
            raise ValueError(f"{path}: {key!r} must map to a dict with 'steering_vector' and 'action'.")
        action = info.get("action", "add")
        if action != "add":
            raise ValueError(
                f"{path}: {key!r} has action {action!r}; xsteer imports only action 'add' (lm-eval's 'clamp' "
                "sets a projection, not a direction to add). Re-export with action='add'."
            )
        if info.get("bias") is not None or info.get("head_index") is not None:
            raise ValueError(
                f"{path}: {key!r} has a bias or head_index; xsteer imports whole-residual 'add' vectors only. "
                "Drop them (set both to None)."
            )
        vec = torch.as_tensor(info["steering_vector"]).detach().to("cpu", torch.float32)
        if vec.ndim == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if vec.ndim != 1:
            raise ValueError(
                f"{path}: the vector at {key!r} has shape {tuple(vec.shape)}; expected (d_model,) or (1, d_model)."
            )
        coef = info.get("steering_coefficient", 1.0)
        try:
            coef = as_real(f"{path}: the steering_coefficient of {key!r}", coef, "re-export the file with a finite coefficient.")
        except TypeError as err:
            raise ValueError(str(err)) from None
        entries[layer] = (vec, coef)
        if isinstance(info.get(_META_KEY), str):
            metas[layer] = json.loads(info[_META_KEY])
    meta = next(iter(metas.values()), {})
    widths = sorted({v.shape[0] for v, _ in entries.values()})
    if len(widths) > 1:
        raise ValueError(f"{path}: vectors of different widths {widths}; one file must steer one model.")
    width = widths[0]
    want_d, depth = model_shape(model, d_model, n_layers)
    depth = meta.get("n_layers") if depth is None else depth
    target = repr(model_label(model)) if model is not None else "the model"
    if want_d is not None and want_d != width:
        raise ValueError(
            f"Width mismatch: {path} holds {width}-wide vectors but {target} is {want_d}-wide. Fix: export the "
            "vectors of this model (transfer them first with xsteer.transfer.Transfer), or pass the right model."
        )
    if depth is None:
        raise ValueError(
            f"{path} does not say how deep its model is; pass model= (the steered model) or n_layers=."
        )
    outside = sorted(l for l in entries if l >= depth)
    if outside:
        raise ValueError(
            f"{path}: hookpoints {[hookpoint(l) for l in outside]} lie beyond {target}, which has {depth} "
            f"decoder layers (layers.0..layers.{depth - 1}); export for this model or drop those layers."
        )
    directions, strengths = {}, {}
    for layer, (vec, coef) in sorted(entries.items()):
        norm = float(vec.norm())
        if not math.isfinite(norm) or norm == 0.0:
            raise ValueError(f"{path}: the vector at {hookpoint(layer)} has norm {norm}; it has no direction.")
        if abs(norm - 1.0) <= _UNIT_TOL:  # already unit: kept bit for bit, lm-eval adds coef·v
            directions[layer], strengths[layer] = vec, coef
        else:
            directions[layer], strengths[layer] = vec / norm, coef * norm
    if scale == "relative":
        factors = relative_norms(list(strengths), model, norms, "divides each coefficient by")
        strengths = {l: s / factors[l] for l, s in strengths.items()}
    per_layer = lambda name: {l: m[name] for l, m in metas.items() if m.get(name) is not None}
    vectors = SteeringVectors(
        directions=directions,
        model_name=model_name or meta.get("model_name") or f"lm-eval:{path.stem}",
        d_model=width,
        n_layers=int(depth),
        method=meta.get("method", "lm-eval"),
        seed=meta.get("seed"),
        data_hash=meta.get("data_hash"),
        explained_variance=per_layer("explained_variance"),
        sign_agreement=per_layer("sign_agreement"),
        provenance=meta.get("provenance", {"source": f"lm-eval steered file {path.name}"}),
        fingerprint=_fingerprint(meta, model),
    )
    return vectors, strengths


def _fingerprint(meta: dict, model: Any) -> Fingerprint | None:
    """The identity of imported vectors: what an xsteer-written file recorded, else ``model``'s."""
    if "model_name" in meta:
        return None if meta.get("fingerprint") is None else Fingerprint.from_dict(meta["fingerprint"])
    return None if model is None else model_fingerprint(model)
