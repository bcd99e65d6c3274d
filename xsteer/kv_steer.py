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

from xsteer.contrast import ContrastPair
from xsteer.plain import plain_view

__all__ = ["KVVectors", "apply_kv_steering", "extract_kv_vectors", "kv_generate"]


@dataclass
class KVVectors:
    """Per layer: key and value steering tensors of shape (kv heads, head dim)."""

    keys: dict[int, torch.Tensor]
    values: dict[int, torch.Tensor]

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
    if not pairs:
        raise ValueError("extract_kv_vectors needs at least one contrast pair.")
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
    if len(cache.layers) <= max(vectors.layers):
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
