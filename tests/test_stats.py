"""xsteer.stats against independent computations: scipy's binomial test, hand-worked Holm values,
a naive index-resampling bootstrap, normal-approximation intervals and coverage simulations."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from xsteer.stats import (
    Comparison,
    Estimate,
    accuracy_ci,
    compare,
    flips,
    holm,
    mcnemar_exact,
    paired_bootstrap_delta,
)


def _pair(n: int, p_a: float, p_b: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(n) < p_a, rng.random(n) < p_b


def _naive_bootstrap(stat, arrays, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    """Reference bootstrap: one index vector per resample, applied to every array jointly."""
    rng = np.random.default_rng(seed)
    n = arrays[0].size
    draws = [stat(*(x[idx] for x in arrays)) for idx in rng.integers(0, n, size=(n_boot, n))]
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# --- flips and McNemar -------------------------------------------------------------------------


def test_flips_counts_hand_example():
    a = [1, 1, 0, 0, 1, 0, 1]
    b = [1, 0, 1, 0, 0, 1, 1]
    # pairs: (1,1) (1,0) (0,1) (0,0) (1,0) (0,1) (1,1)
    f = flips(a, b)
    assert (f.right_to_wrong, f.wrong_to_right, f.both_right, f.both_wrong) == (2, 2, 2, 1)
    assert f.n == 7


@pytest.mark.parametrize("case", range(60))
def test_mcnemar_matches_scipy_binomtest(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 300))
    a, b = _pair(n, rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), seed=1000 + case)
    result = mcnemar_exact(a, b)
    b01 = int(np.sum(~a & b))
    b10 = int(np.sum(a & ~b))
    assert (result.wrong_to_right, result.right_to_wrong) == (b01, b10)
    assert (result.b01, result.b10) == (b01, b10)
    expected = 1.0 if b01 + b10 == 0 else binomtest(b01, b01 + b10, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_mcnemar_hand_worked_and_symmetric():
    # 5 discordant items, all right->wrong: p = 2 * 0.5**5 = 0.0625
    a = np.array([1, 1, 1, 1, 1, 0, 1], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 0, 1], dtype=bool)
    forward = mcnemar_exact(a, b)
    assert (forward.wrong_to_right, forward.right_to_wrong) == (0, 5)
    assert forward.p_value == pytest.approx(0.0625)
    backward = mcnemar_exact(b, a)
    assert (backward.wrong_to_right, backward.right_to_wrong) == (5, 0)
    assert backward.p_value == pytest.approx(0.0625)


def test_mcnemar_no_discordant_items_gives_p_one():
    a = np.array([True, False, True])
    result = mcnemar_exact(a, a.copy())
    assert result.n_discordant == 0
    assert result.p_value == 1.0


def test_mcnemar_balanced_discordance_is_capped_at_one():
    # b01 = b10 = 3: 2 * P(X <= 3; 6, 0.5) = 2 * 42/64 > 1, capped
    a = [1, 1, 1, 0, 0, 0]
    b = [0, 0, 0, 1, 1, 1]
    assert mcnemar_exact(a, b).p_value == 1.0


# --- Holm ---------------------------------------------------------------------------------------


def test_holm_hand_worked_example():
    # m = 4, sorted p: 0.005 (idx 3), 0.01 (idx 0), 0.03 (idx 2), 0.04 (idx 1)
    # scaled: 4*0.005 = 0.02, 3*0.01 = 0.03, 2*0.03 = 0.06, 1*0.04 = 0.04
    # running max: 0.02, 0.03, 0.06, 0.06  -> back in input order:
    # idx0 = 0.03, idx1 = 0.06, idx2 = 0.06, idx3 = 0.02
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_mapping_keeps_keys_and_caps_at_one():
    # m = 3, sorted: a 0.2 -> 0.6, b 0.5 -> 1.0, c 0.9 -> 0.9 -> running max 1.0 (capped)
    out = holm({"b": 0.5, "a": 0.2, "c": 0.9})
    assert list(out) == ["b", "a", "c"]
    assert out == pytest.approx({"a": 0.6, "b": 1.0, "c": 1.0})


def test_holm_is_monotone_bounded_and_at_least_raw():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = rng.uniform(0, 1, size=int(rng.integers(1, 20))) ** 3
        adj = np.array(holm(p.tolist()))
        order = np.argsort(p)
        assert np.all(np.diff(adj[order]) >= 0)
        assert np.all(adj >= p) and np.all(adj <= 1)
        # Holm never adjusts by more than Bonferroni
        assert np.all(adj <= np.minimum(1, p.size * p) + 1e-15)


def test_holm_edge_shapes():
    assert holm([]) == []
    assert holm([0.3]) == pytest.approx([0.3])
    assert holm([0.01, 0.01]) == pytest.approx([0.02, 0.02])


@pytest.mark.parametrize("bad", [[0.1, 1.5], [-0.1], [float("nan")], [[0.1, 0.2]]])
def test_holm_rejects_invalid_p_values(bad):
    with pytest.raises(ValueError, match="p-value"):
        holm(bad)


# --- accuracy bootstrap -------------------------------------------------------------------------


def test_accuracy_point_estimate_and_str():
    x = np.r_[np.ones(122, bool), np.zeros(78, bool)]
    est = accuracy_ci(x)
    assert est.value == 0.61
    assert est.low < 0.61 < est.high
    assert est.n == 200
    assert str(est) == f"0.610 [{est.low:.3f}, {est.high:.3f}] (n=200)"


def test_accuracy_ci_matches_naive_index_bootstrap():
    x = np.random.default_rng(5).random(150) < 0.63
    est = accuracy_ci(x, n_boot=10_000, seed=1)
    low, high = _naive_bootstrap(np.mean, [x], n_boot=10_000, alpha=0.05, seed=2)
    assert est.low == pytest.approx(low, abs=0.01)
    assert est.high == pytest.approx(high, abs=0.01)


def test_accuracy_ci_approximates_normal_interval_for_large_n():
    x = np.random.default_rng(6).random(5000) < 0.4
    p = x.mean()
    half = norm.ppf(0.975) * np.sqrt(p * (1 - p) / x.size)
    est = accuracy_ci(x, n_boot=20_000, seed=0)
    assert est.low == pytest.approx(p - half, abs=1e-3)
    assert est.high == pytest.approx(p + half, abs=1e-3)


def test_accuracy_ci_coverage_near_nominal():
    rng = np.random.default_rng(7)
    true_p, n = 0.7, 100
    covered = 0
    for i in range(200):
        x = rng.random(n) < true_p
        est = accuracy_ci(x, n_boot=2000, seed=i)
        covered += est.low <= true_p <= est.high
    assert 0.88 <= covered / 200 <= 0.99


def test_accuracy_ci_alpha_widens_interval():
    x = np.random.default_rng(8).random(300) < 0.5
    narrow = accuracy_ci(x, alpha=0.2)
    wide = accuracy_ci(x, alpha=0.01)
    assert wide.low < narrow.low and narrow.high < wide.high
    assert narrow.level == pytest.approx(0.8)


def test_accuracy_ci_degenerate_all_correct():
    est = accuracy_ci([1, 1, 1, 1])
    assert (est.value, est.low, est.high) == (1.0, 1.0, 1.0)


def test_bootstrap_is_deterministic_given_seed():
    a, b = _pair(400, 0.5, 0.6, seed=9)
    assert accuracy_ci(a, seed=3) == accuracy_ci(a, seed=3)
    assert paired_bootstrap_delta(a, b, seed=3) == paired_bootstrap_delta(a, b, seed=3)
    assert accuracy_ci(a, seed=3) != accuracy_ci(a, seed=4)


def test_bootstrap_is_fast_for_10k_resamples_of_2000_items():
    a, b = _pair(2000, 0.5, 0.55, seed=10)
    start = time.perf_counter()
    accuracy_ci(a, n_boot=10_000)
    paired_bootstrap_delta(a, b, n_boot=10_000)
    assert time.perf_counter() - start < 1.0


# --- paired delta -------------------------------------------------------------------------------


def test_paired_delta_identical_arrays_is_zero_degenerate():
    a = np.random.default_rng(11).random(250) < 0.5
    est = paired_bootstrap_delta(a, a.copy())
    assert (est.value, est.low, est.high) == (0.0, 0.0, 0.0)


def test_paired_delta_all_flipped_up_is_one_degenerate():
    est = paired_bootstrap_delta(np.zeros(40, bool), np.ones(40, bool))
    assert (est.value, est.low, est.high) == (1.0, 1.0, 1.0)


def test_paired_delta_matches_naive_joint_resampling():
    a, b = _pair(200, 0.55, 0.62, seed=12)
    est = paired_bootstrap_delta(a, b, n_boot=10_000, seed=0)
    assert est.value == pytest.approx(b.mean() - a.mean())
    low, high = _naive_bootstrap(
        lambda x, y: y.mean() - x.mean(), [a, b], n_boot=10_000, alpha=0.05, seed=1
    )
    assert est.low == pytest.approx(low, abs=0.01)
    assert est.high == pytest.approx(high, abs=0.01)


def test_paired_delta_approximates_normal_paired_interval():
    # correlated pair: b is a with 10% of items re-drawn
    rng = np.random.default_rng(13)
    n = 4000
    a = rng.random(n) < 0.5
    redraw = rng.random(n) < 0.1
    b = np.where(redraw, rng.random(n) < 0.7, a)
    p01 = np.mean(~a & b)
    p10 = np.mean(a & ~b)
    d = p01 - p10
    half = norm.ppf(0.975) * np.sqrt((p01 + p10 - d**2) / n)
    est = paired_bootstrap_delta(a, b, n_boot=20_000, seed=0)
    assert est.low == pytest.approx(d - half, abs=1e-3)
    assert est.high == pytest.approx(d + half, abs=1e-3)
    # the paired interval is much narrower than treating a and b as independent samples
    var_a, var_b = a.mean() * (1 - a.mean()), b.mean() * (1 - b.mean())
    unpaired_half = norm.ppf(0.975) * np.sqrt((var_a + var_b) / n)
    assert est.high - est.low < unpaired_half


# --- compare ------------------------------------------------------------------------------------


def test_compare_combines_parts_and_applies_holm():
    base, strong = _pair(300, 0.5, 0.7, seed=14)
    weak = np.where(np.random.default_rng(15).random(300) < 0.05, ~base, base)
    result = compare(base, {"strong": strong, "weak": weak}, n_boot=2000, seed=4)
    assert set(result) == {"strong", "weak"}
    for name, cond in [("strong", strong), ("weak", weak)]:
        c = result[name]
        assert isinstance(c, Comparison) and c.name == name
        assert c.baseline.value == pytest.approx(base.mean())
        assert c.accuracy.value == pytest.approx(cond.mean())
        assert c.delta.value == pytest.approx(cond.mean() - base.mean())
        b01, b10 = int(np.sum(~base & cond)), int(np.sum(base & ~cond))
        assert (c.flips.wrong_to_right, c.flips.right_to_wrong) == (b01, b10)
        assert c.mcnemar.p_value == pytest.approx(binomtest(b01, b01 + b10, 0.5).pvalue)
    # Holm with m = 2 by hand: smaller p doubled, larger p kept unless below it
    p = {k: v.mcnemar.p_value for k, v in result.items()}
    lo, hi = sorted(p, key=p.get)
    assert result[lo].p_holm == pytest.approx(min(1, 2 * p[lo]))
    assert result[hi].p_holm == pytest.approx(min(1, max(2 * p[lo], p[hi])))


def test_compare_condition_results_do_not_depend_on_other_conditions():
    base, cond = _pair(200, 0.5, 0.6, seed=16)
    other = ~cond
    alone = compare(base, {"c": cond}, n_boot=1000)["c"]
    together = compare(base, {"o": other, "c": cond}, n_boot=1000)["c"]
    assert alone.accuracy == together.accuracy and alone.delta == together.delta


def test_compare_to_dict_is_json_serialisable():
    base, cond = _pair(120, 0.5, 0.6, seed=17)
    c = compare(base, {"steered": cond}, n_boot=500)["steered"]
    loaded = json.loads(json.dumps(c.to_dict()))
    assert loaded["name"] == "steered"
    assert loaded["delta"]["value"] == pytest.approx(cond.mean() - base.mean())
    assert loaded["mcnemar"]["p_value"] == pytest.approx(c.mcnemar.p_value)
    assert set(loaded["flips"]) == {"right_to_wrong", "wrong_to_right", "both_right", "both_wrong"}
    assert Estimate(**loaded["accuracy"]) == c.accuracy


def test_compare_no_conditions_is_empty():
    assert compare([1, 0, 1], {}) == {}


# --- input validation ---------------------------------------------------------------------------


def test_length_mismatch_names_the_fix():
    with pytest.raises(ValueError, match="same items"):
        mcnemar_exact([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_delta([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match=r"conditions\['x'\].*same items"):
        compare([1, 0, 1], {"x": [1, 0]})


@pytest.mark.parametrize("fn", [accuracy_ci, lambda x: flips(x, x), lambda x: compare(x, {})])
def test_empty_input_rejected(fn):
    with pytest.raises(ValueError, match="empty.*at least one item"):
        fn([])


@pytest.mark.parametrize(
    "bad", [[0, 1, 2], [0.5, 1.0], [1.0, float("nan")], ["yes", "no"], [True, None]]
)
def test_non_boolean_values_rejected(bad):
    with pytest.raises(ValueError, match="booleans or 0/1"):
        accuracy_ci(bad)
    with pytest.raises(ValueError, match="booleans or 0/1"):
        mcnemar_exact([1] * len(bad), bad)


def test_zero_one_numbers_accepted_like_booleans():
    as_int = accuracy_ci([1, 0, 1, 1], n_boot=100)
    as_float = accuracy_ci([1.0, 0.0, 1.0, 1.0], n_boot=100)
    as_bool = accuracy_ci([True, False, True, True], n_boot=100)
    assert as_int == as_float == as_bool


def test_non_flat_input_rejected():
    with pytest.raises(ValueError, match="flat sequence"):
        accuracy_ci([[1, 0], [0, 1]])


@pytest.mark.parametrize("kwargs", [{"n_boot": 0}, {"n_boot": 2.5}, {"alpha": 0}, {"alpha": 1.2}])
def test_bad_bootstrap_settings_rejected(kwargs):
    with pytest.raises(ValueError, match="n_boot|alpha"):
        accuracy_ci([1, 0, 1], **kwargs)
    with pytest.raises(ValueError, match="n_boot|alpha"):
        paired_bootstrap_delta([1, 0, 1], [0, 0, 1], **kwargs)
