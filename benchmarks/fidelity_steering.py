"""Cost of the steering dose-response: xsteer's engine (every prompt × λ of a vector as rows of
one per-row-λ sweep, KV-cached, drafts from neighbouring λ) vs a plain loop (one λ at a time:
Hugging Face ``generate`` of the prompt batch with a scalar-λ hook), same vectors, prompts and λ
grid; the share of identical texts is reported beside the speeds.

    flock /tmp/xsteer-heavy.lock python -m benchmarks.fidelity_steering [--model smollm2-135m]
        [--prompts 16] [--lambdas 0.02,0.04,0.08,0.16,0.32] [--vectors 3] [--tokens 32]

A "row" is one (vector, λ, prompt) generation; tokens are generated tokens.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from xsteer.fidelity.dose import NEUTRAL_PROMPTS, OpenPrompts, run_curves
from xsteer.models import load_model, tiny_model
from xsteer.plain import plain_view
from xsteer.steer import steering_hooks
from xsteer.vectors import SteeringVectors


class _NoJudge:
    name = "none"

    def score(self, texts):
        return np.zeros(len(texts))


def _vectors(model, n: int, layers: list[int]) -> dict[str, SteeringVectors]:
    d, total = model.cfg.d_model, model.cfg.n_layers
    g = torch.Generator().manual_seed(0)
    return {
        f"v{k}": SteeringVectors.from_raw({l: torch.randn(d, generator=g) for l in layers}, model_name=model.cfg.model_name,
                                          d_model=d, n_layers=total, method="random")
        for k in range(n)
    }


@torch.inference_mode()
def _plain_loop(model, vectors, prompts, lambdas, tokens):
    task = OpenPrompts(prompts, max_new_tokens=tokens)
    tok = model.tokenizer
    view = plain_view(model)
    ids = [task.prompt_ids(ex, tok) for ex in task.examples]
    width = max(map(len, ids))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    x = torch.tensor([[pad] * (width - len(i)) + i for i in ids], device=view.device)
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids], device=view.device)
    out, n_tokens = {}, 0
    for label, v in vectors.items():
        for lam in lambdas:
            with view.hooks(steering_hooks(model, v, lam, scale="relative")):
                gen = view.model.generate(input_ids=x, attention_mask=mask, max_new_tokens=tokens, do_sample=False,
                                          pad_token_id=pad)
            for j, row in enumerate(gen[:, width:].tolist()):
                eos = model.tokenizer.eos_token_id
                row = row[: row.index(eos)] if eos in row else row
                n_tokens += len(row)
                out[label, lam, j] = tok.decode(row, skip_special_tokens=True)
    return out, n_tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--lambdas", default="0.02,0.04,0.08,0.16,0.32")
    ap.add_argument("--vectors", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--layers", default="8-13", help="steered band, e.g. 8-13")
    args = ap.parse_args()
    model = tiny_model("llama", 4, 64) if args.model == "tiny" else load_model(args.model)
    lo, hi = (int(x) for x in args.layers.split("-"))
    layers = [l for l in range(lo, hi + 1) if l < model.cfg.n_layers]
    vectors = _vectors(model, args.vectors, layers)
    prompts = list(NEUTRAL_PROMPTS[: args.prompts])
    lambdas = [float(x) for x in args.lambdas.split(",")]

    t = time.perf_counter()
    base, curves, timing = run_curves(model, vectors, _NoJudge(), prompts, lambdas, max_new_tokens=args.tokens)
    engine_s = time.perf_counter() - t
    t = time.perf_counter()
    plain, plain_tokens = _plain_loop(model, vectors, prompts, lambdas, args.tokens)
    plain_s = time.perf_counter() - t
    rows = len(vectors) * len(lambdas) * len(prompts)
    same = sum(curves[k].outputs[i][j] == plain[k, lam, j] for k in vectors for i, lam in enumerate(lambdas)
               for j in range(len(prompts)))
    print(json.dumps({
        "model": model.cfg.model_name, "rows": rows, "layers": layers, "lambdas": lambdas,
        "max_new_tokens": args.tokens, "threads": torch.get_num_threads(),
        "engine": {"generate_s": timing["generate_s"], "rows_per_s": timing["rows_per_s"],
                   "tokens_per_s": timing["tokens_per_s"], "with_scoring_s": engine_s,
                   "note": "includes the unsteered baseline rows"},
        "plain_loop": {"s": plain_s, "rows_per_s": rows / plain_s, "tokens_per_s": plain_tokens / plain_s},
        "identical_texts": f"{same}/{rows}",
    }, indent=1))


if __name__ == "__main__":
    main()
