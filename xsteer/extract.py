"""Activation collection and concept extraction (Algorithm 1): pairs -> per-layer unit vectors."""

from __future__ import annotations

import math
from typing import Literal, Sequence

import numpy as np
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from xsteer.contrast import ContrastPair, pairs_hash
from xsteer.models import d_model, n_layers, resid_post_hook
from xsteer.vectors import SteeringVectors

__all__ = [
    "METHODS",
    "collect_activations",
    "encode",
    "extract_vectors",
    "random_vectors",
    "run_trunk",
    "split_pairs",
]

METHODS = ("pca", "mean_diff", "random")


def _check_layers(model, layers: Sequence[int] | None) -> list[int]:
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
    layers = _check_layers(model, layers)
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


def _explained(diffs: np.ndarray, v: np.ndarray) -> float:
    """Share of the variance of the (recentred) differences that lies along unit ``v``."""
    total = float((diffs**2).sum())
    return float(((diffs @ v) ** 2).sum() / total) if total > 0 else float("nan")


def _random_unit(d: int, seed: int, layer: int) -> np.ndarray:
    v = np.random.default_rng([seed, layer]).standard_normal(d)
    return v / np.linalg.norm(v)


def random_vectors(like: SteeringVectors, seed: int) -> SteeringVectors:
    """Seeded random unit directions at the layers of ``like`` (the random-direction control)."""
    return SteeringVectors(
        directions={l: torch.from_numpy(_random_unit(like.d_model, seed, l)).float() for l in like.layers},
        model_name=like.model_name,
        d_model=like.d_model,
        n_layers=like.n_layers,
        method="random",
        seed=seed,
    )


def split_pairs(n: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split of ``n`` pairs into (fit indices, held-out indices, ±1 order flips of fit pairs).

    With too few pairs to hold any out, the held-out indices are the fit indices (in-sample).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test = int(math.floor(n * held_out))
    fit_idx, test_idx = perm[n_test:], perm[:n_test]
    flips = np.where(rng.random(len(fit_idx)) < 0.5, -1.0, 1.0)
    return fit_idx, (test_idx if n_test else fit_idx), flips


def extract_vectors(
    model,
    pairs: Sequence[ContrastPair],
    method: Literal["pca", "mean_diff", "random"] = "pca",
    layers: Sequence[int] | None = None,
    *,
    seed: int = 0,
    held_out: float = 0.25,
    batch_size: int = 16,
    progress: bool = False,
) -> SteeringVectors:
    """Per-layer unit steering vectors from contrast pairs, signed so +v points to the positive side.

    ``pca`` reads like RepE: pair order is flipped at random (seeded), differences are recentred and
    PC1 taken; ``mean_diff`` is CAA's mean of (positive - negative); ``random`` gives seeded unit
    directions (the control). A ``held_out`` share of the pairs is kept out of fitting and measures
    sign agreement: how often the positive text projects higher than the negative one.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of {METHODS}.")
    if len(pairs) < 2:
        raise ValueError(f"extract_vectors needs at least 2 contrast pairs, got {len(pairs)}.")
    if not 0 <= held_out < 1:
        raise ValueError("held_out must be in [0, 1).")
    layers = _check_layers(model, layers)
    texts = [p.positive for p in pairs] + [p.negative for p in pairs]
    acts = collect_activations(model, texts, layers, batch_size=batch_size, progress=progress)

    n = len(pairs)
    fit_idx, test_idx, flips = split_pairs(n, held_out, seed)
    flips = flips[:, None]

    directions, evr, agree = {}, {}, {}
    for l in layers:
        a = acts[l].double().numpy()
        diff = a[:n] - a[n:]
        fit = diff[fit_idx]
        centred = fit * flips
        centred = centred - centred.mean(0)
        if method == "pca":
            v = np.linalg.svd(centred, full_matrices=False)[2][0]
        elif method == "mean_diff":
            v = fit.mean(0)
        else:
            v = _random_unit(a.shape[1], seed, l)
        v = v / np.linalg.norm(v)
        if np.mean(fit @ v > 0) < 0.5:  # RepE's label vote fixes the sign
            v = -v
        directions[l] = torch.from_numpy(v).float()
        evr[l] = _explained(centred, v)
        agree[l] = float(np.mean(diff[test_idx] @ v > 0))
    return SteeringVectors(
        directions=directions,
        model_name=model.cfg.model_name,
        d_model=d_model(model),
        n_layers=n_layers(model),
        method=method,
        seed=seed,
        data_hash=pairs_hash(pairs),
        explained_variance=evr,
        sign_agreement=agree,
        provenance={"n_pairs": n, "n_held_out": int(n - len(fit_idx)), "pooling": "last"},
    )
