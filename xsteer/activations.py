"""The one activation collector: every room that needs ``resid_post`` activations calls this one.

``collect_activations`` pools each text at its last real token or over its real tokens
(``collect_pooled``: both from one pass, optionally kept on disk);
``resid_states`` hands back whole (batch, seq, d) states of an encoded batch (token-aligned anchors,
residual norms). Both run the transformer blocks only (no unembedding) and stop after the last layer
they need.

Reading and steering never combine silently: inside :func:`unsteered` every xsteer steering hook
stands aside (a measurement of the model itself, such as the residual norms behind
``scale="relative"``, is never taken under steering), and ``collect_activations`` warns when
steering hooks acted on the activations it read.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from xsteer.checks import as_count, as_int_list, as_texts
from xsteer.models import cache_dir, check_bridge, d_model, model_fingerprint, n_layers, resid_post_hook

__all__ = [
    "POOLINGS", "check_layers", "collect_activations", "collect_pooled", "encode", "resid_states", "run_trunk",
    "steering_allowed", "unsteered",
]

#: How a text's activations are pooled: at its last real token, or averaged over its real tokens.
POOLINGS = ("last", "mean")


@dataclass
class _Reading:
    """A read in progress: ``inert`` steering hooks pass through; ``steered``: one acted anyway."""

    inert: bool
    steered: bool = False


_READING: contextvars.ContextVar[_Reading | None] = contextvars.ContextVar("xsteer_reading", default=None)


@contextlib.contextmanager
def unsteered() -> Iterator[None]:
    """Forward passes inside run as if no xsteer steering were active: every steering hook passes
    its input through unchanged (for measurements of the model itself)."""
    token = _READING.set(_Reading(inert=True))
    try:
        yield
    finally:
        _READING.reset(token)


@contextlib.contextmanager
def _watched() -> Iterator[_Reading]:
    """Notes whether a steering hook acts on the passes inside (inert stays inert)."""
    outer = _READING.get()
    reading = _Reading(inert=outer is not None and outer.inert)
    token = _READING.set(reading)
    try:
        yield reading
    finally:
        _READING.reset(token)


def _warn_if_steered(reading: _Reading, who: str) -> None:
    if reading.steered:
        warnings.warn(
            f"{who} read the model under active steering hooks (inside `with steer(...)`): these are the "
            "steered model's activations. Fix: call it outside the steer block to read the model itself.",
            UserWarning,
            stacklevel=4,
        )


def steering_allowed() -> bool:
    """Asked by every steering hook before it acts: False inside :func:`unsteered` (the hook must
    return its input unchanged); inside a read it also notes that steering acted."""
    reading = _READING.get()
    if reading is None:
        return True
    reading.steered = reading.steered or not reading.inert
    return not reading.inert


def check_layers(model, layers: Sequence[int] | None) -> list[int]:
    """``layers`` sorted and de-duplicated (None: every block), each checked to be a block of ``model``."""
    total = n_layers(model)
    if layers is None:
        return list(range(total))
    layers = sorted(set(as_int_list("layers", layers, distinct=False)))
    if not layers:
        raise ValueError("layers=[] selects no layer. Fix: pass the layers to read, or None for every block.")
    bad = [l for l in layers if not 0 <= l < total]
    if bad:
        raise ValueError(
            f"Layers {bad} are outside {model.cfg.model_name} (blocks 0..{total - 1}); "
            "pick layers in that range."
        )
    return layers


def encode(model, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tokenize a batch with padding and return ids, mask and mask-consistent position ids."""
    texts = as_texts("texts", texts)
    if not texts:
        raise ValueError("encode got no texts; pass at least one.")
    enc = model.tokenizer(texts, return_tensors="pt", padding=True)
    mask = enc["attention_mask"]
    device = model.cfg.device
    return {
        "input_ids": enc["input_ids"].to(device),
        "attention_mask": mask.to(device),
        "position_ids": (mask.cumsum(-1) - 1).clamp(min=0).to(device),
    }


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the last needed layer has run."""


def run_trunk(model, enc: dict[str, torch.Tensor], hooks: list, stop_after: int) -> None:
    """Run the transformer blocks (no unembedding) with ``hooks``, stopping after block ``stop_after``.

    Activation reads need no logits, and for large vocabularies the unembedding is a big share of
    the cost (Gemma-3: 262k x 640).
    """
    if not 0 <= int(stop_after) < n_layers(model):
        raise ValueError(f"stop_after={stop_after} is not a block of {model.cfg.model_name} (0..{n_layers(model) - 1}).")

    def stop(x, hook):
        raise _Stop

    trunk = model.original_model.base_model
    with model.hooks(fwd_hooks=hooks + [(resid_post_hook(stop_after), stop)]):
        try:
            trunk(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], position_ids=enc["position_ids"])
        except _Stop:
            pass


@torch.inference_mode()
def collect_activations(
    model,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    pooling: Literal["last", "mean"] = "last",
    batch_size: int = 16,
    progress: bool = False,
) -> dict[int, Float[torch.Tensor, "n d"]]:
    """``resid_post`` of each text at its last real token (or averaged over real tokens), per layer.

    Padding side does not matter: batched results equal one-text-at-a-time results. Run inside
    ``with steer(...)`` it reads the steered model and warns.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'last' or 'mean', not {pooling!r}.")
    return collect_pooled(model, texts, layers, poolings=(pooling,), batch_size=batch_size, progress=progress)[pooling]


