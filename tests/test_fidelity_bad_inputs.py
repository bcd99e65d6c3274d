"""Bad input to the fidelity room's public functions (issue 26's classes: types, finiteness, ranges,
identity of model and vectors, degenerate data): each case is one clear ValueError / TypeError whose
message names the problem and the fix, or, where the input is legal, a correct result. Tiny models;
seconds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xsteer.concepts import Concept, concept_from_pairs, load_concept, load_judge
from xsteer.fidelity import (
    ConceptActs,
    auroc,
    auroc_ci,
    carry,
    check_readable,
    compare_at_budget,
    dose_response,
    fit_transfers,
    make_judge,
    pair_subset,
    random_null,
    readout_fidelity,
    steering_fidelity,
    targeted_map,
    task_side_effects,
    vectors_from_acts,
)
from xsteer.fidelity.dose import Curve, check_budget, check_lambda_grid, run_prompting
from xsteer.fidelity.readout import collect_model_acts, concept_anchor_texts, default_anchor_texts
from xsteer.fidelity.steering import resolve_concepts
from xsteer.fidelity.suite import SuiteConfig, fidelity_suite
from xsteer.fidelity.where import layer_bands, steerable_layers
from xsteer.models import tiny_model
from xsteer.transfer import ModelInfo, Transfer
from xsteer.vectors import SteeringVectors


@pytest.fixture(scope="module")
def ctx():
    child = tiny_model("llama", n_layers=3, d_model=64, seed=0)
    parent = tiny_model("qwen2", n_layers=4, d_model=64, seed=1)  # same width as the child
    narrow = tiny_model("llama", n_layers=3, d_model=48, seed=2)

    def vecs(model, seed=0, layers=None):
        g = torch.Generator().manual_seed(seed)
        n, d = model.cfg.n_layers, model.cfg.d_model
        return SteeringVectors.from_raw({l: torch.randn(d, generator=g) for l in (layers or range(n))},
                                        model_name=model.cfg.model_name, d_model=d, n_layers=n, method="mean_diff")

    concept = load_concept("sentiment", n=32)
    return SimpleNamespace(child=child, parent=parent, narrow=narrow, vecs=vecs, concept=concept,
                           no_judge=concept_from_pairs("plain", [(f"good {i}", f"bad {i}") for i in range(20)]),
                           prompts=["One", "Two words"])


def _letters(texts):
    return [t.count("e") / max(1, len(t)) for t in texts]


def _dose(c, vectors=None, judge=_letters, **kw):
    args = dict(lambdas=[0.5], prompts=c.prompts, max_new_tokens=3, n_boot=20)
    args.update(kw)
    return dose_response(c.child, vectors if vectors is not None else {"child_own": c.vecs(c.child)}, judge, **args)


class _Unk:
    """A tokenizer stub that knows ASCII only: everything else is its unknown token 0."""

    unk_token_id = 0

    def __call__(self, text):
        return {"input_ids": [ord(ch) if ord(ch) < 128 else 0 for ch in text]}


class _Blind:
    """A tokenizer stub that sees every text as the same token."""

    unk_token_id = None

    def __call__(self, text):
        return {"input_ids": [1]}


def _stub_model(tokenizer=None):
    return SimpleNamespace(tokenizer=tokenizer or _Unk(), cfg=SimpleNamespace(model_name="stub"))


def _bad_judge(output):
    return lambda texts: output(texts)


# (id, call(ctx), exception, words the message must contain: the problem and the fix)
CASES = [
    # ---- the NLL budget
    ("budget negative", lambda c: _dose(c, budget=-1), ValueError, ["budget", "> 0", "e.g. 0.5"]),
    ("budget nan", lambda c: _dose(c, budget=float("nan")), ValueError, ["budget", "finite"]),
    ("budget inf", lambda c: check_budget(float("inf")), ValueError, ["budget", "finite"]),
    ("budget string", lambda c: check_budget("0.5"), ValueError, ["budget", "e.g. 0.5"]),
    ("budget bool", lambda c: check_budget(True), ValueError, ["budget"]),
    # ---- the λ grid
    ("lambdas with nan", lambda c: _dose(c, lambdas=[0.1, float("nan")]), ValueError, ["finite", "> 0", "0.01"]),
    ("lambdas zero", lambda c: check_lambda_grid([0.0, 0.1]), ValueError, ["> 0", "negate the vectors"]),
    ("lambdas negative", lambda c: check_lambda_grid([-0.1]), ValueError, ["> 0", "negate"]),
    ("lambdas empty", lambda c: check_lambda_grid([]), ValueError, ["empty", "e.g."]),
    ("lambdas a string", lambda c: check_lambda_grid("0.1,0.2"), TypeError, ["list of numbers"]),
    ("lambdas of strings", lambda c: check_lambda_grid(["0.1"]), TypeError, ["numbers like"]),
    ("where lambdas nan", lambda c: steerable_layers(c.child, c.vecs(c.child), _letters, lambdas=[float("nan")]),
     ValueError, ["finite"]),
    # ---- counts and sizes
    ("n_boot zero", lambda c: _dose(c, n_boot=0), ValueError, ["n_boot", ">= 1"]),
    ("n_boot negative", lambda c: compare_at_budget(None, {}, n_boot=-3), ValueError, ["n_boot", ">= 1"]),
    ("n_boot float", lambda c: _dose(c, n_boot=2.5), TypeError, ["n_boot", "int"]),
    ("auroc_ci n_boot zero", lambda c: auroc_ci([1.0, 2.0], [0.0, 1.0], n_boot=0), ValueError, ["n_boot", "e.g. 1000"]),
    ("readout n_boot zero", lambda c: readout_fidelity(c.parent, c.child, [c.concept], n_boot=0), ValueError, ["n_boot"]),
    ("readout n_random zero", lambda c: readout_fidelity(c.parent, c.child, [c.concept], n_random=0), ValueError,
     ["n_random", ">= 1"]),
    ("random_null n zero", lambda c: random_null(None, 0, n=0), ValueError, ["n_random", ">= 1"]),
    ("max_new_tokens zero", lambda c: _dose(c, max_new_tokens=0), ValueError, ["max_new_tokens", ">= 1"]),
    ("one prompt", lambda c: _dose(c, prompts=["Only one"]), ValueError, ["too few", "at least 2"]),
    ("prompts one string", lambda c: _dose(c, prompts="Tell me"), TypeError, ["list of strings", "wrap"]),
    ("empty prompt", lambda c: _dose(c, prompts=["a", " "]), ValueError, ["non-empty", "drop or fix"]),
    ("steering n_prompts one", lambda c: steering_fidelity(c.parent, c.child, [c.concept], n_prompts=1), ValueError,
     ["n_prompts", ">= 2"]),
    ("steering n_prompts too many", lambda c: steering_fidelity(c.parent, c.child, [c.concept], n_prompts=99),
     ValueError, ["exceeds", "pass fewer"]),
    ("k pairs zero", lambda c: steering_fidelity(c.parent, c.child, [c.concept], k_pairs=[0], layers=[1]),
     ValueError, ["k_pairs", ">= 1"]),
    ("pair subset too large", lambda c: pair_subset(10, 11, 0), ValueError, ["outside 1..10", "smaller k"]),
    ("carry n_mapped_random negative", lambda c: carry(None, None, ({}, {}), n_mapped_random=-1), ValueError,
     ["n_mapped_random", ">= 0"]),
    ("side effect one item", lambda c: task_side_effects(c.child, {}, {}, n_items=1), ValueError, ["n_items", ">= 2"]),
    ("side effect λ missing", lambda c: task_side_effects(c.child, {"v": c.vecs(c.child)}, {}), ValueError,
     ["No operating λ", "lams="]),
    ("side effect λ nan", lambda c: task_side_effects(c.child, {"v": c.vecs(c.child)}, {"v": float("nan")}),
     ValueError, ["finite", "budget"]),
    ("suite one prompt", lambda c: SuiteConfig(n_prompts=1), ValueError, ["n_prompts", "positive int"]),
    ("suite lambdas nan", lambda c: SuiteConfig(lambdas=(float("nan"),)), ValueError, ["finite"]),
    ("suite one ARC item", lambda c: SuiteConfig(side_effect_items=1), ValueError, ["0 (skip) or >= 2"]),
    # ---- layers
    ("layers outside the vectors", lambda c: _dose(c, layers=[1, 5]), ValueError, ["no direction at layers [5]", "pick"]),
    ("layers empty", lambda c: _dose(c, layers=[]), ValueError, ["No steering layer", "e.g. layers="]),
    ("steering layers empty", lambda c: steering_fidelity(c.parent, c.child, [c.concept], layers=[]), ValueError,
     ["layers is empty", "None to search"]),
    ("targeted map outside the child", lambda c: targeted_map([40], 18, 30), ValueError, ["outside the child", "0..29"]),
    ("targeted map empty", lambda c: targeted_map([], 18, 30), ValueError, ["at least one child layer"]),
    ("band width zero", lambda c: layer_bands(30, 0), ValueError, ["width", ">= 1"]),
    ("a band outside the vectors", lambda c: steerable_layers(c.child, c.vecs(c.child, layers=[0, 1]), _letters,
                                                              bands=[[1, 2]]), ValueError, ["no direction at layers [2]", "pick bands"]),
    ("an empty band", lambda c: steerable_layers(c.child, c.vecs(c.child), _letters, bands=[[]]), ValueError,
     ["at least one layer", "bands=None"]),
    # ---- identity of model and vectors
    ("vectors of another model, same width", lambda c: _dose(c, {"transferred": c.vecs(c.parent, layers=[0, 1, 2])}),
     ValueError, ["belong to", "not to the steered model", "Transfer"]),
    ("vectors of another width", lambda c: _dose(c, {"child_own": c.vecs(c.narrow)}), ValueError,
     ["Width mismatch", "Fix"]),
    ("vectors not SteeringVectors", lambda c: _dose(c, {"child_own": torch.zeros(64)}), TypeError,
     ["pass SteeringVectors"]),
    ("old kind name own", lambda c: _dose(c, {"own": c.vecs(c.child)}), ValueError, ["'child_own'", "rename"]),
    ("no kinds", lambda c: _dose(c, {}), ValueError, ["at least one vector kind"]),
    ("a kind without vectors", lambda c: _dose(c, {"random": []}), ValueError, ["no vectors of kind", "drop the kind"]),
    ("child_own_k not a mapping", lambda c: _dose(c, {"child_own_k": [c.vecs(c.child)]}), TypeError,
     ["{k: vectors", "e.g."]),
    ("child_own_k with k zero", lambda c: _dose(c, {"child_own_k": {0: c.vecs(c.child)}}), ValueError, ["k", ">= 1"]),
    ("transfers empty", lambda c: readout_fidelity(c.parent, c.child, [c.concept], transfers={}), ValueError,
     ["non-empty dict", "fit_transfers"]),
    ("transfers unfitted", lambda c: readout_fidelity(c.parent, c.child, [c.concept],
                                                      transfers={("greedy", "ridge"): Transfer()}), ValueError,
     ["not a fitted Transfer", ".fit("]),
    ("transfers of other models", lambda c: readout_fidelity(c.narrow, c.child, [c.concept], transfers={
        ("greedy", "ridge"): Transfer("greedy", "ridge").fit(c.parent, c.child, [f"text {i}" for i in range(40)], progress=False)}),
     ValueError, ["was fitted for parent", "Fix"]),
    ("transfers keyed by a string", lambda c: readout_fidelity(c.parent, c.child, [c.concept],
                                                              transfers={"greedy": object()}), TypeError,
     ["(layer map name, adapter name)"]),
    ("adapters empty", lambda c: readout_fidelity(c.parent, c.child, [c.concept], adapters=[]), ValueError,
     ["adapters", "non-empty list"]),
    ("layer maps a string", lambda c: readout_fidelity(c.parent, c.child, [c.concept], layer_maps="greedy"),
     ValueError, ["layer_maps", "non-empty list"]),
    ("anchor mode unknown", lambda c: readout_fidelity(c.parent, c.child, [c.concept], anchor_mode="most"), ValueError,
     ["Unknown anchor mode", "leave_concept_out"]),
    # ---- judges
    ("no judge in steering", lambda c: steering_fidelity(c.parent, c.child, [c.no_judge]), ValueError,
     ["has a judge", "judge="]),
    ("concept without judge in dose_response", lambda c: _dose(c, judge=None, concept=c.no_judge), ValueError,
     ["has no judge", "judge="]),
    ("judge of the wrong shape", lambda c: _dose(c, judge=lambda t: [0.0]), ValueError,
     ["'<lambda>'", "shape", "one finite number per text"]),
    ("judge returning nan", lambda c: _dose(c, judge=lambda t: [float("nan")] * len(t)), ValueError,
     ["returned nan", "instead of NaN"]),
    ("judge returning words", lambda c: _dose(c, judge=lambda t: ["good"] * len(t)), ValueError,
     ["not numbers", "one finite number per text"]),
    ("judge a class", lambda c: make_judge(dict), TypeError, ["the class dict", "instance"]),
    ("judge unknown name", lambda c: make_judge("vibes"), ValueError, ["Unknown judge 'vibes'", ".score(texts)"]),
    ("judge none", lambda c: make_judge(None), ValueError, ["No judge given", "built-in name"]),
    ("concept judge a number", lambda c: concept_from_pairs("x", [(f"a{i}", f"b{i}") for i in range(20)], judge=3),
     TypeError, ["a int", ".score(texts)"]),
    ("empty instruction", lambda c: concept_from_pairs("x", [(f"a{i}", f"b{i}") for i in range(20)], instruction=" "),
     ValueError, ["instruction", "'Answer in French.'"]),
    ("prompting without instruction", lambda c: run_prompting(c.child, _letters, c.prompts, ""), ValueError,
     ["needs an instruction", "Answer in French"]),
    ("judge spec without colon", lambda c: load_judge("myjudge"), ValueError, ["module:NAME", "file.py:NAME"]),
    ("judge file missing", lambda c: load_judge("/nowhere/j.py:J"), ValueError, ["no Python file", "file.py:NAME"]),
    ("judge module missing", lambda c: load_judge("no_such_module_x:J"), ValueError, ["cannot import", "PYTHONPATH"]),
    ("judge attribute missing", lambda c: load_judge("json:nothing_here"), ValueError, ["no attribute", "name a judge"]),
    ("judge class needing arguments", lambda c: load_judge("fractions:Fraction"), TypeError, ["no .score"]),
    # ---- concepts and their data
    ("concepts empty", lambda c: resolve_concepts([], n=32, seed=0, data_dir=None), ValueError, ["No concepts"]),
    ("concept of another type", lambda c: resolve_concepts([3], n=32, seed=0, data_dir=None), TypeError,
     ["a name", "Concept"]),
    ("concept names repeat", lambda c: resolve_concepts([c.concept, c.concept], n=32, seed=0, data_dir=None), ValueError,
     ["repeat", "its own name"]),
    ("n pairs a string", lambda c: load_concept("sentiment", n="64"), TypeError, ["n (pairs per concept)", "int"]),
    ("pairs the model cannot read", lambda c: check_readable(_stub_model(), concept_from_pairs(
        "greek", [(f"καλό {i} αα", f"κακό {i} ββ") for i in range(20)])), ValueError,
     ["unknown to", "not in a language or script", "Give pairs"]),
    ("pairs that tokenize the same", lambda c: check_readable(_stub_model(_Blind()), concept_from_pairs(
        "same", [(f"a{i}", f"b{i}") for i in range(20)])), ValueError, ["tokenizes to the same ids", "Give pairs"]),
    ("NaN scores to rank", lambda c: auroc(np.array([1.0, np.nan]), np.array([0.0, 1.0])), ValueError,
     ["NaN or inf", "Fix"]),
    ("identical pair activations", lambda c: vectors_from_acts({0: torch.ones(4, 3)}, {0: torch.ones(4, 3)},
                                                               ModelInfo("m", 3, 1)), ValueError,
     ["zero direction", "Fix"]),
    ("hold_out not callable", lambda c: steering_fidelity(c.parent, c.child, [c.concept], hold_out="topic"), TypeError,
     ["hold_out must be a function"]),
    # ---- the suite
    ("suite estimator a string", lambda c: fidelity_suite(c.parent, c.child, [c.concept], {"x": "ridge"}), TypeError,
     ["Transfer", "function of no arguments"]),
    ("suite direction unknown", lambda c: fidelity_suite(c.parent, c.child, [c.concept], directions=["sideways"]),
     ValueError, ["directions must be some of", "parent_to_child"]),
    ("suite config a dict", lambda c: fidelity_suite(c.parent, c.child, [c.concept], config={"quick": True}), TypeError,
     ["SuiteConfig", "quick()"]),
    ("suite concepts without judges", lambda c: fidelity_suite(c.parent, c.child, [c.no_judge]), ValueError,
     ["has a judge", "function"]),
]


@pytest.mark.parametrize("call, error, needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(ctx, call, error, needles):
    with pytest.raises(error) as info:
        call(ctx)
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_the_table_has_the_issue_26_cases():
    assert len(CASES) >= 40


# ---- legal input that used to go wrong: a correct result


def test_readout_with_prefitted_transfers_equals_fitting_inside(ctx):
    """readout_fidelity(transfers=...) — the documented reuse of fitted transfers — gives what fitting
    the same transfer inside gives (it used to fail: 'collect_activations got no texts')."""
    concept = ctx.concept
    anchors, _ = default_anchor_texts([concept], n_task=0)
    anchors += [f"A neutral sentence about item number {i}." for i in range(60)]
    kept = concept_anchor_texts(anchors, concept)
    acts = [collect_model_acts(m, [concept], kept) for m in (ctx.parent, ctx.child)]
    transfers = fit_transfers(acts[0], acts[1], kept, ["greedy"], ["ridge"])
    reused = readout_fidelity(ctx.parent, ctx.child, [concept], transfers=transfers, n_random=20, n_boot=50,
                              n_mapped_random=2)
    inside = readout_fidelity(ctx.parent, ctx.child, [concept], layer_maps=["greedy"], adapters=["ridge"],
                              anchor_texts=anchors, n_random=20, n_boot=50, n_mapped_random=2)
    got = [t.auroc.value for t in reused.concepts[0].transferred]
    want = [t.auroc.value for t in inside.concepts[0].transferred]
    assert len(got) == 3 and got == pytest.approx(want)
    (one,) = transfers.values()  # a single fitted Transfer needs no dict around it
    alone = readout_fidelity(ctx.parent, ctx.child, [concept], transfers=one, n_random=20, n_boot=50, n_mapped_random=2)
    assert [t.auroc.value for t in alone.concepts[0].transferred] == pytest.approx(got)


def test_a_single_concept_name_is_a_list_of_one():
    (c,) = resolve_concepts("sentiment", n=32, seed=0, data_dir=None)
    assert isinstance(c, Concept) and c.name == "sentiment" and c.judge == "sentiment"


def test_budget_none_is_chosen_from_the_curves():
    base = Curve("baseline", "baseline", [0.0], np.zeros((1, 2)), np.ones((1, 2)), np.ones((1, 2)), np.ones((1, 2)), [["", ""]])
    up = lambda kind: Curve(kind, kind, [0.1], np.full((1, 2), 0.3), np.full((1, 2), 1.4), np.ones((1, 2)),
                            np.ones((1, 2)), [["", ""]])
    out = compare_at_budget(base, {"transferred": up("transferred"), "child_own": up("child_own")}, n_boot=10)
    assert out.budget == pytest.approx(0.4) and out.efficiency.value == pytest.approx(1.0)
