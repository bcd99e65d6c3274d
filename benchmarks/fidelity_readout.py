"""Cost of the readout-fidelity null: rank-based AUROC of many random directions at once vs. a
plain loop (one direction at a time, sklearn ``roc_auc_score``), same directions, same answers.

    python -m benchmarks.fidelity_readout [--d 576] [--layers 30] [--pairs 64] [--directions 200]

Synthetic activations of the real child's shape (SmolLM2-135M: width 576, 30 layers; 256 pairs of
which 64 held out); a "row" is one (layer, direction) AUROC on the held-out texts.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from xsteer.fidelity import ConceptActs
from xsteer.fidelity import random_null


def _acts(d: int, layers: int, n_train: int, n_test: int, seed: int = 0) -> ConceptActs:
    g = torch.Generator().manual_seed(seed)
    mk = lambda n: {l: torch.randn(n, d, generator=g) for l in range(layers)}
    return ConceptActs(mk(n_train), mk(n_train), mk(n_test), mk(n_test))


def _loop(acts: ConceptActs, layer: int, n: int, seed: int) -> np.ndarray:
    d = acts.test_pos[layer].shape[1]
    r = np.random.default_rng([seed, layer]).standard_normal((d, n))
    r /= np.linalg.norm(r, axis=0, keepdims=True)
    tp, tn = acts.test_pos[layer].double().numpy(), acts.test_neg[layer].double().numpy()
    diff = acts.train_pos[layer].double().numpy() - acts.train_neg[layer].double().numpy()
    labels = np.r_[np.ones(len(tp)), np.zeros(len(tn))]
    out = []
    for k in range(n):
        v = r[:, k]
        m = diff @ v
        if (m > 0).mean() < 0.5 or ((m > 0).mean() == 0.5 and m.mean() < 0):
            v = -v
        out.append(roc_auc_score(labels, np.r_[tp @ v, tn @ v]))
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--pairs", type=int, default=64, help="held-out pairs")
    ap.add_argument("--directions", type=int, default=200)
    args = ap.parse_args()
    acts = _acts(args.d, args.layers, 3 * args.pairs, args.pairs)
    rows = args.layers * args.directions
    t = time.perf_counter()
    nulls = [random_null(acts, l, n=args.directions, seed=0) for l in range(args.layers)]
    vec_s = time.perf_counter() - t
    t = time.perf_counter()
    loops = [_loop(acts, l, args.directions, 0) for l in range(args.layers)]
    loop_s = time.perf_counter() - t
    worst = max(abs(nl.p95 - np.quantile(lp, 0.95)) for nl, lp in zip(nulls, loops))
    print(json.dumps({
        "shape": vars(args),
        "rows": rows,
        "vectorised_rows_per_s": rows / vec_s,
        "loop_rows_per_s": rows / loop_s,
        "speedup": loop_s / vec_s,
        "max_abs_p95_difference": worst,
    }, indent=1))


if __name__ == "__main__":
    main()
