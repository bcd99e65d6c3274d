"""analysis/: figures and tables from hand-built results, checked against independent numpy/scipy."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from scipy.stats import binomtest, spearmanr

from analysis.export import save_figure
from analysis.robustness import format_results_table, gains_figure, results_table, write_results_table
from analysis.similarity import (
    cka_layer_map_figure,
    difference_cka,
    difference_cka_heatmap,
    pc1_correlation_heatmap,
    projection_agreement,
    projection_agreement_heatmap,
    random_correlation_scale,
)
from analysis.tables import to_latex, to_markdown
from xsteer.figures import STYLES, accuracy_vs_lambda, relative_perturbation_figure
from xsteer.results import ConditionResult, TransferResult
from xsteer.vectors import SteeringVectors

LAMS = [0.01, 0.1, 0.5, 1.0]
N_ITEMS = 30
N_RANDOM = 3
PARENTS = ["parentA", "parentB"]
CHILDREN = ["childX", "childY"]


def make_result(parent: str, child: str, seed: int) -> TransferResult:
    """A small synthetic result: steered accuracy rises with λ, random stays near baseline."""
    rng = np.random.default_rng(seed)

    def items(p: float) -> list[bool]:
        return [bool(x) for x in rng.random(N_ITEMS) < p]

    def cond(name: str, kind: str, ps: list[float], its_p: float) -> ConditionResult:
        correct = {s: {lam: items(p) for lam, p in zip(LAMS, ps)} for s in ("val", "test")}
        star = LAMS[int(np.argmax([np.mean(correct["val"][lam]) for lam in LAMS]))]
        return ConditionResult(
            name=name,
            kind=kind,
            correct=correct,
            lambda_star=star,
            its_correct=items(its_p),
            relative_size={l: star / (5.0 + l) for l in range(3)},
        )

    conditions = {
        "transferred": cond("transferred", "transferred", [0.4, 0.5, 0.7, 0.6], 0.75),
        "child_own": cond("child_own", "child_own", [0.4, 0.45, 0.55, 0.5], 0.55),
    }
    for i in range(N_RANDOM):
        conditions[f"random[{i}]"] = cond(f"random[{i}]", "random", [0.4] * 4, 0.4)
    conditions["self_consistency"] = ConditionResult(
        "self_consistency", "self_consistency", its_correct=items(0.5)
    )
    return TransferResult(
        config=dict(parent=parent, child=child, task="synthetic", scale="absolute", lambdas=LAMS),
        item_ids={s: [f"{s}{i}" for i in range(N_ITEMS)] for s in ("val", "test")},
        baseline={"val": items(0.4), "test": items(0.4)},
        conditions=conditions,
        diagnostics={"residual_norms": {str(l): 10.0 * (l + 1) for l in range(3)}},
    )


@pytest.fixture(scope="module")
def results() -> list[TransferResult]:
    return [
        make_result(p, c, seed=10 * i + j)
        for i, p in enumerate(PARENTS)
        for j, c in enumerate(CHILDREN)
    ]


def acc(items: list[bool]) -> float:
    return sum(items) / len(items)


def traces_named(fig: go.Figure, name: str) -> list:
    return [t for t in fig.data if t.name == name]


def holm_reference(p: list[float]) -> list[float]:
    """Holm step-down written out by hand."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def mcnemar_reference(a: list[bool], b: list[bool]) -> float:
    b01 = sum((not x) and y for x, y in zip(a, b))
    b10 = sum(x and (not y) for x, y in zip(a, b))
    return 1.0 if b01 + b10 == 0 else binomtest(b01, b01 + b10, 0.5).pvalue


# ---------------------------------------------------------------------------- accuracy vs λ


def by_meta(fig: go.Figure, **want) -> list:
    """The traces whose ``meta`` has every given key at the given value."""
    return [t for t in fig.data if t.meta and all(t.meta.get(k) == v for k, v in want.items())]


def legend_entries(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data if t.showlegend is not False]


