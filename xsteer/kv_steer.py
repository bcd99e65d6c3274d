"""KV-cache steering (Belitsky et al. 2025, arXiv 2507.08799): key and value steering vectors,
per layer and head, from mean differences of the cached keys/values at the last token of
positive vs negative texts; added once to a prompt's cache after prefill, then plain decoding
with no hook at any step.

The edit goes to the cache entry of the prompt's last token (``positions="last"``, the paper's
target position) or of every prompt token (``"all"``). The first generated token is predicted by
the prefill pass itself, before the edit; every later token attends to the edited entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from xsteer.checks import as_count, as_int_list, as_real
from xsteer.contrast import ContrastPair
from xsteer.models import check_bridge, n_layers
from xsteer.plain import plain_view

__all__ = ["KVVectors", "apply_kv_steering", "extract_kv_vectors", "kv_generate"]


@dataclass
class KVVectors:
    """Per layer: key and value steering tensors of shape (kv heads, head dim)."""

    keys: dict[int, torch.Tensor]
    values: dict[int, torch.Tensor]

    def __post_init__(self) -> None:
        if not isinstance(self.keys, dict) or not isinstance(self.values, dict) or not self.keys:
            raise TypeError("KVVectors needs two non-empty dicts layer -> (kv heads, head dim) tensor: keys and values.")
        if sorted(self.keys) != sorted(self.values):
            raise ValueError(f"KVVectors has keys at layers {sorted(self.keys)} but values at {sorted(self.values)}.")
        for l in self.keys:
            k, v = torch.as_tensor(self.keys[l]), torch.as_tensor(self.values[l])
            if k.ndim != 2 or k.shape != v.shape:
                raise ValueError(f"KV vectors of layer {l} have shapes {tuple(k.shape)} and {tuple(v.shape)}; "
                                 "both must be (kv heads, head dim).")
            if not (torch.isfinite(k).all() and torch.isfinite(v).all()):
                raise ValueError(f"KV vectors of layer {l} hold NaN or infinite values; extract them again.")

    @property
    def layers(self) -> list[int]:
        return sorted(self.keys)


def _prefill(view, ids: torch.Tensor):
    """The prompt's KV cache and last-position logits; a clear error for a model without one."""
    if getattr(view.model.config, "use_cache", True) is False:
        raise ValueError(
            "KV-cache steering needs a KV cache, but this model has it disabled (config.use_cache=False); "
            "set model.config.use_cache = True."
        )
    out = view.model(input_ids=ids, use_cache=True, logits_to_keep=1)
    if getattr(out, "past_key_values", None) is None:
        raise ValueError("KV-cache steering needs a model that returns a KV cache (past_key_values); this one does not.")
    return out.past_key_values, out.logits[:, -1]


@torch.inference_mode()
def extract_kv_vectors(model, pairs: Sequence[ContrastPair], layers: Sequence[int] | None = None) -> KVVectors:
    """Mean over pairs of (positive − negative) cached key and value at each text's last token."""
    check_bridge(model, "extract_kv_vectors")
    if isinstance(pairs, (str, ContrastPair)) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a list of ContrastPair(positive, negative), not {type(pairs).__name__}.")
    if not pairs:
        raise ValueError("extract_kv_vectors needs at least one contrast pair.")
    if not all(isinstance(p, ContrastPair) for p in pairs):
        raise TypeError("pairs must hold ContrastPair(positive, negative) items (xsteer.contrast).")
    if layers is not None:
        layers = as_int_list("layers", layers)
        outside = [l for l in layers if not 0 <= l < n_layers(model)]
        if not layers or outside:
            raise ValueError(f"layers {layers} must name blocks of {model.cfg.model_name} (0..{n_layers(model) - 1}).")
    view, tok = plain_view(model), model.tokenizer
    sums_k: dict[int, torch.Tensor] = {}
    sums_v: dict[int, torch.Tensor] = {}
    for pair in pairs:
        caches = []
        for text in (pair.positive, pair.negative):
            ids = torch.tensor([tok(text)["input_ids"]], device=view.device)
            caches.append(_prefill(view, ids)[0])
        chosen = range(len(caches[0].layers)) if layers is None else layers
        for l in chosen:
            pos, neg = caches[0].layers[l], caches[1].layers[l]
            dk = (pos.keys[0, :, -1] - neg.keys[0, :, -1]).float()
            dv = (pos.values[0, :, -1] - neg.values[0, :, -1]).float()
            sums_k[l] = sums_k.get(l, 0) + dk
            sums_v[l] = sums_v.get(l, 0) + dv
    n = len(pairs)
    return KVVectors({l: s / n for l, s in sums_k.items()}, {l: s / n for l, s in sums_v.items()})


