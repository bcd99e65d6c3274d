"""A plain Hugging Face view of a bridged model: the same weights, the library's fused attention,
and hooks only at the decoder-layer outputs that ``blocks.{l}.hook_resid_post`` names.

TransformerBridge reimplements attention step by step (so that every hook point fires) and adds
Python work at each of them; the evaluation engine only needs the residual stream after each
block. The view runs the original Hugging Face modules (sharing parameters with the bridge, no
copy) with SDPA attention where the architecture allows it, and applies the same hook functions
at the same points. On the CPU, grouped-query attention with a mask runs without first copying
the keys and values once per query head (Hugging Face does that copy on every device).
"""

from __future__ import annotations

import contextlib
import copy
import re
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

__all__ = ["PlainView", "plain_view", "sliding_window"]

_RESID_POST = re.compile(r"blocks\.(\d+)\.hook_resid_post")
_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks",
    "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


@dataclass
class PlainView:
    """The Hugging Face causal LM under a bridge (``model``) and its decoder layers (``layers``)."""

    model: nn.Module
    layers: list[nn.Module]
    device: torch.device

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[str, Callable]] = ()) -> Iterator[None]:
        """Like ``TransformerBridge.hooks``, for ``blocks.{l}.hook_resid_post`` names only: each
        ``fn(resid, hook)`` replaces the output of decoder layer l (``hook`` is None)."""
        handles = []
        try:
            for name, fn in fwd_hooks:
                match = _RESID_POST.fullmatch(name)
                if match is None:
                    raise ValueError(
                        f"The plain view hooks only blocks.{{l}}.hook_resid_post, not {name!r}; "
                        "run the bridge itself for other hook points."
                    )
                handles.append(self.layers[int(match.group(1))].register_forward_hook(_replace_output(fn)))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def token_logprobs(self, hidden: torch.Tensor, tokens: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        """log p(token | final hidden state) under the model's output head (with its logit
        soft-capping), for ``hidden`` [n, d_model] and ``tokens`` [n]: a few positions at a time,
        so no [n, vocab] tensor of all positions is ever built."""
        head = self.model.get_output_embeddings()
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        out = []
        for h, t in zip(hidden.split(chunk), tokens.split(chunk)):
            logits = head(h).float()
            if cap is not None:
                logits = torch.tanh(logits / cap) * cap
            out.append(logits.gather(-1, t[:, None])[:, 0] - torch.logsumexp(logits, dim=-1))
        return torch.cat(out) if out else hidden.new_zeros(0)


def _replace_output(fn: Callable) -> Callable:
    def hook(module, args, output):
        if isinstance(output, tuple):
            return (fn(output[0], None), *output[1:])
        return fn(output, None)

    return hook


def _unwrap(module: nn.Module) -> nn.Module:
    while getattr(module, "original_component", None) is not None and module.original_component is not module:
        module = module.original_component
    return module


def sliding_window(config) -> int | None:
    """The attention window of a model with sliding-window layers, else None."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types is not None and "sliding_attention" not in types:
        return None
    return window


def _sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """Hugging Face's SDPA attention, with grouped-query heads passed as such on the CPU."""
    grouped = getattr(module, "num_key_value_groups", 1) > 1 and query.device.type == "cpu"
    if not grouped or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling,
        is_causal=query.shape[2] > 1 and attention_mask is None and is_causal, enable_gqa=True,
    )
    return out.transpose(1, 2).contiguous(), None


_SDPA = "xsteer_sdpa"
AttentionInterface.register(_SDPA, _sdpa)
AttentionMaskInterface.register(_SDPA, sdpa_mask)


def _attention(config) -> str:
    """SDPA unless the architecture needs eager attention (logit soft-capping, no SDPA support)."""
    if getattr(config, "attn_logit_softcapping", None) is not None:
        return "eager"
    return _SDPA


def _build(bridge) -> PlainView:
    hf = bridge.original_model
    config = copy.copy(hf.config)
    if getattr(type(_unwrap(hf)), "_supports_sdpa", False):
        config._attn_implementation = _attention(config)
    mirrors: dict[int, nn.Module] = {}

    def mirror(module: nn.Module) -> nn.Module:
        original = _unwrap(module)
        clone = copy.copy(original)
        clone.__dict__ = dict(original.__dict__)
        clone._parameters = dict(original._parameters)  # the same Parameter objects: shared weights
        clone._buffers = dict(original._buffers)
        clone._modules = {k: None if v is None else mirror(v) for k, v in original._modules.items()}
        for name in _HOOK_DICTS:
            if name in clone.__dict__:
                clone.__dict__[name] = type(original.__dict__[name])()
        if "config" in clone.__dict__:
            clone.config = config
        mirrors[id(original)] = clone
        return clone

    model = mirror(hf)
    layers = [mirrors[id(_unwrap(block))] for block in bridge.blocks]
    return PlainView(model=model, layers=layers, device=next(hf.parameters()).device)


_VIEWS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, PlainView]]" = weakref.WeakKeyDictionary()


def _signature(bridge) -> tuple:
    """What a view copies from its bridge: the parameter objects with their device and dtype (a
    ``.to(...)`` casts buffers the view holds its own copies of; a replaced parameter is a new object)."""
    return tuple((id(p), p.device, p.dtype) for p in bridge.original_model.parameters())


def plain_view(bridge) -> PlainView:
    """The plain view of ``bridge``, built once per bridge, and again when its parameters changed
    object, device or dtype."""
    signature = _signature(bridge)
    cached = _VIEWS.get(bridge)
    if cached is None or cached[0] != signature:
        cached = _VIEWS[bridge] = (signature, _build(bridge))
    return cached[1]
