"""Behaviour of transferred vectors on held-out concepts: dose-response in the child (greedy text
under steering at a band, judged by the concept's own judge, costed by the unsteered child's NLL)
for several estimators at once, beside the child's own vector, the child's own vector from only k
train pairs (the exchange rate), a wrong concept's parent vector carried by the same map, parent
random directions carried by the map (mapped-random) and random child directions. Efficiency =
shift ÷ child-own shift at equal NLL increase, 95% bootstrap CI over prompts
(``xsteer.fidelity.dose.compare_at_budget``), at the largest NLL increase both reach and at a fixed
``--budget`` (default +1.0 nats/token). Every map is fitted without the concept's topic
(``xsteer.transfer.corpus.hold_out``); no vector is re-signed with child data.

    flock /tmp/xsteer-heavy.lock python -m benchmarks.transfer_steer --data-dir ../shared/data \
        --concepts music,sentiment --estimators fit+ridge_std/all,fit+difference/all [--reverse] \
        [--band auto|25-29] [--prompts 8] [--tokens 16] [--strengths 0.04,0.08,0.16,0.32] [--budget 1.0] [--out FILE.json]

Activations come from ``benchmarks.transfer_acts``; ``--band auto`` takes the child's logit-lens
accessibility band (``xsteer.transfer.steerability``), found without any concept.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.transfer_acts import CHILD, PARENT, load_all
from benchmarks.transfer_screen import _mean_diff, _stack, _subsample, fit_variant

WRONG = {"music": "sport", "sport": "music", "medicine": "space", "space": "medicine", "cooking": "music",
         "sentiment": "music", "language": "sentiment"}


def _judge(name):
    from xsteer.concepts.topics import TOPICS, TopicJudge

    return TopicJudge(name) if name in TOPICS else name


def _vectors(directions, info, method):
    from xsteer.vectors import SteeringVectors

    return SteeringVectors.from_raw({l: torch.as_tensor(v, dtype=torch.float32) for l, v in directions.items()},
                                    model_name=info.name, d_model=info.d_model, n_layers=info.n_layers, method=method)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache", default="/work/cache/xsteer-acts")
    ap.add_argument("--concepts", default="music,sentiment")
    ap.add_argument("--estimators", default="fit+ridge_std/all")
    ap.add_argument("--reverse", action="store_true")
    ap.add_argument("--band", default="auto")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--strengths", default="0.04,0.08,0.16,0.32")
    ap.add_argument("--n-random", type=int, default=6)
    ap.add_argument("--max-rows", type=int, default=3000)
    ap.add_argument("--budget", type=float, default=1.0, help="the fixed NLL budget (nats/token) reported beside the largest common one")
    ap.add_argument("--out", default="/work/cache/steer.json")
    args = ap.parse_args()
    from xsteer.fidelity.dose import NEUTRAL_PROMPTS, compare_at_budget, dose_response, shift_and_cost, shift_at_cost
    from xsteer.models import load_model
    from xsteer.transfer import FitMap, hold_out
    from xsteer.transfer.steerability import accessibility_profile, accessible_band

    concepts, corpus, sides = load_all(Path(args.cache), args.data_dir)
    pname, cname = (CHILD, PARENT) if args.reverse else (PARENT, CHILD)
    parent, child_side = sides[pname], sides[cname]
    child = load_model(cname)
    info = child_side.info
    prompts = list(NEUTRAL_PROMPTS[: args.prompts])
    strengths = [float(x) for x in args.strengths.split(",")]
    if args.band == "auto":
        texts = list(corpus["generated"].sample(64, seed=0).texts) or list(corpus["tasks"].texts[:64])
        profile = accessibility_profile(child, texts)
        band = accessible_band(profile, 5, 0.5)
    else:
        lo, hi = map(int, args.band.split("-"))
        band, profile = list(range(lo, hi + 1)), None
    by_name = {c.name: c for c in concepts}
    out = {"direction": f"{pname} -> {cname}", "band": band, "accessibility": None if profile is None else profile.tolist(),
           "settings": vars(args), "results": []}
    for name in args.concepts.split(","):
        c, t0 = by_name[name], time.perf_counter()
        keep = {part: np.flatnonzero(np.isin(corp.texts, hold_out(corp, c).texts)) for part, corp in corpus.items()}
        pa, ca = parent.concept(c), child_side.concept(c)
        sp, _ = _subsample(*_stack(parent, corpus, keep, ("last",)), args.max_rows)
        sc, _ = _subsample(*_stack(child_side, corpus, keep, ("last",)), args.max_rows)
        mapping = FitMap().fit(parent.info.n_layers, info.n_layers, sp, sc).mapping_
        pvec = _mean_diff(pa.train_pos, pa.train_neg)
        wrong = by_name[WRONG[name]]
        wa = parent.concept(wrong)
        wvec = _mean_diff(wa.train_pos, wa.train_neg)
        own = _mean_diff(ca.train_pos, ca.train_neg)
        kinds, cos = {"child_own": _vectors({l: own[l] for l in band}, info, "child_own"), "child_own_k": {}}, {}
        for k in (4, 16):
            kinds["child_own_k"][k] = _vectors({l: (ca.train_pos[l][:k] - ca.train_neg[l][:k]).double().mean(0) for l in band},
                                          info, f"child_own_k{k}")
        rng = np.random.default_rng(0)
        first = None
        for est in args.estimators.split(","):
            tr, _ = fit_variant(est, parent, child_side, corpus, keep, args.max_rows, mapping)
            moved = {l: tr.adapters_[l].transform(torch.tensor(pvec[tr.layer_map_.mapping_[l]])) for l in band}
            kinds[est] = _vectors(moved, info, est)
            cos[est] = {l: float(kinds[est][l] @ kinds["child_own"][l]) for l in band}
            if first is None:
                first = tr
        kinds["wrong_concept"] = _vectors({l: first.adapters_[l].transform(torch.tensor(wvec[first.layer_map_.mapping_[l]]))
                                           for l in band}, info, "wrong")
        kinds["mapped_random"] = [_vectors({l: first.adapters_[l].transform(torch.tensor(rng.standard_normal(parent.info.d_model)))
                                            for l in band}, info, "mapped_random") for _ in range(2)]
        kinds["random"] = [_vectors({l: torch.tensor(rng.standard_normal(info.d_model)) for l in band}, info, "random")
                           for _ in range(args.n_random)]
        dr = dose_response(child, kinds, _judge(name), concept=name, layers=band, lambdas=strengths, prompts=prompts,
                           max_new_tokens=args.tokens)
        row = {"concept": name, "budget_nll": dr.budget, "cos_own": cos, "timing": dr.timing, "s": None,
               "curves": {k: {"judge": c.judge.tolist(), "nll": c.nll.tolist()} for k, c in
                          {"baseline": dr.baseline, **dr.curves}.items()}}
        for tag, budget in (("", dr.budget), ("_fixed", args.budget)):  # largest common budget; a fixed one
            kinds_out = {}
            for kind in [k for k in kinds if k not in ("child_own", "random", "mapped_random")]:
                comp = compare_at_budget(dr.baseline, {k: v for k, v in dr.curves.items() if v.kind in (kind, "child_own")},
                                         budget=budget, numerator=kind)
                if kind == "child_own_k":
                    for k, shift in comp.by_k.items():
                        own_shift = comp.shift["child_own"].value
                        kinds_out[f"child_own_k{k}"] = {"efficiency": {"value": shift.value / own_shift if own_shift else None},
                                                        "shift": shift.to_dict()}
                    continue
                eff = comp.efficiency
                kinds_out[kind] = {"efficiency": eff.to_dict() if eff else None, "shift": comp.shift[kind].to_dict()}
            comp = compare_at_budget(dr.baseline, dr.curves, budget=budget)
            kinds_out["child_own"] = {"shift": comp.shift["child_own"].to_dict()}
            row["kinds" + tag] = kinds_out
            row["random_at_budget" + tag] = comp.bands["random"].to_dict()
            row["mapped_random_at_budget" + tag] = [float(shift_at_cost(*shift_and_cost(c, dr.baseline), budget))
                                                    for c in dr.curves.values() if c.kind == "mapped_random"]
        row["fixed_budget_nll"] = args.budget
        row["table"] = dr.table().to_dict("records")
        row["s"] = round(time.perf_counter() - t0, 1)
        out["results"].append(row)
        for tag in ("", "_fixed"):
            print(json.dumps({"concept": name, "budget": round(dr.budget if not tag else args.budget, 3),
                              **{k: (round(v["efficiency"]["value"], 2) if v.get("efficiency") else round(v["shift"]["value"], 3))
                                 for k, v in row["kinds" + tag].items()}, "s": row["s"]}), flush=True)
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
