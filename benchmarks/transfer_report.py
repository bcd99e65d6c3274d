"""Markdown tables from the JSON of ``benchmarks.transfer_screen``, ``transfer_steer`` and
``transfer_corpus_curve`` (for docs/results.md):

    python -m benchmarks.transfer_report screen FILE.json [FILE2.json ...]
    python -m benchmarks.transfer_report steer FILE.json [...]
    python -m benchmarks.transfer_report curve FILE.json
"""

from __future__ import annotations

import json
import sys

import numpy as np


def screen(paths):
    rows = [r for p in paths for r in json.load(open(p))]
    names = list(dict.fromkeys(k for r in rows for k in r["estimators"]))
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    for metric, label in (("auroc_all_layers", "readout AUROC, mean over all child layers"),
                          ("auroc_band", "readout AUROC, mean over the top-5 child layers"),
                          ("cos_own_band", "cos(transferred, child-own), mean over the top-5 child layers")):
        for direction in dict.fromkeys(r["direction"] for r in rows):
            sub = {r["concept"]: r for r in rows if r["direction"] == direction}
            print(f"\n**{label}** ({direction})\n")
            print("| estimator | " + " | ".join(concepts) + " | mean |")
            print("|---|" + "---|" * (len(concepts) + 1))
            ref = {"auroc_all_layers": "own_auroc_all_layers", "auroc_band": "own_auroc_band"}.get(metric)
            if ref:
                vals = [sub[c][ref] for c in concepts if c in sub]
                print("| *child-own* | " + " | ".join(f"{sub[c][ref]:.3f}" if c in sub else "–" for c in concepts)
                      + f" | {np.mean(vals):.3f} |")
            for n in names:
                vals = [sub[c]["estimators"][n][metric] for c in concepts if c in sub and n in sub[c]["estimators"]]
                cells = [f"{sub[c]['estimators'][n][metric]:.3f}" if c in sub and n in sub[c]["estimators"] else "–"
                         for c in concepts]
                print(f"| {n} | " + " | ".join(cells) + f" | {np.mean(vals):.3f} |")


def _ci(e):
    return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"


def steer(paths, tag=""):
    """One table per file and budget: ``tag`` "" = the largest NLL increase both reach, "_fixed" = the
    fixed budget of the run."""
    for p in paths:
        d = json.load(open(p))
        for tag in ("_fixed", ""):
            rows = [r for r in d["results"] if "kinds" + tag in r]
            if not rows:
                continue
            which = f"fixed NLL budget +{rows[0]['fixed_budget_nll']} nats/token" if tag else "largest NLL increase both reach"
            print(f"\n**{d['direction']}**, band {d['band'][0]}–{d['band'][-1]}, {which}\n")
            kinds = list(dict.fromkeys(k for r in rows for k in r["kinds" + tag] if k != "own"))
            print("| concept | NLL budget | child-own shift [95% CI] | " + " | ".join(f"{k} [95% CI]" for k in kinds)
                  + " | random shift mean (p05, p95) | mapped-random shifts |")
            print("|---|---|---|" + "---|" * len(kinds) + "---|---|")
            for r in rows:
                ks = r["kinds" + tag]
                own = ks["own"]["shift"]
                cells = [(_ci(ks[k]["efficiency"]) if ks.get(k, {}).get("efficiency") else "–") for k in kinds]
                rd = r["random_at_budget" + tag]
                rand = f"{rd['mean']:+.3f} ({rd['p05']:+.3f}, {rd['p95']:+.3f})" if rd else "–"
                mr = ", ".join(f"{x:+.3f}" for x in r.get("mapped_random_at_budget" + tag, []))
                budget = r["fixed_budget_nll"] if tag else r["budget_nll"]
                print(f"| {r['concept']} | {budget:.2f} | {own['value']:+.3f} [{own['low']:+.3f}, {own['high']:+.3f}] | "
                      + " | ".join(cells) + f" | {rand} | {mr} |")


def curve(paths):
    rows = [r for p in paths for r in json.load(open(p)) if "error" not in r]
    ests = list(dict.fromkeys(r["estimator"] for r in rows))
    corpora = list(dict.fromkeys(r["corpus"] for r in rows))
    concepts = list(dict.fromkeys(r["concept"] for r in rows))
    for est in ests:
        print(f"\n**{est}**: readout AUROC over all child layers / top-5 layers, mean over {len(concepts)} concepts\n")
        print("| corpus | texts (tasks, generated, lexicon) | all layers | top-5 layers | cos(own) top-5 | " + " | ".join(concepts) + " |")
        print("|---|---|---|---|---|" + "---|" * len(concepts))
        for corp in corpora:
            sub = [r for r in rows if r["estimator"] == est and r["corpus"] == corp]
            if not sub:
                continue
            t = sub[0]["texts"]
            counts = f"{t.get('tasks', 0)}, {t.get('generated', 0)}, {t.get('lexicon', 0)}"
            by_c = {r["concept"]: r for r in sub}
            print(f"| {corp} | {counts} | {np.mean([r['auroc_all_layers'] for r in sub]):.3f} | "
                  f"{np.mean([r['auroc_band'] for r in sub]):.3f} | {np.nanmean([r['cos_own_band'] for r in sub]):.3f} | "
                  + " | ".join(f"{by_c[c]['auroc_band']:.3f}" if c in by_c else "–" for c in concepts) + " |")


if __name__ == "__main__":
    {"screen": screen, "steer": steer, "curve": curve}[sys.argv[1]](sys.argv[2:])
