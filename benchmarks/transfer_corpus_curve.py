"""How readout of held-out concepts changes with the anchor corpus's size and breadth: two
estimators (default: the difference-fitted map and standardised ridge on states), proportional pairing,
fitted on nested corpora (task questions only, growing; + generated texts; + lexicon anchors,
growing), each less the concept's topic; readout AUROC averaged over all child layers and
cos(transferred, child-own), as in ``benchmarks.transfer_screen``.

    flock /tmp/xsteer-heavy.lock python -m benchmarks.transfer_corpus_curve --data-dir ../shared/data \
        [--concepts music,space,cooking,sentiment] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.transfer_acts import CHILD, PARENT, load_all
from benchmarks.transfer_screen import fit_variant, own_readout, readout

CONFIGS = (  # name, task questions, generated texts, lexicon words (taken in corpus order)
    ("tasks 256", 256, 0, 0), ("tasks 1024", 1024, 0, 0), ("generated 509", 0, 10_000, 0),
    ("tasks + generated", 1024, 10_000, 0), ("lexicon 150 words", 0, 0, 150), ("lexicon 600 words", 0, 0, 600),
    ("lexicon 1200 words", 0, 0, 1200), ("tasks + generated + lexicon 300", 1024, 10_000, 300),
    ("tasks + generated + lexicon 1200", 1024, 10_000, 1200),
)


def _limit(corpus, keep, n_tasks, n_gen, n_words):
    out = {}
    if n_tasks and "tasks" in keep:
        out["tasks"] = keep["tasks"][:n_tasks]
    if n_gen and "generated" in keep:
        out["generated"] = keep["generated"][:n_gen]
    if n_words and "lexicon" in keep:
        words = list(dict.fromkeys(corpus["lexicon"].topics))[:n_words]
        allowed = set(words)
        out["lexicon"] = np.asarray([i for i in keep["lexicon"] if corpus["lexicon"].topics[i] in allowed])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache", default="/work/cache/xsteer-acts")
    ap.add_argument("--concepts", default="music,space,cooking,sentiment")
    ap.add_argument("--estimators", default="proportional+difference/all,proportional+ridge_std/all")
    ap.add_argument("--max-rows", type=int, default=3000)
    ap.add_argument("--out", default="/work/cache/curve.json")
    args = ap.parse_args()
    from xsteer.transfer import ProportionalMap, hold_out

    concepts, corpus, sides = load_all(Path(args.cache), args.data_dir)
    parent, child = sides[PARENT], sides[CHILD]
    n_child = child.info.n_layers
    band = list(range(n_child - 5, n_child))
    results = []
    for c in concepts:
        if c.name not in args.concepts.split(","):
            continue
        full = {part: np.flatnonzero(np.isin(corp.texts, hold_out(corp, c).texts)) for part, corp in corpus.items()}
        pa, ca = parent.concept(c), child.concept(c)
        own, _, _ = own_readout(ca)
        mapping = ProportionalMap().fit(parent.info.n_layers, n_child).mapping_
        for name, n_tasks, n_gen, n_words in CONFIGS:
            keep = _limit(corpus, full, n_tasks, n_gen, n_words)
            texts = {k: len(v) for k, v in keep.items()}
            for est in args.estimators.split(","):
                t0 = time.perf_counter()
                try:
                    tr, rows = fit_variant(est, parent, child, corpus, {"tasks": np.zeros(0, int), **keep},
                                           args.max_rows, mapping)
                except ValueError as err:  # e.g. no labelled groups for a difference fit
                    results.append({"concept": c.name, "corpus": name, "estimator": est, "texts": texts, "error": str(err)})
                    continue
                r = readout(tr, pa, ca, own, n_child, band)
                row = {"concept": c.name, "corpus": name, "estimator": est, "texts": texts, "rows": rows,
                       **{k: r[k] for k in ("auroc_all_layers", "auroc_band", "cos_own_mean", "cos_own_band", "r2_mean")},
                       "s": round(time.perf_counter() - t0, 1)}
                results.append(row)
                print(json.dumps(row), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
