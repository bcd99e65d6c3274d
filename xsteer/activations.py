"""The one activation collector: every room that needs ``resid_post`` activations calls this one.

``collect_activations`` pools each text at its last real token or over its real tokens;
``resid_states`` hands back whole (batch, seq, d) states of an encoded batch (token-aligned anchors,
residual norms). Both run the transformer blocks only (no unembedding) and stop after the last layer
they need.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from xsteer.models import d_model, n_layers, resid_post_hook

__all__ = ["check_layers", "collect_activations", "encode", "resid_states", "run_trunk"]


def check_layers(model, layers: Sequence[int] | None) -> list[int]:
    """``layers`` sorted and de-duplicated (None: every block), each checked to be a block of ``model``."""
    total = n_layers(model)
    if layers is None:
        return list(range(total))
    layers = sorted(set(int(l) for l in layers))
    bad = [l for l in layers if not 0 <= l < total]
    if bad:
        raise ValueError(
            f"Layers {bad} are outside {model.cfg.model_name} (blocks 0..{total - 1}); "
            "pick layers in that range."
        )
    return layers


def encode(model, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    """Tokenize a batch with padding and return ids, mask and mask-consistent position ids."""
    enc = model.tokenizer(list(texts), return_tensors="pt", padding=True)
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

    Padding side does not matter: batched results equal one-text-at-a-time results.
    """
    if pooling not in ("last", "mean"):
        raise ValueError(f"pooling must be 'last' or 'mean', not {pooling!r}.")
    if not texts:
        raise ValueError("collect_activations got no texts; pass at least one.")
    layers = check_layers(model, layers)
    # Sort by length so batches pad little; results are put back in input order.
    lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    order = np.argsort(lengths, kind="stable")
    out = {l: torch.empty(len(texts), d_model(model), dtype=torch.float32) for l in layers}
    batches = range(0, len(texts), batch_size)
    for start in tqdm(batches, desc="activations", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        enc = encode(model, [texts[i] for i in idx])
        mask = enc["attention_mask"]
        last = mask.shape[1] - 1 - mask.flip(-1).argmax(-1)  # last real position, either padding side
        store: dict[int, torch.Tensor] = {}

        def grab(x, hook, layer):
            if pooling == "last":
                store[layer] = x[torch.arange(x.shape[0]), last].float().cpu()
            else:
                m = mask.unsqueeze(-1).to(x.dtype)
                store[layer] = ((x * m).sum(1) / m.sum(1)).float().cpu()
            return x

        hooks = [(resid_post_hook(l), lambda x, hook, l=l: grab(x, hook, l)) for l in layers]
        run_trunk(model, enc, hooks, stop_after=layers[-1])
        for l in layers:
            out[l][torch.as_tensor(idx)] = store[l]
    for l in layers:
        if not torch.isfinite(out[l]).all():
            raise FloatingPointError(
                f"Non-finite activations at layer {l} of {model.cfg.model_name}; load the model in "
                "float32 (load_model(..., dtype=torch.float32)) or check the inputs."
            )
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
    run_trunk(model, enc, hooks, stop_after=layers[-1])
    return store
