"""Controls beside every transfer number: exchange rate, anti-steerability and operating λ worked by
hand; mapped-random and wrong-concept readouts on a planted map (random parent directions read at
chance, another concept's direction does not read this one); the all-layers readout against an
independent average; child-own on k pairs against numpy; the prompting baseline's cost against a
direct NLL; user judges (object, callable, file) through the dose-response; the suite on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xsteer.concepts import concept_from_pairs, load_judge
from xsteer.extract import random_vectors
from xsteer.fidelity import ConceptActs, pair_subset, readout_from_activations, vectors_from_acts
from xsteer.fidelity.dose import (
    Curve,
    OpenPrompts,
    anti_steerability,
    compare_at_budget,
    dose_response,
    exchange_rate,
    lam_at_cost,
    run_prompting,
)
from xsteer.fidelity.fluency import completion_nll
from xsteer.models import tiny_model
from xsteer.transfer import ModelInfo, Transfer
from xsteer.vectors import SteeringVectors


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("llama", n_layers=3, d_model=64, seed=0)


def _curve(kind, judge, nll, lambdas, label=None, k=None):
    j, n = np.asarray(judge, float), np.asarray(nll, float)
    return Curve(kind, label or kind, list(lambdas), j, n, np.ones_like(j), np.ones_like(j), [[""] * j.shape[1]] * len(j), k)


def test_exchange_rate_hand_worked():
    # child-own shifts 0.1 at 4 pairs, 0.3 at 16, 0.5 at 64: a transferred 0.2 sits halfway between 4 and 16 in log k
    rate = exchange_rate([16, 4, 64], [0.3, 0.1, 0.5], 0.2)
    assert rate.ks == [4, 16, 64] and rate.pairs == pytest.approx(8.0)
    assert exchange_rate([4, 16], [0.1, 0.3], 0.05).note == "<= 4"
    assert exchange_rate([4, 16], [0.1, 0.3], 0.9).note == "> 16"
    # a dip at 16 pairs is held at the running maximum (more pairs never count as less): 0.6 lies halfway
    # between (4, 0.4) and (64, 0.8), at log2 k = 4
    assert exchange_rate([4, 16, 64], [0.4, 0.2, 0.8], 0.6).pairs == pytest.approx(16.0)


def test_anti_steerability_and_operating_lambda_hand_worked():
    base = _curve("baseline", [[0.0, 0.0, 0.5]], [[1.0, 1.0, 1.0]], [0.0])
    # prompt 0 rises, prompt 1 falls, prompt 2 stays: one of three moved the wrong way
    c = _curve("transferred", [[0.1, -0.1, 0.5], [0.2, -0.2, 0.5]], [[1.2, 1.2, 1.2], [1.6, 1.6, 1.6]], [0.1, 0.3])
    assert anti_steerability(c, base) == pytest.approx(1 / 3)
    # cost 0 at λ 0, 0.2 at 0.1, 0.6 at 0.3: a budget of 0.4 is reached halfway, at λ = 0.2
    assert lam_at_cost(c, base, 0.4) == pytest.approx(0.2)
    assert lam_at_cost(c, base, 5.0) == pytest.approx(0.3)  # never reached: the largest λ


def test_compare_at_budget_bands_and_pairs():
    base = _curve("baseline", [[0.0, 0.0]], [[1.0, 1.0]], [0.0])
    cost = [[1.5, 1.5], [2.0, 2.0]]  # +0.5, +1.0
    curves = {
        "transferred": _curve("transferred", [[0.2, 0.2], [0.4, 0.4]], cost, [0.1, 0.2]),
        "child_own": _curve("child_own", [[0.4, 0.4], [0.8, 0.8]], cost, [0.1, 0.2]),
        "mapped_random0": _curve("mapped_random", [[0.0, 0.0], [0.1, 0.1]], cost, [0.1, 0.2], "mapped_random0"),
        "mapped_random1": _curve("mapped_random", [[0.0, 0.0], [-0.1, -0.1]], cost, [0.1, 0.2], "mapped_random1"),
        "child_own_k4": _curve("child_own_k", [[0.1, 0.1], [0.2, 0.2]], cost, [0.1, 0.2], "child_own_k4", k=4),
    }
    out = compare_at_budget(base, curves, budget=0.5, n_boot=50)
    assert out.efficiency.value == pytest.approx(0.5)
    assert out.shift["transferred"].value == pytest.approx(0.2) and out.shift["child_own"].value == pytest.approx(0.4)
    assert out.bands["mapped_random"].n == 2 and out.bands["mapped_random"].mean == pytest.approx(0.0)
    assert set(out.by_k) == {4} and out.by_k[4].value == pytest.approx(0.1)


def test_child_own_on_k_pairs_is_numpy_mean_difference_of_a_nested_subset():
    rng = np.random.default_rng(0)
    pos = {0: torch.tensor(rng.standard_normal((40, 8)), dtype=torch.float32)}
    neg = {0: torch.tensor(rng.standard_normal((40, 8)), dtype=torch.float32)}
    small, large = pair_subset(40, 4, seed=1), pair_subset(40, 16, seed=1)
    assert len(small) == 4 and set(small) <= set(large)
    v = vectors_from_acts(pos, neg, ModelInfo("m", 8, 1), pairs=small)
    want = (pos[0].double().numpy() - neg[0].double().numpy())[small].mean(0)
    np.testing.assert_allclose(v[0].double().numpy(), want / np.linalg.norm(want), atol=1e-6)


def _planted_two_concepts(seed=0, dp=64, dc=48, n_layers=3, n=120, noise=0.05):
    """Parent rows x, child rows x @ A + noise; concepts 'a' and 'b' lie along orthogonal parent directions."""
    rng = np.random.default_rng(seed)
    A = {l: rng.standard_normal((dp, dc)) / np.sqrt(dp) for l in range(n_layers)}
    q, _ = np.linalg.qr(rng.standard_normal((dp, 2)))
    t = lambda d: {l: torch.tensor(v, dtype=torch.float32) for l, v in d.items()}
    child_of = lambda x, l: x @ A[l] + noise * rng.standard_normal((len(x), dc))

    def concept(u):
        parts_p, parts_c = [], []
        for m in (int(n * 0.75), n - int(n * 0.75)):
            shared = rng.standard_normal((m, dp))
            for sign in (+1, -1):
                x = {l: shared + sign * 1.5 * u + 0.5 * rng.standard_normal((m, dp)) for l in range(n_layers)}
                parts_p.append(t(x))
                parts_c.append(t({l: child_of(x[l], l) for l in x}))
        pa = ConceptActs(parts_p[0], parts_p[1], parts_p[2], parts_p[3])
        ca = ConceptActs(parts_c[0], parts_c[1], parts_c[2], parts_c[3])
        return pa, ca

    anchors_p = {l: rng.standard_normal((600, dp)) for l in range(n_layers)}
    anchors_c = {l: child_of(anchors_p[l], l) for l in range(n_layers)}
    info = (ModelInfo("planted-parent", dp, n_layers), ModelInfo("planted-child", dc, n_layers))
    return concept(q[:, 0]), concept(q[:, 1]), t(anchors_p), t(anchors_c), info


def test_readout_controls_on_a_planted_map():
    (pa, ca), (pb, _), ap, ac, (pinfo, cinfo) = _planted_two_concepts()
    tr = Transfer("greedy", "ridge").fit_activations(ap, ac, pinfo, cinfo)
    c = concept_from_pairs("a", [(f"p{i}", f"n{i}") for i in range(120)])
    out = readout_from_activations(c, pa, ca, {("greedy", "ridge"): tr}, parent_info=pinfo, n_random=100, n_boot=100,
                                   wrong_concepts={"b": pb}, n_mapped_random=30, k_pairs=(4, 16))
    by_kind = {}
    for ctl in out.controls:
        by_kind.setdefault(ctl.kind, []).append(ctl)
    assert {x.source for x in by_kind["wrong_concept"]} == {"b"}
    for ctl in by_kind["mapped_random"]:
        assert abs(ctl.auroc - 0.5) < 0.1  # random parent directions carried by the map read at chance
    transferred = {t.child_layer: t.auroc.value for t in out.transferred}
    for ctl in by_kind["wrong_concept"]:
        assert ctl.auroc < transferred[ctl.child_layer] - 0.1  # another concept's direction does not read this one
    assert {ctl.k for ctl in by_kind["child_own_k"]} == {4, 16}
    (row,) = out.summary()
    assert row["transferred_all_layers"] == pytest.approx(np.mean(list(transferred.values())))
    assert row["child_own_k4_all_layers"] <= row["child_own_all_layers"] + 0.05


def test_all_layers_readout_counts_an_unreached_layer_as_chance():
    (pa, ca), _, ap, ac, (pinfo, cinfo) = _planted_two_concepts(seed=1)
    tr = Transfer({0: 0, 1: 1}, "ridge").fit_activations(ap, ac, pinfo, cinfo)  # child layer 2 not reached
    c = concept_from_pairs("a", [(f"p{i}", f"n{i}") for i in range(120)])
    out = readout_from_activations(c, pa, ca, {("two", "ridge"): tr}, parent_info=pinfo, n_random=50, n_boot=50,
                                   n_mapped_random=0, k_pairs=())
    (row,) = out.summary()
    reached = [t.auroc.value for t in out.transferred]
    assert len(reached) == 2 and row["layers_mapped"] == 2 and row["child_layers"] == 3
    assert row["transferred_all_layers"] == pytest.approx((sum(reached) + 0.5) / 3)
    assert row["mapped_random_all_layers"] != row["mapped_random_all_layers"]  # NaN: not measured


def _vectors(model, seed):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors.from_raw({l: torch.randn(64, generator=g) for l in range(3)}, model_name=model.cfg.model_name,
                                    d_model=64, n_layers=3, method="mean_diff")


def test_prompting_baseline_cost_is_the_nll_under_the_plain_prompt(tiny):
    prompts = ["Tell me about your day.", "Describe the sea."]
    letters = lambda texts: [t.count("e") / max(1, len(t)) for t in texts]
    curve = run_prompting(tiny, letters, prompts, "Answer in French.", max_new_tokens=6)
    tok = tiny.tokenizer
    plain = OpenPrompts(prompts, max_new_tokens=6)
    asked = OpenPrompts([f"{p} Answer in French." for p in prompts], max_new_tokens=6)
    assert curve.outputs[0] != [""] * 2
    for j, (ex, text) in enumerate(zip(plain.examples, curve.outputs[0])):
        comp = tok(text, add_special_tokens=False)["input_ids"]
        want = completion_nll(tiny, [plain.prompt_ids(ex, tok)], [comp])[0]
        assert curve.nll[0, j] == pytest.approx(want, nan_ok=True)
        assert curve.judge[0, j] == pytest.approx(letters([text])[0])
    assert asked.prompts[0].endswith("Answer in French.")


class VowelJudge:
    """A user's judge object: the share of vowels."""

    name = "vowels"

    def score(self, texts):
        return [sum(ch in "aeiou" for ch in t) / max(1, len(t)) for t in texts]


