"""KV-cache steering's dose-response on the sentiment concept, measured like `xsteer steering-fidelity`
(same neutral prompts, chat template, greedy tokens, VADER judge, the unsteered child's NLL as the
fluency cost), so it can be set beside the residual-stream operators at one NLL budget.

    python -m benchmarks.kv_dose_response [--layers 24-28] [--strengths 1,2,4,8,16] [--budget 0.5]
        [--prompts 16] [--tokens 32] [--positions last] [--out runs/operators/kv/kv.json]

The child's own key/value vectors (mean differences of the cached K/V at the last token of the
concept's training pairs) are added once, with c_keys = c_values = strength, after each prompt's
prefill; decoding then runs without hooks. KV vectors live in one model's attention heads, so there
is no transferred counterpart: this is the child-own row only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xsteer.concepts import load_concept
from xsteer.concepts.judges import make_judge
from xsteer.fidelity.fluency import completion_nll
from xsteer.fidelity.dose import NEUTRAL_PROMPTS, Curve, OpenPrompts, check_budget, check_lambda_grid, compare_at_budget
from xsteer.kv_steer import extract_kv_vectors, kv_generate
from xsteer.models import load_model


def kv_curves(model, kv, prompts, strengths, *, tokens: int, positions: str, judge) -> tuple[Curve, Curve]:
    """Baseline (no edit) and KV-steered curves over ``strengths``, each (n_strengths, n_prompts)."""
    task = OpenPrompts(prompts, max_new_tokens=tokens)
    tok = model.tokenizer
    ids = [task.prompt_ids(ex, tok) for ex in task.examples]

    def curve(kind: str, grid: list[float]) -> Curve:
        gens = [[kv_generate(model, p, kv, c, c, max_new_tokens=tokens, positions=positions) for p in ids] for c in grid]
        comp = [[t for t in g if t != tok.eos_token_id] for row in gens for g in row]
        texts = [tok.decode(c, skip_special_tokens=True) for c in comp]
        shape = (len(grid), len(ids))
        return Curve.of(
            kind=kind, label=kind, lambdas=grid,
            judge=np.asarray(judge.score(texts)).reshape(shape),
            nll=completion_nll(model, ids * len(grid), comp).reshape(shape),
            outputs=[texts[i * len(ids) : (i + 1) * len(ids)] for i in range(len(grid))],
        )

    return curve("baseline", [0.0]), curve("child_own", strengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--layers", default="24-28")
    parser.add_argument("--strengths", default="1,2,4,8,16")
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--positions", default="last", choices=("last", "all"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/operators/kv/kv.json"))
    args = parser.parse_args()
    strengths = check_lambda_grid([float(x) for x in args.strengths.split(",")])
    budget = check_budget(args.budget)
    lo, _, hi = args.layers.partition("-")
    layers = list(range(int(lo), int(hi or lo) + 1))
    model = load_model(args.model)
    concept = load_concept("sentiment", data_dir=args.data_dir)
    kv = extract_kv_vectors(model, concept.train, layers)
    judge = make_judge(concept.judge)
    base, own = kv_curves(model, kv, NEUTRAL_PROMPTS[: args.prompts], strengths, tokens=args.tokens,
                          positions=args.positions, judge=judge)
    at = compare_at_budget(base, {"child_own": own}, budget=budget).shift
    result = {
        "operator": "kv_cache", "positions": args.positions, "layers": layers, "budget_nll": budget,
        "shift_at_budget": {"child_own": at["child_own"].to_dict()}, "baseline": base.to_dict(outputs=True),
        "curves": [own.to_dict(outputs=True)],
        "per_strength": [{"strength": f, "shift": float(np.mean(own.judge[i] - base.judge[0])),
                          "nll_increase": float(np.nanmean(own.nll[i] - base.nll[0])),
                          "distinct2": float(np.mean(own.distinct2[i]))} for i, f in enumerate(strengths)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps({k: result[k] for k in ("shift_at_budget", "per_strength")}, indent=1))


if __name__ == "__main__":
    main()
