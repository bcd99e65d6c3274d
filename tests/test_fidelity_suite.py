"""The suite's quick mode on the real pair (Gemma-3-270M ↔ SmolLM2-135M), as CI runs it: every row
is there, each number sits beside its controls, and the controls behave as controls should on models
that hold the concepts (the child's own vector reads its concept; random
directions of the same norm barely move the judge at the budget where child_own does). Measured
cost: docs/performance.md ("The fidelity suite")."""

from __future__ import annotations

import numpy as np
import pytest

from xsteer.fidelity.suite import SuiteConfig, fidelity_suite


@pytest.mark.real
def test_quick_suite_on_the_real_pair(gemma, smollm2, data_dir):
    # one direction at the child's known bands (docs/results.md), so CI skips the band search and Gemma's
    # 262k-token head; `xsteer suite --quick` runs both directions with the search
    res = fidelity_suite(gemma, smollm2, ["sentiment", "language"], config=SuiteConfig.quick(), data_dir=data_dir,
                         directions=("parent_to_child",), layers={"sentiment": range(24, 29), "language": range(20, 25)})
    assert [(r.direction, r.concept) for r in res.rows] == [("parent_to_child", c) for c in ("sentiment", "language")]
    table = res.table()
    for r in res.rows:
        (s,) = r.readout.summary()
        assert s["child_own_all_layers"] > 0.8  # the child holds the concept (language so plainly that random
        assert s["random_p95_all_layers"] >= 0.5  # directions read it too: the random p95 is the bar, not 0.5)
        assert {"mapped_random_all_layers", "wrong_concept_all_layers", "child_own_k4_all_layers"} <= set(s)
        if r.steering is None:
            assert "none of the steering band" in r.note
            continue
        d = r.steering
        assert {"transferred", "child_own", "wrong_concept"} <= set(d.shift_at_budget)
        assert {"random", "mapped_random"} <= set(d.bands_at_budget) and d.exchange_rate is not None
        assert d.prompting is not None and d.side_effects is not None and d.side_effects.n_items == 20
        assert set(d.anti_steerability) == set(d.curves) and all(0 <= a <= 1 for a in d.anti_steerability.values())
        own = d.shift_at_budget["child_own"].value
        assert own > 0 and d.bands_at_budget["random"].max_abs < own
    assert len(table) == 2 and np.isfinite(table["readout_transferred_all_layers"]).all()
    assert res.timing["total_s"] > 0 and "| Transfer() | sentiment |" in res.to_markdown()