def test_accuracy_vs_lambda_panels_traces_and_values(results):
    fig = accuracy_vs_lambda(results, n_boot=2000)
    # one panel per parent, titled by it
    assert [a.text for a in fig.layout.annotations] == [f"parent: {p}" for p in PARENTS]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis2.type == "log"
    assert "λ" in fig.layout.xaxis.title.text and "λ" in fig.layout.xaxis2.title.text
    assert fig.layout.yaxis.title.text == "accuracy (test)"
    # per result: random band, baseline, CI band, line, and the key of the child's marker
    assert len(fig.data) == 5 * len(results)
    for r in results:
        parent, child = r.config["parent"], r.config["child"]
        axis = "x" if parent == PARENTS[0] else "x2"
        where = dict(parent=parent, child=child)
        (line,) = by_meta(fig, kind="transferred", role="line", **where)
        assert line.xaxis == axis and line.name == "transferred"
        steered = r.conditions["transferred"].correct["test"]
        assert list(line.x) == LAMS
        np.testing.assert_allclose(line.y, [acc(steered[lam]) for lam in LAMS])
        (band,) = by_meta(fig, kind="transferred", role="ci", **where)
        assert list(band.x) == LAMS + LAMS[::-1]
        high, low = np.array(band.y[:4]), np.array(band.y[4:][::-1])
        assert np.all(low <= np.array(line.y)) and np.all(np.array(line.y) <= high)
        assert np.all(high > low)  # 30 items, accuracies strictly inside (0, 1) give wide bands
        (base,) = by_meta(fig, kind="baseline", **where)
        assert list(base.x) == [LAMS[0], LAMS[-1]]
        assert list(base.y) == [acc(r.baseline["test"])] * 2
        (rand,) = by_meta(fig, kind="random", **where)
        assert list(rand.x) == LAMS + LAMS[::-1]
        rand_acc = np.array(
            [[acc(r.conditions[f"random[{i}]"].correct["test"][lam]) for lam in LAMS]
             for i in range(N_RANDOM)]
        )
        np.testing.assert_allclose(rand.y[:4], rand_acc.max(0))  # fewer than 40: min–max
        np.testing.assert_allclose(rand.y[4:][::-1], rand_acc.min(0))
        # two children share a panel: the child is told by its marker
        (key,) = by_meta(fig, kind="child", **where)
        assert line.marker.symbol == key.marker.symbol
    # one legend entry per kind, plus one per child (the marker key)
    assert sorted(legend_entries(fig)) == sorted(
        ["transferred", "baseline (λ = 0)", f"random directions ({N_RANDOM}, min–max)", *CHILDREN]
    )
    assert len({t.marker.symbol for t in by_meta(fig, role="line")}) == len(CHILDREN)
    # every trace of a kind has that kind's colour
    for kind, colour in (("transferred", STYLES["transferred"].colour), ("baseline", "#000000"),
                         ("random", STYLES["random"].colour)):
        lines = {t.line.color for t in by_meta(fig, kind=kind) if t.meta["role"] != "ci"}
        assert lines == {colour}


def test_accuracy_vs_lambda_other_split_and_kinds(results):
    fig = accuracy_vs_lambda(results[:1], split="val", kinds=("transferred", "child_own"), n_boot=500)
    assert fig.layout.yaxis.title.text == "accuracy (val)"
    assert len(fig.data) == 2 + 2 * 2  # one baseline and random band, a line and CI per kind
    legend = legend_entries(fig)
    assert sorted(legend) == sorted(
        ["transferred", "child's own vector", "baseline (λ = 0)", f"random directions ({N_RANDOM}, min–max)"]
    )
    shown = [t for t in fig.data if t.showlegend is not False]
    # one colour and one dash per kind: the kinds read apart in colour and in greyscale
    assert len({t.line.color for t in shown}) == len(shown)
    assert len({t.line.dash for t in shown}) == len(shown)
    (own,) = by_meta(fig, kind="child_own", role="line")
    expected = [acc(results[0].conditions["child_own"].correct["val"][lam]) for lam in LAMS]
    np.testing.assert_allclose(own.y, expected)
    assert own.line.color == STYLES["child_own"].colour and own.marker.symbol == "square"
    assert all(t.mode == "lines" for t in fig.data if t.fill == "toself")  # no stray vertex dots