def test_a_concept_brings_its_own_judge_object_or_function(tiny, tmp_path):
    pairs = [(f"a happy thing {i}", f"a sad thing {i}") for i in range(20)]
    v = _vectors(tiny, 1)
    kinds = {"transferred": v, "child_own": _vectors(tiny, 2), "random": [random_vectors(v, seed=1)]}
    kw = dict(lambdas=[0.5, 2.0], prompts=["One", "Two words"], max_new_tokens=5, n_boot=50)
    by_object = dose_response(tiny, kinds, concept=concept_from_pairs("mine", pairs, judge=VowelJudge()), **kw)
    fn = lambda texts: VowelJudge().score(texts)
    by_function = dose_response(tiny, kinds, concept=concept_from_pairs("mine", pairs, judge=fn), **kw)
    assert by_object.judge == "vowels" and by_function.judge == "<lambda>"
    np.testing.assert_allclose(by_object.curves["transferred"].judge, by_function.curves["transferred"].judge)
    texts = by_object.curves["transferred"].outputs[1]
    np.testing.assert_allclose(by_object.curves["transferred"].judge[1], VowelJudge().score(texts))
    f = tmp_path / "my_judges.py"
    f.write_text("class Vowels:\n    name = 'vowels-file'\n    def score(self, texts):\n        return [t.count('a') for t in texts]\n"
                 "def count_a(texts):\n    return [t.count('a') for t in texts]\n")
    assert load_judge(f"{f}:Vowels").name == "vowels-file"  # a class is instantiated
    assert load_judge(f"{f}:count_a")(["aa", "b"]) == [2, 0]
    assert load_judge("sentiment") == "sentiment"


