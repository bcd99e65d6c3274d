"""Steering fidelity: judges, fluency costs against direct computations, batched per-row-strength
generation against one-strength-at-a-time greedy decoding, equal-norm controls, efficiency
interpolation by hand, where-to-steer bands, the dose-response figure, and bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from xsteer.extract import random_vectors
from xsteer.concepts.judges import LanguageJudge, SentimentJudge, make_judge
from xsteer.fidelity.fluency import completion_nll, distinct_n
from xsteer.fidelity.dose import (
    OpenPrompts,
    check_lambda_grid,
    dose_response,
    run_curves,
    shift_at_cost,
)
from xsteer.fidelity.where import layer_bands, targeted_map
from xsteer.models import tiny_model
from xsteer.operators import Clamp, NormPreservingAdd
from xsteer.plain import plain_view
from xsteer.steer import residual_norms, steering_hooks
from xsteer.vectors import SteeringVectors


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("llama", n_layers=3, d_model=64, seed=0)


def _vectors(model, seed):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors.from_raw(
        {l: torch.randn(64, generator=g) for l in range(3)}, model_name=model.cfg.model_name, d_model=64,
        n_layers=3, method="mean_diff",
    )


class LetterJudge:
    """A judge for random-weight models: the share of 'e' among the characters."""

    name = "letter"

    def score(self, texts):
        return np.array([t.count("e") / max(1, len(t)) for t in texts])


def test_distinct_n_hand_worked():
    text = "the cat the cat sat"
    assert distinct_n(text, 1) == pytest.approx(3 / 5)  # the, cat, sat of 5 words
    assert distinct_n(text, 2) == pytest.approx(3 / 4)  # "the cat" twice, "cat the", "cat sat"
    assert np.isnan(distinct_n("one", 2))


def test_judges_on_obvious_sentences():
    s = SentimentJudge().score(["I love this wonderful, happy day!", "This is awful, I hate it."])
    assert s[0] > 0.5 and s[1] < -0.5
    lang = LanguageJudge().score(["The cat is sleeping on the sofa.", "Le chat dort sur le canapé.", ""])
    assert lang[0] < 0.2 and lang[1] > 0.8 and lang[2] == 0.0  # silence is not French
    assert make_judge("language").name == "language"


@pytest.mark.parametrize("judge,package", [("sentiment", "vaderSentiment"), ("language", "lingua-language-detector")])
def test_missing_judge_package_names_it(monkeypatch, judge, package):
    for name in [m for m in sys.modules if m.split(".")[0] in ("vaderSentiment", "lingua")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "lingua", None)
    with pytest.raises(ModuleNotFoundError, match=f"pip install {package}"):
        make_judge(judge)


def test_completion_nll_matches_direct_forward(tiny):
    tok = tiny.tokenizer
    prompts = [tok("Hello there")["input_ids"], tok("A much longer prompt, to pad")["input_ids"], tok("x")["input_ids"]]
    comps = [tok(" world", add_special_tokens=False)["input_ids"], tok(" yes", add_special_tokens=False)["input_ids"],
             tok(" a long completion here", add_special_tokens=False)["input_ids"]]
    got = completion_nll(tiny, prompts, comps, batch_size=3)
    hf = tiny.original_model
    for g, p, c in zip(got, prompts, comps):
        with torch.no_grad():
            logp = torch.log_softmax(hf(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
        want = -np.mean([float(logp[len(p) - 1 + k, t]) for k, t in enumerate(c)])
        assert g == pytest.approx(want, abs=1e-4)
    assert np.isnan(completion_nll(tiny, [prompts[0]], [[]])[0])


def _greedy_alone(model, vectors, prompt_ids, f, n_new, operator=None):
    """One prompt, one strength: greedy decoding without cache, batching or drafts."""
    view = plain_view(model)
    ids = list(prompt_ids)
    hooks = steering_hooks(model, vectors, f, scale="relative", operator=operator)
    with torch.no_grad(), view.hooks(hooks):
        for _ in range(n_new):
            ids.append(int(view.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prompt_ids):]


@pytest.mark.parametrize("operator", [None, NormPreservingAdd(), Clamp(value=2.0)], ids=["add", "norm_preserving", "clamp"])
def test_batched_per_row_lambda_equals_one_lambda_at_a_time(tiny, operator):
    vec = _vectors(tiny, 1)
    prompts = ["Tell me about your day.", "The weather today", "Hi"]
    lambdas = [0.05, 0.5, 2.0]  # large enough on a random model that the texts differ by λ
    task = OpenPrompts(prompts, max_new_tokens=10)
    base, curves, timing = run_curves(tiny, {"v": vec}, LetterJudge(), prompts, lambdas, max_new_tokens=10,
                                      batch_size=4, operator=operator)
    tok = tiny.tokenizer
    eos = tok.eos_token_id
    for i, f in enumerate(lambdas):
        for j, ex in enumerate(task.examples):
            want = _greedy_alone(tiny, vec, task.prompt_ids(ex, tok), f, 10, operator)
            if eos in want:
                want = want[: want.index(eos)]
            assert curves["v"].outputs[i][j] == tok.decode(want, skip_special_tokens=True)
    assert len({tuple(o) for o in curves["v"].outputs}) > 1  # λ changed the text
    assert timing["rows"] == len(prompts) * (len(lambdas) + 1)


def test_controls_add_equal_norm(tiny):
    own = _vectors(tiny, 2)
    rand = [random_vectors(own, seed=s) for s in range(3)]
    norms = residual_norms(tiny)
    for v in [own, *rand]:
        assert all(float(v[l].norm()) == pytest.approx(1.0, abs=1e-5) for l in v.layers)
        for name, hook in steering_hooks(tiny, v, 0.3, scale="relative"):
            layer = int(name.split(".")[1])
            added = hook(torch.zeros(1, 1, 64), None)
            assert float(added.norm()) == pytest.approx(0.3 * norms[layer], rel=1e-5)


def test_shift_at_cost_hand_worked():
    # origin + three λ values; cost dips at the third point and is held at its running maximum
    shift = np.array([0.0, 0.2, 0.4, 0.5])
    cost = np.array([0.0, 0.1, 0.3, 0.2])
    assert shift_at_cost(shift, cost, 0.2) == pytest.approx(0.3)  # halfway between (0.1, 0.2) and (0.3, 0.4)
    assert shift_at_cost(shift, cost, 0.05) == pytest.approx(0.1)
    assert shift_at_cost(shift, cost, 9.0) == pytest.approx(0.4)  # never reached: the last distinct cost


def test_dose_response_self_efficiency_is_one_and_random_band(tiny):
    own = _vectors(tiny, 3)
    rand = [random_vectors(own, seed=s) for s in range(2)]
    res = dose_response(tiny, {"transferred": own, "child_own": own, "random": rand}, LetterJudge(),
                        lambdas=[0.3, 1.0, 3.0], prompts=["One", "Two words", "Three more words"],
                        max_new_tokens=8, n_boot=200)
    assert res.layers == [0, 1, 2] and len(res.kind_curves("random")) == 2
    assert res.efficiency is not None
    if np.isfinite(res.efficiency.value):
        assert res.efficiency.value == pytest.approx(1.0)
    table = res.table()
    assert set(table["kind"]) == {"transferred", "child_own", "random"}
    t = table[table.kind == "child_own"]
    base = res.baseline.judge[0].mean()
    np.testing.assert_allclose(t["shift"], res.curves["child_own"].judge.mean(1) - base)
    d = res.to_dict()
    assert d["lambdas"] == [0.3, 1.0, 3.0] and len(d["curves"]) == 4


def test_dose_response_figure_series_equal_data(tiny):
    from xsteer.figures import dose_response_figure

    own = _vectors(tiny, 4)
    res = dose_response(tiny, {"transferred": _vectors(tiny, 5), "child_own": own,
                               "random": [random_vectors(own, seed=s) for s in range(3)]},
                        LetterJudge(), lambdas=[0.5, 2.0], prompts=["One", "Two"], max_new_tokens=6, n_boot=100)
    fig = dose_response_figure(res)
    table = res.table()
    lines = {tr.name: tr for tr in fig.data if tr.name and tr.mode and "lines" in tr.mode}
    for kind, name in (("transferred", "transferred"), ("child_own", "child_own"), ("random", "random (mean of 3)")):
        rows = table[table.kind == kind]
        np.testing.assert_allclose(lines[name].x, rows["lam"])
        np.testing.assert_allclose(lines[name].y, rows["shift"])
    bands = [tr for tr in fig.data if tr.fill == "toself"]
    assert len(bands) == 3  # a CI band per non-random kind, the 5–95% band of the random directions
    assert res.plot().to_dict() == fig.to_dict()  # the result draws itself with the same figure
    html = res._repr_html_()
    assert "<table" in html and f"{res.budget:.3f}" in html


def test_where_bands_and_targeted_map():
    assert layer_bands(30, 6, 4)[:2] == [[0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9]]
    assert layer_bands(30, 6, 4)[-1] == list(range(24, 30))
    assert layer_bands(10, 5, 4) == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [5, 6, 7, 8, 9]]
    m = targeted_map([20, 25, 29], n_parent_layers=18, n_child_layers=30)
    assert m.mapping == {20: 12, 25: 15, 29: 17}


def test_a_band_that_silences_the_child_ranks_last(tiny, monkeypatch):
    """Every text empty at a strength (NLL undefined) is no steerability: hand-made curves, ranked."""
    import xsteer.fidelity.where as where
    from xsteer.fidelity.dose import Curve

    def curve(label, judge, nll):
        j, n = np.array(judge, float), np.array(nll, float)
        return Curve("child_own", label, [0.1], j, n, np.ones_like(j), np.ones_like(j), [[""] * j.shape[1]])

    base = curve("baseline", [[0.0, 0.0]], [[2.0, 2.0]])
    curves = {"band0-1": curve("band0-1", [[0.5, 0.5]], [[np.nan, np.nan]]),  # silent: judge 0.5, no NLL
              "band1-2": curve("band1-2", [[0.2, 0.4]], [[3.0, 3.0]])}
    monkeypatch.setattr(where, "run_curves", lambda *a, **k: (base, curves, {}))
    res = where.steerable_layers(tiny, _vectors(tiny, 0), LetterJudge(), bands=[[0, 1], [1, 2]], lambdas=[0.1])
    assert res.best == [1, 2]
    assert res.bands[0].score == pytest.approx(0.3 / 1.0) and res.bands[1].score == 0.0


def test_bad_lambdas_and_layers(tiny):
    for bad in ([], [-0.1, 0.2], [0.0], [float("inf")], [float("nan")]):
        with pytest.raises(ValueError, match="λ values|λ grid"):
            check_lambda_grid(bad)
    assert check_lambda_grid([0.3, 0.1, 0.1]) == [0.1, 0.3]
    with pytest.raises(ValueError, match="layers"):
        dose_response(tiny, {"child_own": _vectors(tiny, 0)}, LetterJudge(), layers=[5], prompts=["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        dose_response(tiny, {"child_own": _vectors(tiny, 0)}, LetterJudge(), lambdas=[])


def test_steering_fidelity_end_to_end_on_tiny_models(tiny):
    from xsteer.fidelity.steering import format_markdown, steering_fidelity

    parent = tiny_model("qwen2", n_layers=4, d_model=64, seed=1)
    res = steering_fidelity(parent, tiny, ["sentiment", "arith_truth"], lambdas=[0.5, 2.0], n_prompts=2,
                            n_random=2, max_new_tokens=4, where_prompts=2, where_lambdas=[1.0], n=32)
    (r,) = res.results  # arith_truth has no judge: skipped
    assert r.concept == "sentiment" and r.layers == res.where["sentiment"]["best"]
    pairs = res.transfer["sentiment"]["layer_pairs"]
    assert {int(c) for c in pairs} == set(r.layers)
    assert all(p == round(int(c) * 3 / 2) for c, p in pairs.items())  # targeted: same relative depth
    assert {c.kind for c in r.curves.values()} == {"transferred", "child_own", "child_own_k", "random", "mapped_random",
                                                    "wrong_concept"}
    md = format_markdown(res)
    assert "| sentiment |" in md and "Where" in md
    assert res.to_dict()["results"][0]["lambdas"] == [0.5, 2.0]


def test_steering_fidelity_operator_and_budget_reach_the_curves(tiny):
    from xsteer.fidelity.dose import shift_and_cost
    from xsteer.fidelity.steering import format_markdown, steering_fidelity

    parent = tiny_model("qwen2", n_layers=4, d_model=64, seed=1)
    kw = dict(lambdas=[0.5, 2.0], layers=[1, 2], n_prompts=2, n_random=0, max_new_tokens=4, n=32, k_pairs=(),
              prompting=False)
    add = steering_fidelity(parent, tiny, ["sentiment", "arith_truth"], **kw)  # arith_truth texts: the anchors
    clamp = steering_fidelity(parent, tiny, ["sentiment", "arith_truth"], operator="clamp:3.0", budget=0.25, **kw)
    (a,), (c,) = add.results, clamp.results
    assert c.settings["operator"] == {"name": "clamp", "value": 3.0} and c.budget == 0.25
    assert a.curves["child_own"].outputs != c.curves["child_own"].outputs  # the operator changed the generations
    own = c.curves["child_own"]
    assert c.shift_at_budget["child_own"].value == pytest.approx(float(shift_at_cost(*shift_and_cost(own, c.baseline), 0.25)))
    assert "operator clamp (value=3.0)" in format_markdown(clamp)