def test_accuracy_vs_lambda_bad_input(results):
    with pytest.raises(ValueError, match="no baseline on split 'dev'.*split="):
        accuracy_vs_lambda(results, split="dev")
    with pytest.raises(ValueError, match="no condition of kind"):
        accuracy_vs_lambda(results, kinds=("nonexistent",))
    with pytest.raises(ValueError, match="No results"):
        accuracy_vs_lambda([])


# ---------------------------------------------------------------------------- gains and table


REPORT_FAMILY = [("transferred", "lambda_star"), ("transferred", "its"), ("child_own", "lambda_star"),
                 ("child_own", "its"), ("self_consistency", "its")]


def test_gains_figure_bars_match_independent_deltas(results):
    fig = gains_figure(results)
    bars = {t.meta["kind"]: t for t in by_meta(fig, role="bar")}
    assert list(bars) == ["transferred", "child_own", "self_consistency", "random"]
    # one legend entry per kind, one colour and one bar pattern per kind
    assert legend_entries(fig) == ["transferred", "child's own vector", "self-consistency", "random directions"]
    assert len({b.marker.line.color for b in bars.values()}) == 4
    assert len({b.marker.pattern.shape for b in bars.values()}) == 4
    assert fig.layout.yaxis.title.text == "Δ accuracy vs baseline"
    for k, r in enumerate(results):
        base = r.baseline["test"]
        run = f"{r.config['parent']} → {r.config['child']}"
        # the report's Holm family: every non-random condition's λ* and ITS test, within this run
        def correct(name, what):
            c = r.conditions[name]
            return c.correct["test"][c.lambda_star] if what == "lambda_star" else c.its_correct
        raw = [mcnemar_reference(base, correct(n, w)) for n, w in REPORT_FAMILY]
        holm_p = dict(zip(REPORT_FAMILY, holm_reference(raw)))
        for i, what in enumerate(("lambda_star", "its")):
            slot = 2 * k + i
            for kind in ("transferred", "child_own", "self_consistency"):
                bar = bars[kind]
                assert (bar.x[0][slot], bar.x[1][slot]) == (run, ("at λ*", "ITS vote")[i])
                if (kind, what) not in holm_p:  # self-consistency has no λ*
                    assert np.isnan(bar.y[slot])
                    continue
                assert bar.y[slot] == pytest.approx(acc(correct(kind, what)) - acc(base))
                assert bar.error_y.array[slot] >= 0 and bar.error_y.arrayminus[slot] >= 0
                (value,) = by_meta(fig, kind=kind, role="value")
                assert value.y[slot] == bar.y[slot]
                (label,) = by_meta(fig, kind=kind, role="label")
                p = holm_p[(kind, what)]
                assert label.text[slot] == ("p=<0.001" if p < 0.001 else f"p={p:.3f}")
                assert label.y[slot] == pytest.approx(
                    bar.y[slot] + bar.error_y.array[slot] if bar.y[slot] >= 0
                    else bar.y[slot] - bar.error_y.arrayminus[slot])
                assert f"Holm p = {label.text[slot][2:]}" in bar.hovertext[slot]
            rand = [acc(correct(f"random[{j}]", what)) - acc(base) for j in range(N_RANDOM)]
            b = bars["random"]
            assert b.y[slot] == pytest.approx(np.mean(rand))
            assert b.y[slot] + b.error_y.array[slot] == pytest.approx(max(rand))
            assert b.y[slot] - b.error_y.arrayminus[slot] == pytest.approx(min(rand))


def test_gains_figure_p_values_are_report_json_holm(tmp_path):
    r = make_result("p", "c", seed=4)
    r.save(tmp_path / "report.json")
    saved = TransferResult.load(tmp_path / "report.json")
    comps = {(c["condition"], c["statistic"]): c
             for c in json.loads((tmp_path / "report.json").read_text())["statistics"]["comparisons"]}
    fig = gains_figure([saved])
    shown = 0
    for kind in ("transferred", "child_own", "self_consistency"):
        (label,) = by_meta(fig, kind=kind, role="label")
        (bar,) = by_meta(fig, kind=kind, role="bar")
        for slot, key in enumerate(label.meta["keys"]):
            if key is None:
                continue
            p = comps[tuple(key)]["p_holm"]
            assert label.text[slot] == ("p=<0.001" if p < 0.001 else f"p={p:.3f}")
            assert bar.y[slot] == comps[tuple(key)]["delta"]["value"]
            assert bar.y[slot] + bar.error_y.array[slot] == pytest.approx(comps[tuple(key)]["delta"]["high"])
            shown += 1
    assert shown == len(comps) == len(REPORT_FAMILY)