def apply_kv_steering(
    cache, vectors: KVVectors, c_keys: float, c_values: float, *,
    positions: Literal["last", "all"] = "last", prompt_len: int | None = None,
) -> None:
    """Add c_k·S_k and c_v·S_v, in place, to the cached keys/values of the last prompt position
    (or of every prompt position: the last ``prompt_len`` entries) at every steered layer."""
    if positions not in ("last", "all"):
        raise ValueError(f"positions must be 'last' or 'all', not {positions!r}.")
    if not isinstance(vectors, KVVectors):
        raise TypeError(f"vectors must be KVVectors (extract_kv_vectors), not {type(vectors).__name__}.")
    fix = "pass finite strengths, e.g. c_keys=0.0, c_values=4.0."
    c_keys, c_values = as_real("c_keys", c_keys, fix), as_real("c_values", c_values, fix)
    if prompt_len is not None:
        prompt_len = as_count("prompt_len", prompt_len)
    if min(vectors.layers) < 0 or len(cache.layers) <= max(vectors.layers):
        raise ValueError(f"The KV vectors name layer {max(vectors.layers)} but the cache has {len(cache.layers)} layers.")
    for l in vectors.layers:
        layer = cache.layers[l]
        width = 1 if positions == "last" else (prompt_len or layer.keys.shape[2])
        k, v = vectors.keys[l], vectors.values[l]
        if tuple(k.shape) != tuple(layer.keys.shape[1:2] + layer.keys.shape[3:]):
            raise ValueError(
                f"KV vectors of layer {l} have shape {tuple(k.shape)}, the cache (heads, head dim) "
                f"{tuple(layer.keys.shape[1:2] + layer.keys.shape[3:])}: extract them from this model."
            )
        layer.keys[:, :, -width:] += (c_keys * k).to(layer.keys)[None, :, None]
        layer.values[:, :, -width:] += (c_values * v).to(layer.values)[None, :, None]


@torch.inference_mode()
def kv_generate(
    model, prompt: Sequence[int], vectors: KVVectors, c_keys: float, c_values: float, *,
    max_new_tokens: int, positions: Literal["last", "all"] = "last",
) -> list[int]:
    """Greedy tokens after ``prompt`` with its cache steered once after prefill (no per-step hook)."""
    check_bridge(model, "kv_generate")
    if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Sequence) or not prompt:
        raise TypeError(
            f"prompt must be a non-empty list of token ids, not {prompt!r}. Fix: model.tokenizer(text)['input_ids']."
        )
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        raise TypeError("prompt must hold integer token ids. Fix: model.tokenizer(text)['input_ids'].")
    max_new_tokens = as_count("max_new_tokens", max_new_tokens)
    view = plain_view(model)
    ids = torch.tensor([list(prompt)], device=view.device)
    cache, logits = _prefill(view, ids)
    apply_kv_steering(cache, vectors, c_keys, c_values, positions=positions, prompt_len=len(prompt))
    out = [int(logits[0].argmax())]
    eos = model.tokenizer.eos_token_id
    while len(out) < max_new_tokens and out[-1] != eos:
        step = view.model(input_ids=torch.tensor([[out[-1]]], device=view.device), past_key_values=cache, use_cache=True)
        cache = step.past_key_values
        out.append(int(step.logits[0, -1].argmax()))
    return out
