"""Cheap screen of transfer estimators on held-out concepts (no steering): per (direction, concept,
estimator) the readout AUROC of the transferred parent mean-difference vector on the child's
held-out test pairs averaged over ALL child layers (an unreached layer counts 0.5), the same over
the steering band, cos(transferred, child-own), the adapters' held-out R², and controls
(mapped-random parent directions, random child directions). Every fit sees the anchor corpus less
the concept's topic (``xsteer.transfer.corpus.hold_out``); the transferred vector is never
re-signed with child data.

    flock /tmp/xsteer-heavy.lock python -m benchmarks.transfer_screen --data-dir ../shared/data \
        [--concepts music,sport,...] [--estimators ...] [--reverse] [--max-rows 3000] [--out FILE.json]

Activations come from ``benchmarks.transfer_acts`` (run it first).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.transfer_acts import CHILD, PARENT, load_all

ALPHAS = (0.01, 0.1, 1.0, 10.0)


def _np(x):
    return torch.as_tensor(x).double().numpy()


def _mean_diff(pos, neg):
    return {l: (_np(pos[l]) - _np(neg[l])).mean(0) for l in pos}


def _stack(side, corpus, keep, poolings):
    """Rows of the kept texts of every corpus part (layer -> (n, d)) and their text groups."""
    rows, groups, offset = {}, [], 0
    for part, idx in keep.items():
        for pooling in poolings:
            acts = side.parts.get((part, pooling))
            if acts is None:
                continue
            for l, a in acts.items():
                rows.setdefault(l, []).append(a[torch.as_tensor(idx)])
            groups.append(offset + np.arange(len(idx)))
        offset += len(corpus[part])
    return {l: torch.cat(v) for l, v in rows.items()}, np.concatenate(groups)


def _subsample(rows, groups, max_rows, seed=0):
    n = len(groups)
    if n <= max_rows:
        return rows, groups
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:max_rows])
    return {l: a[torch.as_tensor(idx)] for l, a in rows.items()}, groups[idx]


def _contrasts(side, corpus, keep):
    """Group contrasts of the kept corpus: lexicon words (last token), generated topics and styles
    (mean and last token); one row set per layer and the contrast names."""
    from xsteer.transfer import group_contrasts

    rows, names = {}, []
    for part, pooling, columns in (("lexicon", "last", ("topics",)), ("generated", "mean", ("topics", "styles")),
                                   ("generated", "last", ("topics", "styles"))):
        acts = side.parts.get((part, pooling))
        if acts is None or part not in keep or len(keep[part]) < 4:
            continue
        sub = corpus[part].subset(keep[part])
        idx = torch.as_tensor(keep[part])
        labels = {c: list(getattr(sub, c)) for c in columns}
        try:
            r, n = group_contrasts({l: a[idx] for l, a in acts.items()}, sub.sources, labels, min_size=2)
        except ValueError:
            continue
        for l, a in r.items():
            rows.setdefault(l, []).append(a)
        names += [f"{pooling}:{x}" for x in n]
    return {l: torch.cat(v) for l, v in rows.items()}, names


def fit_variant(name, parent, child, corpus, keep, max_rows, mapping):
    """A fitted Transfer for estimator ``name`` on the kept corpus rows."""
    from xsteer.transfer import (DifferenceAdapter, ExplicitMap, StandardizedRidgeAdapter, Transfer, RidgeAdapter,
                                 AnchorCoordinateAdapter, CovarianceProbeAdapter, VocabBridge)

    tasks_only = {"tasks": keep["tasks"]}
    no_lex = {k: v for k, v in keep.items() if k != "lexicon"}
    lm, rest = name.split("+", 1)
    layer_map = ExplicitMap(mapping[lm]) if isinstance(mapping, dict) and lm in mapping else (
        ExplicitMap(mapping) if lm == "fit" else lm)
    est, data = rest.split("/")
    adapters = {"ridge": RidgeAdapter(ALPHAS), "ridge_std": StandardizedRidgeAdapter(ALPHAS),
                "whiten": StandardizedRidgeAdapter(ALPHAS, whiten=True),
                "anchor_coords": AnchorCoordinateAdapter(ALPHAS), "probe_cov": CovarianceProbeAdapter(ALPHAS),
                "difference": DifferenceAdapter(ALPHAS), "diffprior": DifferenceAdapter(ALPHAS, prior=1.0),
                "vocab": VocabBridge(ALPHAS)}
    adapter = adapters[est]
    tr = Transfer(layer_map, adapter)
    if est == "vocab":
        return tr, None
    if est in ("difference", "diffprior"):
        dp, names = _contrasts(parent, corpus, keep)
        if not dp:
            raise ValueError("No contrast groups in this corpus (task questions carry no topic or style labels).")
        dc, _ = _contrasts(child, corpus, keep)
        groups = np.unique([n.split(":", 1)[1] for n in names], return_inverse=True)[1]  # poolings of a group together
        kept = {"tasks": tasks_only, "corpus": no_lex, "all": keep}[data] if est == "diffprior" else None
        states = None
        if kept is not None:
            sp, gs = _subsample(*_stack(parent, corpus, kept, ("last", "mean")), max_rows)
            sc, _ = _subsample(*_stack(child, corpus, kept, ("last", "mean")), max_rows)
            states = (sp, sc)
        return _fit_differences(tr, dp, dc, groups, states, parent.info, child.info), len(names)
    kept = {"tasks": tasks_only, "corpus": no_lex, "all": keep}[data]
    sp, groups = _subsample(*_stack(parent, corpus, kept, ("last", "mean")), max_rows)
    sc, _ = _subsample(*_stack(child, corpus, kept, ("last", "mean")), max_rows)
    return tr.fit_activations(sp, sc, parent.info, child.info, groups=groups), len(groups)


def _fit_differences(tr, dp, dc, groups, states, pinfo, cinfo):
    """Transfer with difference adapters per mapped layer pair (the layer map is explicit or greedy)."""
    import copy

    layer_map = copy.deepcopy(tr.layer_map).fit(pinfo.n_layers, cinfo.n_layers)
    tr.adapters_ = {}
    for c, p in layer_map.mapping_.items():
        st = None if states is None else (states[0][p], states[1][c])
        tr.adapters_[c] = tr.adapter.clone().fit(dp[p], dc[c], groups, states=st)
    tr.layer_map_, tr.parent_, tr.child_ = layer_map, pinfo, cinfo
    tr.anchor_hash_, tr.n_anchors_ = "screen", len(groups)
    return tr


def _vocab_transfer(tr, vocab_rows, pinfo, cinfo, mapping):
    import copy

    from xsteer.transfer import ExplicitMap

    tr.layer_map = ExplicitMap(mapping)
    layer_map = copy.deepcopy(tr.layer_map).fit(pinfo.n_layers, cinfo.n_layers)
    one = tr.adapter.clone().fit(*vocab_rows)
    tr.adapters_ = {c: one for c in layer_map.mapping_}
    tr.layer_map_, tr.parent_, tr.child_ = layer_map, pinfo, cinfo
    tr.anchor_hash_, tr.n_anchors_ = "vocab", len(vocab_rows[0])
    return tr


def layer_mappings(parent, child, corpus, keep, max_rows):
    """child -> parent layer pairings by name: "fit" (FitMap on last-token states of the kept
    corpus), "fitd" (FitMap on its contrasts, when it has labelled groups), "proportional", "greedy"."""
    from xsteer.transfer import FitMap, GreedyMap, ProportionalMap

    lp, lc = parent.info.n_layers, child.info.n_layers
    sp, _ = _subsample(*_stack(parent, corpus, keep, ("last",)), max_rows)
    sc, _ = _subsample(*_stack(child, corpus, keep, ("last",)), max_rows)
    out = {"fit": FitMap().fit(lp, lc, sp, sc).mapping_, "proportional": ProportionalMap().fit(lp, lc).mapping_,
           "greedy": GreedyMap().fit(lp, lc).mapping_}
    dp, _ = _contrasts(parent, corpus, keep)
    if dp:
        dc, _ = _contrasts(child, corpus, keep)
        out["fitd"] = FitMap(max_rows=len(dp[0])).fit(lp, lc, dp, dc).mapping_
    return out


def fit_any(name, parent, child, corpus, keep, max_rows, mappings, concept, vocab_cache):
    """(fitted Transfer, rows) for any estimator name of this screen, the vocabulary bridge included
    (its shared words less the concept's topic)."""
    from xsteer.transfer import Transfer, hold_out
    from xsteer.transfer.corpus import lexicon_corpus

    if "+vocab" not in name:
        return fit_variant(name, parent, child, corpus, keep, max_rows, mappings)
    if "rows" not in vocab_cache:
        vocab_cache["rows"] = _vocab_rows(parent.name, child.name)
    words, xp, xc = vocab_cache["rows"]
    kept = set(hold_out(lexicon_corpus(words, templates=("{w}",)), concept).texts)
    idx = torch.as_tensor([i for i, w in enumerate(words) if w in kept])
    tr = _vocab_transfer(Transfer("greedy", "vocab"), (xp[idx], xc[idx]), parent.info, child.info,
                         mappings[name.split("+")[0]])
    return tr, len(idx)


def readout(tr, pa, ca, own, n_layers_child, band, seed=0):
    """Summary numbers of one fitted transfer on one concept."""
    from xsteer.fidelity.strength import auroc

    pvec = _mean_diff(pa.train_pos, pa.train_neg)
    rng = np.random.default_rng(seed)
    per_layer = {}
    for c, p in tr.layer_map_.mapping_.items():
        ad = tr.adapters_[c]
        v = ad.transform(torch.tensor(pvec[p])).double().numpy()
        tp, tn = _np(ca.test_pos[c]) @ v, _np(ca.test_neg[c]) @ v
        rnd = ad.transform(torch.tensor(rng.standard_normal((20, len(pvec[p]))))).double().numpy().T
        mr = auroc(_np(ca.test_pos[c]) @ rnd, _np(ca.test_neg[c]) @ rnd)
        per_layer[c] = {"parent": p, "auroc": float(auroc(tp, tn)), "cos_own": float(v @ own[c] / np.linalg.norm(v) / np.linalg.norm(own[c])),
                        "r2": float(ad.score_), "mapped_random_mean": float(np.mean(mr)), "mapped_random_p95": float(np.quantile(mr, 0.95))}
    aucs = [per_layer[c]["auroc"] if c in per_layer else 0.5 for c in range(n_layers_child)]
    return {
        "auroc_all_layers": float(np.mean(aucs)),
        "auroc_band": float(np.mean([aucs[c] for c in band])),
        "cos_own_mean": float(np.mean([r["cos_own"] for r in per_layer.values()])),
        "cos_own_band": float(np.mean([per_layer[c]["cos_own"] for c in band if c in per_layer] or [float("nan")])),
        "r2_mean": float(np.mean([r["r2"] for r in per_layer.values()])),
        "mapped_random_p95_mean": float(np.mean([r["mapped_random_p95"] for r in per_layer.values()])),
        "layers_reached": len(per_layer),
        "per_layer": per_layer,
    }


def own_readout(ca):
    from xsteer.fidelity.strength import auroc

    own = _mean_diff(ca.train_pos, ca.train_neg)
    aucs = {l: float(auroc(_np(ca.test_pos[l]) @ own[l], _np(ca.test_neg[l]) @ own[l])) for l in own}
    rng = np.random.default_rng(1)
    rand = {}
    for l in own:
        r = rng.standard_normal((len(own[l]), 100))
        a = auroc(_np(ca.test_pos[l]) @ r, _np(ca.test_neg[l]) @ r)
        rand[l] = float(np.quantile(a, 0.95))
    return own, aucs, rand


DEFAULT_ESTIMATORS = (
    "greedy+ridge/tasks", "proportional+ridge/tasks", "proportional+ridge_std/tasks", "proportional+ridge_std/corpus",
    "proportional+ridge_std/all", "fit+ridge_std/all", "fitd+ridge_std/all", "proportional+whiten/all",
    "proportional+difference/all", "fitd+difference/all", "proportional+diffprior/all",
    "proportional+anchor_coords/all", "proportional+probe_cov/all", "proportional+vocab/none",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache", default="/work/cache/xsteer-acts")
    ap.add_argument("--concepts", default="music,sport,medicine,space,cooking,sentiment,language")
    ap.add_argument("--estimators", default=",".join(DEFAULT_ESTIMATORS))
    ap.add_argument("--reverse", action="store_true", help="SmolLM2 -> Gemma")
    ap.add_argument("--band", default=None, help="child steering band, e.g. 25-29 (default: the top 5 layers)")
    ap.add_argument("--max-rows", type=int, default=3000)
    ap.add_argument("--out", default="/work/cache/screen.json")
    args = ap.parse_args()
    from xsteer.transfer import hold_out

    concepts, corpus, sides = load_all(Path(args.cache), args.data_dir)
    pname, cname = (CHILD, PARENT) if args.reverse else (PARENT, CHILD)
    parent, child = sides[pname], sides[cname]
    n_child = child.info.n_layers
    band = list(range(n_child - 5, n_child)) if args.band is None else list(range(*(lambda a, b: (a, b + 1))(*map(int, args.band.split("-")))))
    vocab_cache: dict = {}
    results = []
    by_name = {c.name: c for c in concepts}
    for c in (by_name[n] for n in args.concepts.split(",")):
        t0 = time.perf_counter()
        keep = {part: np.flatnonzero(np.isin(corp.texts, hold_out(corp, c).texts)) for part, corp in corpus.items()}
        pa, ca = parent.concept(c), child.concept(c)
        own, own_auc, rand_p95 = own_readout(ca)
        mappings = layer_mappings(parent, child, corpus, keep, args.max_rows)
        row = {"concept": c.name, "direction": f"{pname} -> {cname}", "kept": {k: len(v) for k, v in keep.items()},
               "held_out_of": {k: len(corpus[k]) for k in keep}, "maps": mappings,
               "own_auroc_all_layers": float(np.mean(list(own_auc.values()))),
               "own_auroc_band": float(np.mean([own_auc[l] for l in band])),
               "random_p95_mean": float(np.mean(list(rand_p95.values()))), "estimators": {}}
        for name in args.estimators.split(","):
            t1 = time.perf_counter()
            tr, n_rows = fit_any(name, parent, child, corpus, keep, args.max_rows, mappings, c, vocab_cache)
            res = readout(tr, pa, ca, own, n_child, band)
            res.update({"rows": n_rows, "fit_s": round(time.perf_counter() - t1, 1)})
            row["estimators"][name] = res
            print(json.dumps({"concept": c.name, "estimator": name, **{k: (round(v, 3) if isinstance(v, float) else v)
                              for k, v in res.items() if k != "per_layer"}}), flush=True)
        row["s"] = round(time.perf_counter() - t0, 1)
        results.append(row)
        Path(args.out).write_text(json.dumps(results, indent=1))


def _vocab_rows(pname, cname):
    """(shared one-token words, their parent and child embedding rows); loads both models once."""
    from xsteer.models import load_model
    from xsteer.transfer import embedding_rows, shared_words

    parent, child = load_model(pname), load_model(cname)
    words = shared_words(parent.tokenizer, child.tokenizer)
    return (words, *embedding_rows(parent, child, words))


if __name__ == "__main__":
    main()