def test_gains_figure_zero_delta_is_visible():
    r = make_result("p", "c", seed=3)
    r.conditions["transferred"].its_correct = list(r.baseline["test"])  # Δ = 0 exactly
    r = dataclasses.replace(r, statistics=None)  # statistics are computed on construction
    fig = gains_figure([r])
    (bar,) = by_meta(fig, kind="transferred", role="bar")
    (value,) = by_meta(fig, kind="transferred", role="value")
    assert list(bar.x) == ["at λ*", "ITS vote"] and bar.y[1] == 0.0
    assert value.y[1] == 0.0 and value.marker.size >= 8 and value.mode == "markers"
    assert bar.marker.line.width > 0


def test_results_table_values(results):
    table = results_table(results, n_boot=2000)
    assert len(table) == len(results)
    for col in ("parent", "child", "task", "baseline_acc", "lambda_star", "star_acc", "delta_star",
                "p_star_holm", "its_acc", "delta_its", "p_its_holm", "random_its_mean",
                "self_consistency_acc"):
        assert col in table.columns
    raw = []
    for k, r in enumerate(results):
        row = table.iloc[k]
        base = r.baseline["test"]
        cond = r.conditions["transferred"]
        val = cond.correct["val"]
        lam_star = LAMS[int(np.argmax([acc(val[lam]) for lam in LAMS]))]
        assert (row.parent, row.child, row.task) == (r.config["parent"], r.config["child"], "synthetic")
        assert row.baseline_acc == pytest.approx(np.mean(base))
        assert row.baseline_low <= row.baseline_acc <= row.baseline_high
        assert row.lambda_star == lam_star
        assert row.star_acc == pytest.approx(acc(cond.correct["test"][lam_star]))
        assert row.its_acc == pytest.approx(acc(cond.its_correct))
        assert row.its_low <= row.its_acc <= row.its_high
        assert row.delta_its == pytest.approx(acc(cond.its_correct) - acc(base))
        assert row.delta_its_low <= row.delta_its <= row.delta_its_high
        assert row.p_star == pytest.approx(mcnemar_reference(base, cond.correct["test"][lam_star]))
        assert row.p_its == pytest.approx(mcnemar_reference(base, cond.its_correct))
        rand = [acc(r.conditions[f"random[{i}]"].its_correct) for i in range(N_RANDOM)]
        assert row.random_its_mean == pytest.approx(np.mean(rand))
        assert row.random_k == N_RANDOM
        assert row.self_consistency_acc == pytest.approx(acc(r.conditions["self_consistency"].its_correct))
        raw += [row.p_star, row.p_its]
    adjusted = holm_reference(raw)
    np.testing.assert_allclose(table[["p_star_holm", "p_its_holm"]].to_numpy().ravel(), adjusted)


def test_table_writers_produce_parseable_output(results, tmp_path):
    table = results_table(results, n_boot=500)
    shown = format_results_table(table)
    assert "condition" not in shown.columns  # only the steered vector
    assert shown["baseline acc [95% CI]"].str.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]").all()
    csv, md, tex = write_results_table(table, tmp_path / "table1")
    back = pd.read_csv(csv)
    assert list(back.columns) == list(table.columns)
    np.testing.assert_allclose(back["baseline_acc"], table["baseline_acc"])
    lines = md.read_text().strip().splitlines()
    assert len(lines) == len(table) + 2 and re.fullmatch(r"\|(---\|)+", lines[1])
    cells = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines]
    assert {len(c) for c in cells} == {shown.shape[1]}
    assert [c.strip() for c in cells[0]] == list(shown.columns)
    latex = tex.read_text()
    assert latex.count("{") == latex.count("}")
    spec = re.search(r"\\begin\{tabular\}\{([lcr]+)\}", latex).group(1)
    body = latex.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().splitlines()
    assert len(body) == len(table)
    for line in body + [latex.split(r"\toprule")[1].split(r"\midrule")[0].strip()]:
        assert len(re.findall(r"(?<!\\)&", line)) == len(spec) - 1 and line.endswith(r"\\")
    assert "λ" not in latex and r"$\lambda$" in latex  # pdflatex-safe