@torch.inference_mode()
def collect_pooled(
    model,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    poolings: Sequence[str] = POOLINGS,
    batch_size: int = 16,
    progress: bool = False,
    cache: bool = False,
) -> dict[str, dict[int, torch.Tensor]]:
    """:func:`collect_activations` for several poolings from one forward pass per batch: pooling ->
    layer -> (n, d). With ``cache=True`` the result is kept on disk under ``cache_dir()/activations``,
    keyed by the model's exact weights sample, dtype and BOS setting and by the texts, layers and
    poolings, and read back from there next time (a fixed corpus is read once per machine)."""
    check_bridge(model, "collect_activations")
    poolings = tuple(dict.fromkeys(poolings))
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ValueError(f"poolings must name some of {POOLINGS}, not {poolings!r}.")
    texts = as_texts("texts", texts)
    if not texts:
        raise ValueError("collect_activations got no texts; pass at least one.")
    batch_size = as_count("batch_size", batch_size)
    layers = check_layers(model, layers)
    # Sort by length so batches pad little; results are put back in input order.
    lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    empty = [i for i, n in enumerate(lengths) if n == 0]
    if empty:
        raise ValueError(
            f"texts {empty[:5]} are empty: they have no token to read (this tokenizer adds no BOS). "
            "Fix: drop empty texts."
        )
    path = _cache_path(model, texts, layers, poolings) if cache else None
    if path is not None and path.exists():
        saved = load_file(str(path))
        return {p: {l: saved[f"{p}.{l}"] for l in layers} for p in poolings}
    with _watched() as reading:
        out = _collect(model, texts, layers, lengths, poolings, batch_size, progress)
    _warn_if_steered(reading, "collect_activations")
    for p in poolings:
        for l in layers:
            if not torch.isfinite(out[p][l]).all():
                raise FloatingPointError(
                    f"Non-finite activations at layer {l} of {model.cfg.model_name}; load the model in "
                    "float32 (load_model(..., dtype=torch.float32)) or check the inputs."
                )
    if path is not None and not reading.steered:  # a steered read is no reading of the model itself
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({f"{p}.{l}": out[p][l].contiguous() for p in poolings for l in layers}, str(tmp))
        os.replace(tmp, path)
    return out


def _cache_path(model, texts: Sequence[str], layers: Sequence[int], poolings: Sequence[str]) -> Path:
    """Where :func:`collect_pooled` keeps one model's activations of ``texts``: the key holds the
    exact weight sample (not the dtype-tolerant match), dtype, BOS setting, texts, layers and poolings."""
    fingerprint = model_fingerprint(model)
    key = json.dumps({
        "model": str(model.cfg.model_name), "fingerprint": None if fingerprint is None else fingerprint.to_dict(),
        "dtype": str(next(model.original_model.parameters()).dtype), "bos": bool(model.cfg.default_prepend_bos),
        "texts": hashlib.sha256(json.dumps(list(texts)).encode()).hexdigest(), "layers": list(layers),
        "poolings": list(poolings),
    }, sort_keys=True)
    return cache_dir() / "activations" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"


def _collect(model, texts, layers, lengths, poolings, batch_size, progress) -> dict[str, dict[int, torch.Tensor]]:
    order = np.argsort(lengths, kind="stable")
    out = {p: {l: torch.empty(len(texts), d_model(model), dtype=torch.float32) for l in layers} for p in poolings}
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc="activations", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        enc = encode(model, [texts[i] for i in idx])
        mask = enc["attention_mask"]
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)  # last real position, either padding side
        store: dict[tuple[str, int], torch.Tensor] = {}

        def grab(x, hook, layer):
            if "last" in poolings:
                store["last", layer] = x[torch.arange(x.shape[0]), last].float().cpu()
            if "mean" in poolings:
                m = mask.unsqueeze(-1).to(x.dtype)
                store["mean", layer] = ((x * m).sum(1) / m.sum(1)).float().cpu()
            return x

        hooks = [(resid_post_hook(l), lambda x, hook, l=l: grab(x, hook, l)) for l in layers]
        run_trunk(model, enc, hooks, stop_after=layers[-1])
        for p in poolings:
            for l in layers:
                out[p][l][torch.as_tensor(idx)] = store[p, l]
    return out


@torch.inference_mode()
def resid_states(model, enc: dict[str, torch.Tensor], layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """Float32 ``resid_post`` at every position of an encoded batch (see :func:`encode`), per layer:
    (batch, seq, d_model) on the CPU."""
    layers = check_layers(model, layers)
    store: dict[int, torch.Tensor] = {}

    def grab(x, hook, layer):
        store[layer] = x.float().cpu()
        return x

    hooks = [(resid_post_hook(l), lambda x, hook, l=l: grab(x, hook, l)) for l in layers]
    with _watched() as reading:
        run_trunk(model, enc, hooks, stop_after=layers[-1])
    _warn_if_steered(reading, "resid_states")
    return store
