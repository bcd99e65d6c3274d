"""Held-out R² of the Gemma-3-270M -> SmolLM2-135M greedy ridge map: today's anchors (256 ARC-Easy train
questions, last token) vs token-aligned anchors (every aligned position of ARC + GSM8K train texts,
streamed statistics), both scored on the same held-out ARC-Easy validation questions.

    flock /tmp/xsteer-heavy.lock .venv/bin/python -m benchmarks.anchors_r2 --data-dir /work/shared/data
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from xsteer.activations import collect_activations
from xsteer.models import load_model
from xsteer.tasks import load_task
from xsteer.transfer import Transfer, iter_aligned_batches


def r2(adapter, x: torch.Tensor, y: torch.Tensor) -> float:
    """sklearn r2_score (uniform average over child dims; SS around the scored rows' mean) of the
    adapter's affine prediction mean_child + (x - mean_parent) W."""
    x, y = x.double(), y.double()
    pred = adapter.mean_child_.double() + (x - adapter.mean_parent_.double()) @ adapter.W_.double()
    spread = ((y - y.mean(0)) ** 2).sum(0)
    keep = spread > 0
    return float((1 - ((y - pred) ** 2).sum(0)[keep] / spread[keep]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--n-arc", type=int, default=300, help="ARC train questions (each also with its answer)")
    ap.add_argument("--n-gsm", type=int, default=250, help="GSM8K train questions (each also its solution)")
    ap.add_argument("--n-heldout", type=int, default=200)
    ap.add_argument("--max-tokens", type=int, default=192)
    ap.add_argument("--out", default="benchmarks/anchors_r2.json")
    args = ap.parse_args()
    torch.set_num_threads(2)

    arc = load_task("arc-easy", data_dir=args.data_dir)
    gsm = load_task("gsm8k", data_dir=args.data_dir)
    arc_train = arc.split("train")
    heldout = [ex.question for ex in arc.split("validation")[: args.n_heldout]]
    old_texts = [ex.question for ex in arc_train[:256]]
    arc_part = arc_train[: args.n_arc]
    answer = {ex.id: dict(ex.choices or ()).get(ex.answer, ex.answer) for ex in arc_part}
    new_texts = [ex.question for ex in arc_part] + [
        f"{ex.question}\nAnswer: {answer[ex.id]}" for ex in arc_part
    ]
    gsm_part = gsm.split("train")[: args.n_gsm]
    new_texts += [ex.question for ex in gsm_part] + [ex.solution or ex.answer for ex in gsm_part]
    assert not set(heldout) & set(new_texts), "held-out ARC texts leak into the anchors"

    parent, child = load_model("gemma-3-270m"), load_model("smollm2-135m")
    t0 = time.perf_counter()
    old = Transfer("greedy", "ridge").fit(parent, child, old_texts, pooling="last", progress=False)
    t_old = time.perf_counter() - t0
    print(f"old fit: {t_old:.0f} s", flush=True)
    t0 = time.perf_counter()
    new = Transfer("greedy", "ridge").fit(
        parent, child, new_texts, pooling="aligned", max_tokens=args.max_tokens, progress=True
    )
    t_new = time.perf_counter() - t0
    print(f"new fit: {t_new:.0f} s, {new.n_anchors_} rows", flush=True)

    layers = sorted(new.layer_map_.mapping_)
    p_layers = [new.layer_map_.mapping_[c] for c in layers]
    batches = list(iter_aligned_batches(parent, child, heldout, p_layers, layers, max_tokens=args.max_tokens))
    last_p = collect_activations(parent, heldout, p_layers)
    last_c = collect_activations(child, heldout, layers)
    rows = []
    for c, p in zip(layers, p_layers):
        xa = torch.cat([b.parent[p] for b in batches])
        ya = torch.cat([b.child[c] for b in batches])
        rows.append(
            {
                "child_layer": c,
                "parent_layer": p,
                "old_last": r2(old.adapters_[c], last_p[p], last_c[c]),
                "new_last": r2(new.adapters_[c], last_p[p], last_c[c]),
                "old_aligned": r2(old.adapters_[c], xa, ya),
                "new_aligned": r2(new.adapters_[c], xa, ya),
                "new_alpha": new.adapters_[c].alpha_,
                "new_score_in_fit": new.adapters_[c].score_,
            }
        )
    n_held_rows = int(sum(len(b.text) for b in batches))
    result = {
        "old": {"texts": len(old_texts), "rows": old.n_anchors_, "seconds": t_old},
        "new": {"texts": len(new_texts), "rows": new.n_anchors_, "seconds": t_new,
                "rows_per_s": new.n_anchors_ / t_new},
        "heldout": {"texts": len(heldout), "aligned_rows": n_held_rows},
        "max_tokens": args.max_tokens,
        "layers": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "layers"}))
    print("| child<-parent | old last | new last | old aligned | new aligned | new α |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['child_layer']}<-{r['parent_layer']} | {r['old_last']:.3f} | {r['new_last']:.3f} | "
            f"{r['old_aligned']:.3f} | {r['new_aligned']:.3f} | {r['new_alpha']:g} |"
        )
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("old_last", "new_last", "old_aligned", "new_aligned")}
    print("mean", json.dumps(means))


if __name__ == "__main__":
    main()