def test_markdown_and_latex_escape_special_characters():
    df = pd.DataFrame({"a|b": ["x|y"], "50%_&": ["$1 {z}"]})
    md = to_markdown(df)
    assert md.splitlines()[0] == r"| a\|b | 50%_& |" and r"x\|y" in md
    tex = to_latex(df)
    assert r"50\%\_\&" in tex and r"\$1 \{z\}" in tex


def test_table_kinds_adds_condition_column(results):
    table = results_table(results[:1], kinds=("transferred", "child_own"), n_boot=500)
    assert list(table["condition"]) == ["transferred", "child_own"]
    assert "condition" in format_results_table(table).columns


# ---------------------------------------------------------------------------- relative perturbation


def test_relative_perturbation_figure(results):
    r = results[0]
    fig = relative_perturbation_figure(r)
    assert fig.layout.yaxis.type == "log"
    assert [t.meta["kind"] for t in fig.data] == ["child_own", "transferred", "largest_lambda"]
    own, steered, top = fig.data
    for trace in (own, steered):
        cond = r.conditions[trace.meta["condition"]]
        assert list(trace.x) == [0, 1, 2]
        np.testing.assert_allclose(trace.y, [cond.relative_size[l] for l in range(3)])
        assert trace.name.endswith(f"@ λ* = {cond.lambda_star:g}")
    np.testing.assert_allclose(top.y, [1.0 / (10.0 * (l + 1)) for l in range(3)])
    assert top.name == "largest λ = 1"
    # the transferred vector is drawn on top of the child's own, narrower and in another dash,
    # so it stays visible where the two coincide
    assert own.line.width > steered.line.width
    assert len({own.line.dash, steered.line.dash, top.line.dash}) == 3
    assert len({own.line.color, steered.line.color, top.line.color}) == 3
    assert steered.name.startswith("transferred") and own.name.startswith("child's own")


def test_relative_perturbation_without_any_sizes_errors(results):
    r = make_result("p", "c", seed=99)
    r.diagnostics = {}
    for c in r.conditions.values():
        c.relative_size = {}
    with pytest.raises(ValueError, match="no relative sizes"):
        relative_perturbation_figure(r)


# ---------------------------------------------------------------------------- similarity


def _vectors(name: str, n_layers: int, d: int, seed: int) -> SteeringVectors:
    g = torch.Generator().manual_seed(seed)
    dirs = {l: torch.randn(d, generator=g) for l in range(n_layers)}
    return SteeringVectors.from_raw(dirs, model_name=name, d_model=d, n_layers=n_layers, method="pca")


def test_pc1_heatmap_is_numpy_corrcoef():
    a, b = _vectors("A", 3, 64, 0), _vectors("B", 4, 64, 1)
    b.directions[2] = (0.8 * a[1] + 0.2 * b[2]) / (0.8 * a[1] + 0.2 * b[2]).norm()  # a related layer
    fig = pc1_correlation_heatmap(a, b)
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) == 2
    expected = np.array(
        [[np.corrcoef(a[i].numpy(), b[j].numpy())[0, 1] for j in range(4)] for i in range(3)]
    )
    np.testing.assert_allclose(heatmaps[0].z, expected, atol=1e-6)
    assert np.asarray(heatmaps[1].z).shape == (3, 4)
    assert fig.layout.xaxis.title.text == "layer of B" and fig.layout.yaxis.title.text == "layer of A"
    assert f"{random_correlation_scale(64):.3f}" in fig.layout.title.text


def test_random_correlation_scale_matches_simulation():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 4000, 64))
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    r = (x * y).sum(1) / np.sqrt((x**2).sum(1) * (y**2).sum(1))  # Pearson r row by row
    assert random_correlation_scale(64) == pytest.approx(np.mean(np.abs(r)), rel=0.05)


