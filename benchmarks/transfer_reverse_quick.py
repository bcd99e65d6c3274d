"""The reverse direction (SmolLM2-135M -> Gemma-3-270M) with the default Transfer(): the quick suite
(SuiteConfig.quick, no side effects) at the band Gemma's own accessibility profile gives, each concept
held out of the fit. ``python -m benchmarks.transfer_reverse_quick sentiment,music`` (XSTEER_DATA_DIR set);
results in docs/results.md."""

from __future__ import annotations

import os
import sys
import time

import xsteer as xs
from xsteer.fidelity.suite import SuiteConfig, fidelity_suite
from xsteer.transfer import accessibility_profile, accessible_band
from xsteer.transfer.corpus import generated_corpus


def main() -> None:
    t0 = time.perf_counter()
    gemma, smol = xs.load_model("gemma-3-270m"), xs.load_model("smollm2-135m")
    profile = accessibility_profile(gemma, list(generated_corpus().sample(64, seed=0).texts))
    band = accessible_band(profile)
    print("gemma profile", [round(float(x), 2) for x in profile], "band", band, flush=True)
    concepts = sys.argv[1].split(",") if len(sys.argv) > 1 else ["sentiment", "music"]
    res = fidelity_suite(gemma, smol, concepts, config=SuiteConfig.quick(side_effect_items=0),
                         directions=["child_to_parent"], layers={c: band for c in concepts},
                         data_dir=os.environ.get("XSTEER_DATA_DIR"), progress=False)
    print(res.to_markdown(), flush=True)
    print("seconds", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
