"""Generation-time anchors (issue 27, item 2a): does a ridge fitted at the child's own generation-time
states carry a held-out concept better than the same ridge on every aligned position of the texts?

Per concept (held out of every fit): ``Transfer("proportional", "ridge_std")`` fitted on the shipped
generated corpus with ``pooling="aligned"`` (every token-aligned position of the texts) and with
``pooling="continued"`` (SmolLM2 continues each text's first 8 words for 32 greedy tokens; rows only
inside the continuation), beside the default ``Transfer()``. Readout AUROC over all child layers and
over the steering band, cos with the child's own vector there, and steering efficiency at +1 nat/token
(8 neutral prompts, 16 tokens, the child's accessibility band), beside 2 random child directions.

    XSTEER_DATA_DIR=../shared/data python -m benchmarks.transfer_continued music,sentiment [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import xsteer as xs
from xsteer.concepts.topics import TOPICS, TopicJudge
from xsteer.fidelity import NEUTRAL_PROMPTS, compare_at_budget, dose_response, readout_fidelity
from xsteer.transfer import Transfer, accessibility_profile, accessible_band
from xsteer.transfer.corpus import generated_corpus

STRENGTHS = [0.04, 0.08, 0.16, 0.32]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("concepts", nargs="?", default="music,sentiment")
    ap.add_argument("--budget", type=float, default=1.0)
    ap.add_argument("--out", default="/work/cache/continued.json")
    ap.add_argument("--parent", default="gemma-3-270m")
    ap.add_argument("--child", default="smollm2-135m")
    ap.add_argument("--texts", type=int, default=0, help="use this many corpus texts (0: all)")
    args = ap.parse_args()
    parent, child = xs.load_model(args.parent), xs.load_model(args.child)
    corpus = generated_corpus()
    corpus = corpus.sample(args.texts, seed=0) if args.texts else corpus
    band = [int(l) for l in accessible_band(accessibility_profile(child, list(corpus.sample(64, seed=0).texts)))]
    out = {"band": band, "results": []}
    for name in args.concepts.split(","):
        t0 = time.perf_counter()
        concept = xs.load_concept(name, n=128)
        fits, seconds = {}, {}
        for label, tr, pooling in (("default", Transfer(), ("last", "mean")),
                                   ("ridge_std@aligned", Transfer("proportional", "ridge_std"), "aligned"),
                                   ("ridge_std@continued", Transfer("proportional", "ridge_std"), "continued")):
            t = time.perf_counter()
            corpus_arg = None if label == "default" else corpus
            fits[label] = tr.fit(parent, child, corpus_arg, pooling=pooling, hold_out=concept, progress=False)
            seconds[label] = round(time.perf_counter() - t, 1)
        readout = readout_fidelity(parent, child, [concept], n_random=100, n_boot=200, n_mapped_random=5,
                                   transfers={name: {("proportional", k): v for k, v in fits.items()}})
        (c,) = readout.concepts
        row = {"concept": name, "fit_s": seconds, "rows": {k: v.n_anchors_ for k, v in fits.items()},
               "readout_all": {}, "readout_band": {}, "cos_band": {}}
        for k in fits:
            got = {t.child_layer: t for t in c.transferred if t.adapter == k}  # a layer not reached reads 0.5
            row["readout_all"][k] = float(np.mean([got[l.layer].auroc.value if l.layer in got else 0.5
                                                   for l in c.child_layers]))
            row["readout_band"][k] = float(np.mean([got[l].auroc.value for l in band]))
            row["cos_band"][k] = float(np.mean([got[l].cos_child_own for l in band]))
        row["readout_all"]["child_own"] = float(np.mean([l.child_own.value for l in c.child_layers]))
        row["readout_band"]["child_own"] = float(np.mean([l.child_own.value for l in c.child_layers if l.layer in band]))
        v_parent = xs.extract_vectors(parent, concept.train, "mean_diff")
        kinds = {k: tr.apply(v_parent).select(band) for k, tr in fits.items()}
        kinds["child_own"] = xs.extract_vectors(child, concept.train, "mean_diff").select(band)
        kinds["random"] = [xs.SteeringVectors.random(kinds["child_own"], seed=s) for s in range(2)]
        judge = TopicJudge(name) if name in TOPICS else name
        dr = dose_response(child, kinds, judge, concept=name, layers=band, lambdas=STRENGTHS,
                           prompts=list(NEUTRAL_PROMPTS[:8]), max_new_tokens=16)
        row["efficiency"] = {}
        for k in fits:
            comp = compare_at_budget(dr.baseline, {x: v for x, v in dr.curves.items() if v.kind in (k, "child_own")},
                                     budget=args.budget, numerator=k)
            row["efficiency"][k] = comp.efficiency.to_dict() if comp.efficiency else None
        comp = compare_at_budget(dr.baseline, dr.curves, budget=args.budget)
        row["child_own_shift"] = comp.shift["child_own"].to_dict()
        row["random"] = comp.bands["random"].to_dict()
        row["s"] = round(time.perf_counter() - t0, 1)
        out["results"].append(row)
        print(json.dumps({k: row[k] for k in ("concept", "rows", "readout_all", "readout_band", "cos_band", "s")}), flush=True)
        print(json.dumps({"efficiency": {k: (v or {}).get("value") for k, v in row["efficiency"].items()},
                          "ci": {k: [(v or {}).get("low"), (v or {}).get("high")] for k, v in row["efficiency"].items()},
                          "child_own_shift": row["child_own_shift"]}), flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