def test_pc1_heatmap_width_mismatch_names_alternatives():
    with pytest.raises(ValueError, match=r"d_model=64.*d_model=32.*projection_agreement.*difference_cka"):
        pc1_correlation_heatmap(_vectors("A", 2, 64, 0), _vectors("B", 2, 32, 1))


def test_projection_agreement_is_spearman_with_permutation_p():
    rng = np.random.default_rng(0)
    n = 40
    base = rng.standard_normal(n)
    scores_a = {0: base, 1: rng.standard_normal(n), 2: np.round(base, 1)}  # layer 2 has ties
    scores_b = {5: base + 0.1 * rng.standard_normal(n), 7: rng.standard_normal(n)}
    res = projection_agreement(scores_a, scores_b, n_perm=200, seed=1)
    assert res.layers_a == [0, 1, 2] and res.layers_b == [5, 7]
    for i, la in enumerate(res.layers_a):
        for j, lb in enumerate(res.layers_b):
            assert res.rho[i, j] == pytest.approx(spearmanr(scores_a[la], scores_b[lb])[0])
    assert res.p[0, 0] == pytest.approx(1 / 201)  # no permutation reaches ρ ≈ 0.99
    fig = projection_agreement_heatmap(res, name_a="A", name_b="B")
    np.testing.assert_allclose(fig.data[0].z, res.rho)
    assert fig.layout.xaxis.title.text == "layer of B"


def test_projection_agreement_p_large_when_unrelated():
    # a permutation with Spearman ρ exactly 0: every permuted |ρ| is at least as large, so p = 1
    a = np.arange(8.0)
    b = np.array([3, 6, 0, 5, 2, 7, 1, 4], dtype=float)
    assert spearmanr(a, b)[0] == pytest.approx(0.0)
    assert projection_agreement({0: a}, {0: b}, n_perm=100).p[0, 0] == 1.0
    rng = np.random.default_rng(3)
    many = projection_agreement(
        {l: rng.standard_normal(50) for l in range(8)},
        {l: rng.standard_normal(50) for l in range(8)},
        n_perm=200,
    )
    assert np.mean(many.p) > 0.3 and np.mean(many.p < 0.05) < 0.15


def test_projection_agreement_bad_input():
    with pytest.raises(ValueError, match="same\\s+contrast pairs"):
        projection_agreement({0: np.arange(5.0)}, {0: np.arange(6.0)})
    with pytest.raises(ValueError, match="constant"):
        projection_agreement({0: np.ones(5)}, {0: np.arange(5.0)})


def _cka_reference(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC form: tr(K H L H) / sqrt(tr(K H K H) tr(L H L H)) with linear kernels."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T
    return np.trace(k @ h @ l @ h) / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(l @ h @ l @ h))


def test_difference_cka_matches_hsic_formula():
    rng = np.random.default_rng(0)
    n = 25
    a = {l: rng.standard_normal((n, 16)) for l in range(3)}
    b = {l: rng.standard_normal((n, 8)) for l in (0, 2)}
    b[2] = a[1] @ rng.standard_normal((16, 8))  # linearly related to a[1]
    res = difference_cka(a, b)
    expected = np.array([[_cka_reference(a[i], b[j]) for j in (0, 2)] for i in range(3)])
    np.testing.assert_allclose(res.cka, expected, atol=1e-10)
    assert res.layers_b == [0, 2] and res.n_pairs == n
    fig = difference_cka_heatmap(res, name_a="A", name_b="B")
    np.testing.assert_allclose(fig.data[0].z, expected, atol=1e-10)
    assert fig.layout.yaxis.title.text == "layer of A"


def test_cka_layer_map_figure_overlays_mapping():
    sim = np.arange(12.0).reshape(3, 4) / 12
    fig = cka_layer_map_figure(sim, {0: 0, 1: 2, 2: 3}, child_name="c", parent_name="p")
    np.testing.assert_allclose(fig.data[0].z, sim)
    assert list(fig.data[1].x) == [0, 2, 3] and list(fig.data[1].y) == [0, 1, 2]
    assert "parent" in fig.layout.xaxis.title.text and "child" in fig.layout.yaxis.title.text
    with pytest.raises(ValueError, match="outside the matrix"):
        cka_layer_map_figure(sim, {0: 4})
    with pytest.raises(ValueError, match="transpose"):
        cka_layer_map_figure(sim, {0: 0}, child_layers=[0, 1, 2, 3])


