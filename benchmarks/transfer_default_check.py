"""The two-line notebook path, measured: ``Transfer().fit(parent, child, hold_out=concept)`` on the
built-in corpus, then readout of the held-out concept in the child (AUROC averaged over all child
layers and over the top five, cos with the child's own vector), beside the child's own vector;
prints the fit's cost.

    flock /tmp/xsteer-heavy.lock python -m benchmarks.transfer_default_check --data-dir ../shared/data \
        [--concepts music,sentiment] [--reverse]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--concepts", default="music,sentiment")
    ap.add_argument("--reverse", action="store_true")
    args = ap.parse_args()
    from benchmarks.transfer_acts import CHILD, PARENT, concepts
    from xsteer.activations import collect_activations
    from xsteer.concepts.strength import auroc
    from xsteer.extract import extract_vectors
    from xsteer.models import load_model
    from xsteer.transfer import Transfer

    pname, cname = (CHILD, PARENT) if args.reverse else (PARENT, CHILD)
    parent, child = load_model(pname), load_model(cname)
    for c in concepts():
        if c.name not in args.concepts.split(","):
            continue
        t0 = time.perf_counter()
        tr = Transfer().fit(parent, child, hold_out=c, data_dir=args.data_dir, progress=False)
        fit_s = time.perf_counter() - t0
        moved = tr.apply(extract_vectors(parent, c.train, "mean_diff"))
        own = extract_vectors(child, c.train, "mean_diff")
        pos = collect_activations(child, [p.positive for p in c.test])
        neg = collect_activations(child, [p.negative for p in c.test])
        n = child.cfg.n_layers
        aucs = {l: float(auroc(pos[l].double() @ moved[l].double(), neg[l].double() @ moved[l].double())) for l in moved.layers}
        own_aucs = {l: float(auroc(pos[l].double() @ own[l].double(), neg[l].double() @ own[l].double())) for l in range(n)}
        top = list(range(n - 5, n))
        print(json.dumps({
            "concept": c.name, "direction": f"{pname} -> {cname}", "anchor_rows": tr.n_anchors_, "fit_s": round(fit_s, 1),
            "auroc_all_layers": float(np.mean([aucs.get(l, 0.5) for l in range(n)])),
            "auroc_top5": float(np.mean([aucs[l] for l in top])),
            "own_all_layers": float(np.mean(list(own_aucs.values()))), "own_top5": float(np.mean([own_aucs[l] for l in top])),
            "cos_own_top5": float(np.mean([float(moved[l] @ own[l]) for l in top])),
        }), flush=True)


if __name__ == "__main__":
    main()