def test_suite_on_tiny_models_one_direction(monkeypatch):
    from xsteer.fidelity.suite import SuiteConfig, fidelity_suite

    held_out, fit = [], Transfer.fit
    monkeypatch.setattr(Transfer, "fit", lambda self, *a, **k: held_out.append(k["hold_out"].name) or fit(self, *a, **k))

    parent = tiny_model("qwen2", n_layers=4, d_model=64, seed=1)
    child = tiny_model("llama", n_layers=3, d_model=48, seed=0)
    cfg = SuiteConfig.quick(n_pairs=32, n_anchor_questions=0, lambdas=(0.5, 2.0), n_prompts=2, where_prompts=2,
                            max_new_tokens=3, side_effect_items=0, n_random=1, n_mapped_random=1, k_pairs=(4,),
                            n_readout_random=20, n_readout_mapped_random=2, n_boot=50, prompting=False)
    estimators = {"prop": Transfer("proportional", "ridge"), "top": lambda: Transfer({0: 3}, "ridge")}
    res = fidelity_suite(parent, child, ["sentiment", "language"], estimators, config=cfg,
                         directions=["parent_to_child"], layers={"sentiment": [1, 2], "language": [1, 2]})
    assert [(r.estimator, r.concept) for r in res.rows] == [("prop", "sentiment"), ("top", "sentiment"),
                                                           ("prop", "language"), ("top", "language")]
    assert held_out == ["sentiment", "sentiment", "language", "language"]  # each fit holds its concept's topic out
    prop, top = res.rows[0], res.rows[1]
    assert prop.steering is not None and prop.steering.layers == [1, 2]
    assert {c.kind for c in prop.steering.curves.values()} == {"transferred", "child_own", "child_own_k", "random",
                                                              "mapped_random", "wrong_concept"}
    assert top.steering is None and "none of the steering band 1–2" in top.note  # its map reaches child layer 0 only
    (summary,) = top.readout.summary()
    assert summary["transferred_all_layers"] == pytest.approx((top.readout.transferred[0].auroc.value + 1.0) / 3)
    table = res.table()
    assert len(table) == 4 and "readout_transferred_all_layers" in table and "steer_efficiency" in table
    md = res.to_markdown()
    assert md.count("\n| prop |") == 2 and "none of the steering band" in md
    assert res.to_dict()["rows"][0]["readout"]["summary"][0]["concept"] == "sentiment"
    fig = res.plot()  # readout bars per row beside child_own and random p95; efficiency where it steered
    bars = {t.name: list(t.y) for t in fig.data if t.type == "bar"}
    assert bars["transferred"] == list(table["readout_transferred_all_layers"])
    assert bars["random (95th percentile)"] == list(table["readout_random_p95_all_layers"])
    (eff,) = [t for t in fig.data if t.type == "scatter"]
    assert list(eff.y)[0] == pytest.approx(table["steer_efficiency"][0], nan_ok=True)