# ---------------------------------------------------------------------------- saving


def test_save_figure_writes_html_and_logs_when_png_fails(tmp_path, caplog, monkeypatch):
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))

    def fail(*args, **kwargs):
        raise RuntimeError("no Chrome found")

    monkeypatch.setattr(fig, "write_image", fail)
    with caplog.at_level(logging.WARNING, logger="analysis.export"):
        paths = save_figure(fig, tmp_path / "sub" / "fig.png")
    assert paths == [tmp_path / "sub" / "fig.html"] and "<html>" in paths[0].read_text()
    assert len(caplog.records) == 1 and "install_chromium" in caplog.records[0].getMessage()


def test_save_figure_png_when_chrome_available(tmp_path):
    pytest.importorskip("kaleido")
    if not (shutil.which("chromium") or shutil.which("google-chrome") or shutil.which("chrome")):
        pytest.skip("no Chrome for kaleido; run scripts/install_chromium.sh")
    paths = save_figure(go.Figure(go.Bar(x=["a"], y=[1])), tmp_path / "bar")
    assert [p.suffix for p in paths] == [".html", ".png"]
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_random_spread_is_min_max_below_40_directions_then_central_95():
    from xsteer.stats import spread

    rng = np.random.default_rng(0)
    few, many = rng.random(39), rng.random(400)
    s = spread(few)
    assert (s.low, s.high, s.method) == (few.min(), few.max(), "min–max")
    s = spread(many)
    ordered = np.sort(many)  # linear-interpolated 2.5% / 97.5% order statistics, by hand
    pos = np.array([0.025, 0.975]) * (len(many) - 1)
    lo_i = np.floor(pos).astype(int)
    expected = ordered[lo_i] + (pos - lo_i) * (ordered[lo_i + 1] - ordered[lo_i])
    np.testing.assert_allclose([s.low, s.high], expected)
    assert s.mean == pytest.approx(many.mean()) and s.k == 400


def test_relative_scale_largest_lambda_is_flat():
    r = make_result("p", "c", seed=5)
    r.config["scale"] = "relative"
    fig = relative_perturbation_figure(r)
    np.testing.assert_allclose(fig.data[-1].y, [1.0, 1.0, 1.0])


def test_missing_config_names_the_fix():
    r = make_result("p", "c", seed=6)
    del r.config["child"]
    with pytest.raises(ValueError, match=r"lacks \['child'\].*config\['parent'\]"):
        results_table([r])


def test_figures_and_table_from_saved_reports(results, tmp_path):
    loaded = [TransferResult.load(r.save(tmp_path / f"run{i}" / "report.json"))
              for i, r in enumerate(results)]
    pd.testing.assert_frame_equal(results_table(loaded, n_boot=200), results_table(results, n_boot=200))
    fig = relative_perturbation_figure(loaded[0])
    np.testing.assert_allclose(fig.data[-1].y, [1.0 / (10.0 * (l + 1)) for l in range(3)])
    assert len(accuracy_vs_lambda(loaded, n_boot=200).data) == 5 * len(loaded)


def test_results_table_report_family_equals_report_json():
    r = make_result("p", "c", seed=8)
    stats = r.statistics
    table = results_table([r], kinds=("transferred", "child_own"), n_boot=200, family="report")
    for row in table.itertuples():
        assert row.p_star_holm == stats.comparison(row.condition, "lambda_star").p_holm
        assert row.p_its_holm == stats.comparison(row.condition, "its").p_holm
    # the report's family also holds self-consistency, so it differs from the table's own
    own = results_table([r], kinds=("transferred", "child_own"), n_boot=200)
    raw = own[["p_star", "p_its"]].to_numpy().ravel()
    np.testing.assert_allclose(own[["p_star_holm", "p_its_holm"]].to_numpy().ravel(), holm_reference(list(raw)))
    with pytest.raises(ValueError, match="family must be"):
        results_table([r], family="nosuch")
