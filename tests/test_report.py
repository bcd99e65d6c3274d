"""The report's random-direction control against a hand-worked example."""

from __future__ import annotations

import pytest

from xsteer.report import render_markdown
from xsteer.results import ConditionResult, TransferResult
from xsteer.stats import RunStatistics, run_statistics

LAM = 0.1


def _cond(name: str, kind: str, test: list[int], its: list[int]) -> ConditionResult:
    as_bool = lambda xs: [bool(x) for x in xs]  # noqa: E731
    return ConditionResult(
        name, kind, correct={"validation": {LAM: [True]}, "test": {LAM: as_bool(test)}},
        lambda_star=LAM, its_correct=as_bool(its),
    )


@pytest.fixture
def result() -> TransferResult:
    # Test accuracies at λ*: transfer 0.6; randoms 0.4, 0.6, 0.8, 0.2 -> 2 of 4 at least as good.
    # ITS: transfer 0.4; randoms 0.4, 0.2, 0.6, 0.4 -> 3 of 4 at least as good.
    conditions = {
        "transferred": _cond("transferred", "transferred", [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]),
        "random[0]": _cond("random[0]", "random", [1, 1, 0, 0, 0], [1, 0, 1, 0, 0]),
        "random[1]": _cond("random[1]", "random", [0, 1, 1, 1, 0], [0, 0, 0, 0, 1]),
        "random[2]": _cond("random[2]", "random", [1, 1, 1, 1, 0], [1, 1, 1, 0, 0]),
        "random[3]": _cond("random[3]", "random", [0, 0, 0, 0, 1], [0, 1, 0, 1, 0]),
    }
    return TransferResult(
        config=dict(parent="p", child="c", task="t", method="pca", layer_map="greedy", adapter="ridge",
                    scale="absolute", lambdas=[LAM], seed=0),
        item_ids={"validation": ["v0"], "test": [f"t{i}" for i in range(5)]},
        baseline={"validation": [True], "test": [True, False, True, False, False]},
        conditions=conditions,
    )


def test_random_summary_counts_randoms_at_least_as_good(result):
    r = run_statistics(result.baseline, result.conditions, n_boot=200).random
    star, its = r["lambda_star"], r["its"]
    assert star.n == its.n == 4
    assert (star.mean, star.min, star.max, star.transferred) == pytest.approx((0.5, 0.2, 0.8, 0.6))
    assert (star.n_at_least, star.p) == (2, pytest.approx(3 / 5))
    assert (its.mean, its.min, its.max, its.transferred) == pytest.approx((0.4, 0.2, 0.6, 0.4))
    assert (its.n_at_least, its.p) == (3, pytest.approx(4 / 5))


def test_statistics_are_computed_once_and_survive_a_json_round_trip(result, tmp_path):
    stats = result.statistics
    assert isinstance(stats, RunStatistics)
    comp = stats.comparison("transferred", "lambda_star")
    assert comp.accuracy.value == pytest.approx(0.6) and comp.delta.value == pytest.approx(0.2)
    assert (comp.flips.wrong_to_right, comp.flips.right_to_wrong) == (1, 0)
    assert set(stats.comparisons) == {("transferred", "lambda_star"), ("transferred", "its")}
    loaded = TransferResult.load(result.save(tmp_path / "report.json"))
    assert loaded.statistics == stats


def test_reports_of_earlier_versions_load_under_todays_names(result, tmp_path):
    data = result.to_dict()
    old = data["conditions"].pop("transferred")
    data["conditions"]["transfer"] = {**old, "name": "transfer", "kind": "steered"}
    data["statistics"] = {"comparisons": {"transfer@its": {}}}  # the old string-keyed form
    loaded = TransferResult.from_dict(data)
    assert loaded.conditions["transferred"].kind == "transferred"
    assert loaded.statistics.comparison("transferred", "its").accuracy.value == pytest.approx(0.4)


def test_report_shows_the_count_beside_its_p_value(result):
    text = render_markdown(result)
    assert "| at λ* | 0.500 | 0.200–0.800 | 0.600 | 2 of 4 | 0.6 |" in text
    assert "| ITS | 0.400 | 0.200–0.600 | 0.400 | 3 of 4 | 0.8 |" in text


def test_result_shows_itself_and_plots_its_lambda_curve(result):
    html = result._repr_html_()
    assert "<table>" in html and "transferred" in html and "2 of 4 ≥ transferred" in html
    fig = result.plot()
    (line,) = [t for t in fig.data if t.meta.get("kind") == "transferred" and t.meta.get("role") == "line"]
    assert list(line.x) == [LAM] and line.y[0] == pytest.approx(0.6)  # test accuracy at λ


def test_report_opens_with_what_was_found(result):
    lines = render_markdown(result).splitlines()
    top = lines[lines.index("## What was found") + 2 : lines.index("## Setup")]
    star = next(l for l in top if "at λ*" in l)
    comp = result.statistics.comparison("transferred", "lambda_star")
    assert "0.600" in star and "baseline 0.400" in star and "2 of 4 random directions" in star
    assert ("no significant change" in star) == (comp.p_holm >= 0.05)


def test_concept_arrival_of_an_earlier_report_is_read_typed_and_opens_the_report(result):
    """Earlier report.json files kept the --fidelity summary among the diagnostics, with the band as a
    "25–29" string: read back as ConceptArrival, and the findings line says the same numbers."""
    from xsteer.results import ConceptArrival
    from xsteer.stats import Estimate

    data = result.to_dict()
    data.pop("fidelity")
    data["diagnostics"]["fidelity"] = {"music": {
        "transferred": 0.78, "child_own": 0.87, "random_p95": 0.69, "parent_holds": True,
        "efficiency": {"value": 0.87, "low": 0.6, "high": 1.61, "n": 8, "level": 0.95}, "layers": "25–29"}}
    loaded = TransferResult.from_dict(data)
    want = ConceptArrival(0.78, 0.87, 0.69, True, Estimate(0.87, 0.6, 1.61, 8), (25, 26, 27, 28, 29))
    assert loaded.fidelity == {"music": want} and "fidelity" not in loaded.diagnostics
    assert TransferResult.from_dict(loaded.to_dict()).fidelity == loaded.fidelity
    head = render_markdown(loaded).split("## Setup")[0]
    assert "readout over all child layers 0.78 (child's own vector 0.87, random 95th percentile 0.69)" in head
    assert "steering efficiency 0.87 [0.60, 1.61] of the child's own vector at equal fluency cost (layers 25–29)" in head
