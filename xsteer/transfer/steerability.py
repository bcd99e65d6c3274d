"""Where a child steers, from the child alone and concept-free: the logit-lens accessibility of each
layer (how well the model's own output head, after its final norm, reads the next token from that
layer's residual stream; after Billa 2026, "Predicting where steering vectors succeed"), and the band
of layers where it has risen past a threshold."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from xsteer.activations import encode, resid_states
from xsteer.models import n_layers

__all__ = ["accessibility_profile", "accessible_band"]


@torch.inference_mode()
def accessibility_profile(model, texts: Sequence[str], *, max_positions: int = 512, batch_size: int = 8) -> np.ndarray:
    """Per layer, the mean log-probability the logit lens gives the actual next token, rescaled so
    a uniform guess is 0 and the model's final layer is 1 (``max_positions`` positions of ``texts``)."""
    from xsteer.plain import plain_view

    if not texts:
        raise ValueError("accessibility_profile needs at least one text.")
    view = plain_view(model)
    norm = view.model.get_decoder().norm
    layers = list(range(n_layers(model)))
    total = np.zeros(len(layers))
    count = 0
    for start in range(0, len(texts), batch_size):
        enc = encode(model, list(texts[start : start + batch_size]))
        mask = enc["attention_mask"].bool()
        keep = mask[:, :-1] & mask[:, 1:]  # positions with a real next token
        targets = enc["input_ids"][:, 1:][keep]
        states = resid_states(model, enc, layers)
        for l in layers:
            h = states[l][:, :-1][keep.cpu()].to(view.device)
            total[l] += float(view.token_logprobs(norm(h), targets).sum())
        count += int(keep.sum())
        if count >= max_positions:
            break
    if count == 0:
        raise ValueError("The texts have no position with a next token; pass texts of two or more tokens.")
    mean = total / count
    uniform = -np.log(view.model.get_output_embeddings().weight.shape[0])
    return (mean - uniform) / (mean[-1] - uniform)


def accessible_band(profile: np.ndarray, width: int = 5, threshold: float = 0.5) -> list[int]:
    """``width`` layers starting at the first layer whose accessibility reaches ``threshold`` (kept
    inside the model: a band that would pass the top ends at the last layer)."""
    profile = np.asarray(profile, dtype=float)
    if profile.ndim != 1 or not len(profile) or not np.isfinite(profile).all():
        raise ValueError("profile must be a finite 1-D array with one value per layer.")
    width = min(int(width), len(profile))
    above = np.flatnonzero(profile >= threshold)
    start = int(above[0]) if len(above) else len(profile) - width
    start = min(start, len(profile) - width)
    return list(range(start, start + width))
