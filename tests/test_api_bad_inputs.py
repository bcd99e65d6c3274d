"""Bad input through the Python API (the notebook path), beside the command-line table in
test_bad_inputs.py: every case is one clear ValueError / TypeError that names the problem and the
fix, raised before any forward pass, or a warning where the input is legal but almost certainly a
mistake, or a result checked against an independent computation. Tiny models only: seconds."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xsteer.activations import collect_activations
from xsteer.contrast import arithmetic_pairs
from xsteer.evaluate import Evaluator, check_lambdas
from xsteer.extract import extract_vectors, fit_direction, random_vectors, sign_vote
from xsteer.interop import from_lm_eval, to_lm_eval
from xsteer.kv_steer import KVVectors, apply_kv_steering, kv_generate
from xsteer.models import model_fingerprint, tiny_model
from xsteer.operators import Clamp, Project, operator_from_dict
from xsteer.pipeline import TransferConfig, run_transfer
from xsteer.positions import Layout, layout
from xsteer.records import Record, RecordStore
from xsteer.schedules import Band, Constant, PerLayer, schedule_from_dict, search_band
from xsteer.stats import accuracy_ci, compare
from xsteer.steer import REFERENCE_TEXTS, relative_size, residual_norms, steer, steering_hooks
from xsteer.tasks import load_task
from xsteer.transfer import ModelInfo, Transfer
from xsteer.vectors import SteeringVectors

TEXTS = ["The cat sat on the mat.", "Water boils at one hundred degrees."]


@pytest.fixture(scope="module")
def env():
    model = tiny_model("llama", 3, 64, 0)
    twin = tiny_model("llama", 3, 64, 7)  # same architecture, width and depth; other weights
    narrow = tiny_model("qwen3", 2, 48, 1)
    vectors = SteeringVectors.random(model, seed=0)
    wide = SteeringVectors.from_raw({0: torch.ones(96)}, model_name="wide", d_model=96, n_layers=3, method="x")
    loglik = load_task("arith", k_shot=0)
    generate = load_task("arith", mode="generate", k_shot=0)
    return SimpleNamespace(
        model=model, twin=twin, narrow=narrow, vectors=vectors, wide=wide, loglik=loglik, generate=generate,
        examples=loglik.split("validation")[:2], gen_examples=generate.split("validation")[:2],
    )


def _run(model, vectors=None, lam=0.0, **kw):
    """Last-position logits of TEXTS[0] (under steering when vectors are given)."""
    ids = model.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        if vectors is None:
            return model(ids)[0, -1]
        with steer(model, vectors, lam, **kw):
            return model(ids)[0, -1]


def _hf_added(model, raw: dict[int, torch.Tensor]):
    """Independent reference: add raw vectors with plain torch hooks on the HF decoder layers."""
    handles = [
        model.original_model.model.layers[l].register_forward_hook(
            lambda mod, inp, out, v=v: (out[0] + v, *out[1:]) if isinstance(out, tuple) else out + v
        )
        for l, v in raw.items()
    ]
    try:
        ids = model.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            return model.original_model(ids).logits[0, -1]
    finally:
        for h in handles:
            h.remove()


def _steer(e, vectors, lam, **kw):
    with steer(e.model, vectors, lam, **kw):
        pass


def _sweep(e, lambdas, mode="loglik", condition="c", vectors="default"):
    task, examples = (e.loglik, e.examples) if mode == "loglik" else (e.generate, e.gen_examples)
    ev = Evaluator(e.model, task, max_new_tokens=2, progress=False)
    return ev.sweep(examples, "validation", condition, e.vectors if vectors == "default" else vectors, lambdas)


def _saved(tmp, vectors, edit):
    """Save, let ``edit`` change the sidecar dict, return the path to load."""
    vectors.save(tmp / "v")
    meta = json.loads((tmp / "v.json").read_text())
    edit(meta)
    (tmp / "v.json").write_text(json.dumps(meta))
    return tmp / "v"


def _transfer(e):
    """A transfer narrow ← model fitted on random paired activations (no text needed)."""
    g = torch.Generator().manual_seed(0)
    pa = {l: torch.randn(40, 64, generator=g) for l in range(3)}
    ca = {l: torch.randn(40, 48, generator=g) for l in range(2)}
    return Transfer("greedy", "ridge").fit_activations(pa, ca, ModelInfo.from_model(e.model), ModelInfo.from_model(e.narrow))


def _lm_eval_file(tmp, coefficient):
    path = tmp / "steer.pt"
    torch.save({"layers.1": {"steering_vector": torch.ones(64), "steering_coefficient": coefficient,
                             "action": "add", "bias": None, "head_index": None}}, path)
    return path


# Each case: (function of (env, tmp_path), exception type, phrases the message must hold: the
# problem and the fix).
CASES = {
    # ---------------------------------------------------------------- steer: λ
    "steer-lam-nan": (lambda e, t: _steer(e, e.vectors, float("nan")), ValueError, ["finite", "lam=0.5"]),
    "steer-lam-inf": (lambda e, t: _steer(e, e.vectors, float("inf")), ValueError, ["finite", "lam=0.5"]),
    "steer-lam-overflows-float32": (lambda e, t: _steer(e, e.vectors, 1e39), ValueError, ["float32", "lam=0.5"]),
    "steer-lam-string": (lambda e, t: _steer(e, e.vectors, "0.5"), TypeError, ["number", "lam=0.5"]),
    "steer-lam-bool": (lambda e, t: _steer(e, e.vectors, True), TypeError, ["number"]),
    "steer-row-lam-nan": (lambda e, t: _steer(e, e.vectors, torch.tensor([0.1, float("nan")])), ValueError, ["NaN", "lam=0.5"]),
    "steer-lam-2d": (lambda e, t: _steer(e, e.vectors, torch.ones(2, 2)), ValueError, ["1-D", "per batch row"]),
    # ---------------------------------------------------------------- steer: layers, vectors, options
    "steer-layers-twice": (lambda e, t: _steer(e, e.vectors, 1.0, layers=[1, 1]), ValueError, ["[1] more than once", "list each once"]),
    "steer-layers-string": (lambda e, t: _steer(e, e.vectors, 1.0, layers="12"), TypeError, ["list of integers"]),
    "steer-layers-empty": (lambda e, t: _steer(e, e.vectors, 1.0, layers=[]), ValueError, ["steers nothing", "None for all"]),
    "steer-layer-without-vector": (lambda e, t: _steer(e, e.vectors.select([0]), 1.0, layers=[2]), ValueError, ["No steering vector for layers [2]"]),
    "steer-vectors-dict": (lambda e, t: _steer(e, {0: torch.ones(64)}, 1.0), TypeError, ["SteeringVectors.from_raw"]),
    "steer-vectors-other-width": (lambda e, t: _steer(e, e.wide, 1.0), ValueError, ["96-wide", "is 64-wide", "Transfer"]),
    "steer-vectors-other-model": (lambda e, t: steer(e.twin, e.vectors, 1.0).__enter__(), ValueError,
                                  ["tiny-llama-L3-d64-s0", "tiny-llama-L3-d64-s7", "Transfer", "check_model=False"]),
    "steer-operator-number": (lambda e, t: _steer(e, e.vectors, 1.0, operator=5), TypeError, ["Operator", "Add()"]),
    "steer-schedule-number": (lambda e, t: _steer(e, e.vectors, 1.0, schedule=3), TypeError, ["Schedule", "band:4:6"]),
    "steer-scale-unknown": (lambda e, t: _steer(e, e.vectors, 1.0, scale="percent"), ValueError, ["'absolute' or 'relative'"]),
    "steer-hf-model": (lambda e, t: steer(e.model.original_model, e.vectors, 1.0).__enter__(), TypeError, ["load_model"]),
    "steering-hooks-lam-nan": (lambda e, t: steering_hooks(e.model, e.vectors, float("nan")), ValueError, ["finite"]),
    # ---------------------------------------------------------------- relative_size, residual_norms
    "relative-size-other-width": (lambda e, t: relative_size(e.model, e.wide, 1.0), ValueError, ["96-wide", "Transfer"]),
    "relative-size-lam-nan": (lambda e, t: relative_size(e.model, e.vectors, float("nan")), ValueError, ["finite", "lam=0.5"]),
    "relative-size-row-lam": (lambda e, t: relative_size(e.model, e.vectors, torch.ones(2)), TypeError, ["number"]),
    "relative-size-other-model": (lambda e, t: relative_size(e.twin, e.vectors, 1.0), ValueError, ["check_model=False"]),
    "residual-norms-one-string": (lambda e, t: residual_norms(e.model, "one text"), TypeError, ["list of strings", "['one text']"]),
    "residual-norms-no-texts": (lambda e, t: residual_norms(e.model, []), ValueError, ["texts=[]", "None for REFERENCE_TEXTS"]),
    # ---------------------------------------------------------------- SteeringVectors
    "vectors-times-string": (lambda e, t: e.vectors * "2", TypeError, ["by a number", "2 * v"]),
    "vectors-times-zero": (lambda e, t: 0 * e.vectors, ValueError, ["steer nothing", "λ = 0"]),
    "vectors-times-nan": (lambda e, t: e.vectors * float("nan"), ValueError, ["finite", "-v"]),
    "vectors-divided-by-zero": (lambda e, t: e.vectors / 0, ValueError, ["divide", "by 0"]),
    "vectors-directions-list": (lambda e, t: SteeringVectors([torch.ones(4)], "m", 4, 1, "x"), TypeError, ["dict layer", "from_raw"]),
    "vectors-from-raw-list": (lambda e, t: SteeringVectors.from_raw([torch.ones(4)], model_name="m", d_model=4, n_layers=1, method="x"),
                              TypeError, ["dict layer", "from_raw"]),
    "vectors-sign-agreement-above-1": (lambda e, t: SteeringVectors.from_raw({0: torch.ones(4)}, model_name="m", d_model=4, n_layers=1,
                                                                              method="x", sign_agreement={0: 1.5}), ValueError, ["[0, 1]"]),
    "vectors-select-string": (lambda e, t: e.vectors.select("12"), TypeError, ["list of integers"]),
    "vectors-random-negative-seed": (lambda e, t: SteeringVectors.random(e.model, -1), ValueError, ["seed", ">= 0"]),
    "vectors-random-of-a-dict": (lambda e, t: SteeringVectors.random({}, 0), TypeError, ["vectors to imitate or a loaded model"]),
    "vectors-load-bad-sidecar": (lambda e, t: SteeringVectors.load(_saved(t, e.vectors, lambda m: m.update(explained_variance=[1]))),
                                 ValueError, ["does not hold valid", "Re-save"]),
    "vectors-load-missing-key": (lambda e, t: SteeringVectors.load(_saved(t, e.vectors, lambda m: m.pop("method"))),
                                 ValueError, ["missing keys ['method']", "Re-save"]),
    "vectors-load-for-other-model": (lambda e, t: SteeringVectors.load(_saved(t, e.vectors, lambda m: None), model=e.twin),
                                     ValueError, ["another model", "check_model=False"]),
    # ---------------------------------------------------------------- extraction and activations
    "extract-pairs-string": (lambda e, t: extract_vectors(e.model, "pos vs neg"), TypeError, ["ContrastPair(pos, neg)"]),
    "extract-pairs-of-ints": (lambda e, t: extract_vectors(e.model, [1, 2]), TypeError, ["pairs[0]", "ContrastPair(positive, negative)"]),
    "extract-batch-size-0": (lambda e, t: extract_vectors(e.model, arithmetic_pairs(4), batch_size=0), ValueError, ["batch_size must be >= 1", "batch_size=1"]),
    "extract-layers-string": (lambda e, t: extract_vectors(e.model, arithmetic_pairs(4), layers="12"), TypeError, ["list of integers"]),
    "extract-negative-seed": (lambda e, t: extract_vectors(e.model, arithmetic_pairs(4), seed=-3), ValueError, ["seed must be >= 0"]),
    "extract-held-out-string": (lambda e, t: extract_vectors(e.model, arithmetic_pairs(4), held_out="0.25"), ValueError, ["[0, 1)", "held_out=0.25"]),
    "extract-hf-model": (lambda e, t: extract_vectors(e.model.original_model, arithmetic_pairs(4)), TypeError, ["load_model"]),
    "fit-direction-nan": (lambda e, t: fit_direction(np.array([[1.0, np.nan], [0.5, 1.0]])), ValueError, ["NaN", "float32"]),
    "sign-vote-other-width": (lambda e, t: sign_vote(np.ones(3), np.ones((4, 5))), ValueError, ["5-wide", "(d,)"]),
    "collect-one-string": (lambda e, t: collect_activations(e.model, "one text"), TypeError, ["list of strings", "['one text']"]),
    "collect-batch-size-0": (lambda e, t: collect_activations(e.model, TEXTS, batch_size=0), ValueError, ["batch_size must be >= 1"]),
    "collect-layers-empty": (lambda e, t: collect_activations(e.model, TEXTS, layers=[]), ValueError, ["selects no layer", "None for every block"]),
    # ---------------------------------------------------------------- operators and schedules
    "clamp-string": (lambda e, t: Clamp("0.5"), TypeError, ["number", "Clamp(0.5)"]),
    "clamp-nan": (lambda e, t: Clamp(float("nan")), ValueError, ["finite", "Clamp(0.5)"]),
    "operator-dict-extra-field": (lambda e, t: operator_from_dict({"name": "add", "value": 1}), ValueError, ["no fields ['value']", "to_dict()"]),
    "constant-nan": (lambda e, t: Constant(float("nan")), ValueError, ["finite", "Band(4, 6"]),
    "per-layer-nan": (lambda e, t: PerLayer({1: float("nan")}), ValueError, ["layer 1", "finite"]),
    "per-layer-not-a-dict": (lambda e, t: PerLayer([1.0, 2.0]), TypeError, ["dict layer -> multiplier", "PerLayer({4: 1.0"]),
    "band-fractional-start": (lambda e, t: Band(1.5, 2), TypeError, ["integers", "start=1.5"]),
    "band-zero-width": (lambda e, t: Band(0, 0), ValueError, ["width >= 1"]),
    "relative-norm-schedule-gone": (lambda e, t: schedule_from_dict({"name": "relative_norm", "value": 0.1}), ValueError, ["scale='relative'", "Constant"]),
    "search-band-nan-strength": (lambda e, t: search_band(lambda b: 1.0, 4, strengths=[float("nan")]), ValueError, ["finite", "strengths=[0.1"]),
    "search-band-strengths-string": (lambda e, t: search_band(lambda b: 1.0, 4, strengths="0.5"), ValueError, ["list of strengths"]),
    "search-band-objective-nan": (lambda e, t: search_band(lambda b: float("nan"), 4, strengths=[0.5]), ValueError, ["returned nan", "finite number"]),
    "search-band-wide-widths": (lambda e, t: search_band(lambda b: 1.0, 4, strengths=[0.5], widths=[6]), ValueError, ["1..4"]),
    "layout-not-a-layout": (lambda e, t: layout(5).__enter__(), TypeError, ["Layout or a function"]),
    "layout-negative-generated": (lambda e, t: Layout.of(torch.ones(1, 3), -1), ValueError, ["generated >= 0"]),
    # ---------------------------------------------------------------- the evaluator
    "sweep-lam-nan-loglik": (lambda e, t: _sweep(e, [0.1, float("nan")]), ValueError, ["finite", "[0.01, 0.1, 1]"]),
    "sweep-lam-nan-generate": (lambda e, t: _sweep(e, [float("nan")], mode="generate"), ValueError, ["finite", "[0.01, 0.1, 1]"]),
    "sweep-lam-scalar": (lambda e, t: _sweep(e, 0.5), TypeError, ["list of numbers"]),
    "sweep-vectors-other-model": (lambda e, t: Evaluator(e.twin, e.loglik, progress=False).sweep(e.examples, "validation", "c", e.vectors, [0.5]),
                                  ValueError, ["another model", "check_model=False"]),
    "sweep-duplicate-ids": (lambda e, t: Evaluator(e.model, e.loglik, progress=False).sweep(
        [e.examples[0], e.examples[0]], "validation", "c", e.vectors, [0.5]), ValueError, ["share ids", "its own id"]),
    "sweep-one-example": (lambda e, t: Evaluator(e.model, e.loglik, progress=False).sweep(e.examples[0], "validation", "c", e.vectors, [0.5]),
                          TypeError, ["list of Examples"]),
    "evaluator-batch-size-0": (lambda e, t: Evaluator(e.model, e.loglik, batch_size=0), ValueError, ["batch_size must be >= 1"]),
    "evaluator-max-new-tokens-0": (lambda e, t: Evaluator(e.model, e.generate, max_new_tokens=0), ValueError, ["max_new_tokens must be >= 1"]),
    "evaluator-scale-unknown": (lambda e, t: Evaluator(e.model, e.loglik, scale="percent"), ValueError, ["'absolute' or 'relative'"]),
    "evaluator-schedule-beyond-model": (lambda e, t: Evaluator(e.model, e.loglik, schedule="band:2:5"), ValueError, ["layers [6]", "has 3 blocks"]),
    "evaluator-task-name": (lambda e, t: Evaluator(e.model, "arith"), TypeError, ["load_task"]),
    "sample-temperature-0": (lambda e, t: Evaluator(e.model, e.loglik, progress=False).sample(e.examples, "test", 2, temperature=0),
                             ValueError, ["temperature must be > 0", "0.7"]),
    "check-lambdas-negative": (lambda e, t: check_lambdas([0.1, -0.2]), ValueError, [">= 0", "-vectors"]),
    # ---------------------------------------------------------------- statistics
    "accuracy-ci-n-boot-0": (lambda e, t: accuracy_ci([1, 0, 1], n_boot=0), ValueError, ["n_boot", "n_boot=10_000"]),
    "accuracy-ci-negative-seed": (lambda e, t: accuracy_ci([1, 0, 1], seed=-1), ValueError, ["seed", "seed=0"]),
    "compare-conditions-list": (lambda e, t: compare([1, 0], [[1, 1]]), TypeError, ["dict name", "{'steered'"]),
    # ---------------------------------------------------------------- interop
    "lm-eval-coefficient-nan": (lambda e, t: from_lm_eval(_lm_eval_file(t, float("nan")), model=e.model), ValueError, ["steering_coefficient", "finite"]),
    "lm-eval-coefficient-string": (lambda e, t: from_lm_eval(_lm_eval_file(t, "x"), model=e.model), ValueError, ["steering_coefficient", "number"]),
    "lm-eval-width-as-string": (lambda e, t: from_lm_eval(to_lm_eval(e.vectors, t / "w.pt", 0.5), d_model="64"), TypeError,
                                ["d_model must be an integer", "str '64'"]),
    "lm-eval-export-other-model": (lambda e, t: to_lm_eval(e.vectors, t / "x.pt", 0.5, model=e.twin), ValueError, ["check_model=False"]),
    "lm-eval-export-lam-nan": (lambda e, t: to_lm_eval(e.vectors, t / "x.pt", float("nan")), ValueError, ["finite", "lam=0.5"]),
    # ---------------------------------------------------------------- KV-cache steering
    "kv-generate-text-prompt": (lambda e, t: kv_generate(e.model, "Hello", KVVectors({0: torch.ones(2, 16)}, {0: torch.ones(2, 16)}), 0.0, 1.0,
                                                         max_new_tokens=2), TypeError, ["token ids", "tokenizer(text)"]),
    "kv-vectors-nan": (lambda e, t: KVVectors({0: torch.full((2, 16), float("nan"))}, {0: torch.ones(2, 16)}), ValueError, ["NaN", "extract them again"]),
    "kv-steering-strength-nan": (lambda e, t: apply_kv_steering(None, KVVectors({0: torch.ones(2, 16)}, {0: torch.ones(2, 16)}), 0.0, float("nan")),
                                 ValueError, ["c_values", "finite"]),
    # ---------------------------------------------------------------- transfer and the protocol
    "transfer-pairs-of-other-counts": (lambda e, t: _transfer(e).apply(e.vectors, ({0: torch.ones(4, 48)}, {0: torch.ones(3, 48)})),
                                       ValueError, ["4 positive rows but 3 negative", "pair i"]),
    "transfer-pairs-nan": (lambda e, t: _transfer(e).apply(e.vectors, ({0: torch.full((4, 48), float("nan"))}, {0: torch.ones(4, 48)})),
                           ValueError, ["NaN", "float32"]),
    "transfer-vectors-of-other-parent": (lambda e, t: _transfer(e).apply(SteeringVectors.random(e.twin, 0)), ValueError, ["Fix: fit a Transfer"]),
    "config-field-typo": (lambda e, t: setattr(TransferConfig(), "lambda", [0.5]), AttributeError, ["no field 'lambda'", "Did you mean 'lambdas'"]),
    "record-lam-nan": (lambda e, t: Record("test", "c", "q1", math.nan, "h", "out", None, "4", False), ValueError, ["finite", "keys the record"]),
    "record-store-add-one": (lambda e, t: RecordStore().add(Record("test", "c", "q1", 0.5, "h", "out", None, "4", False)), TypeError, ["pass [record]"]),
    "config-dict": (lambda e, t: run_transfer({"parent": "tiny:llama:3:64:0"}), TypeError, ["TransferConfig(**settings)"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_problem_and_fix(case, env, tmp_path):
    call, kind, needles = CASES[case]
    with pytest.raises(kind) as info:
        call(env, tmp_path)
    message = str(info.value)
    assert "\n" not in message.strip(), message
    for needle in needles:
        assert needle in message, (needle, message)


# ---------------------------------------------------------------- warnings: legal, almost surely a mistake


def test_schedule_that_zeroes_every_vector_layer_warns(env):
    with pytest.warns(UserWarning, match="nothing is steered"):
        _steer(env, env.vectors.select([0, 1]), 1.0, schedule=Band(2, 1))


def test_collecting_activations_inside_steer_warns_and_reads_the_steered_model(env):
    plain = collect_activations(env.model, TEXTS, [2])[2]
    with steer(env.model, env.vectors, 3.0):
        with pytest.warns(UserWarning, match="under active steering"):
            steered = collect_activations(env.model, TEXTS, [2])[2]
    assert (steered - plain).abs().max() > 1e-3


def test_repeated_pairs_warn(env):
    pairs = arithmetic_pairs(4)
    with pytest.warns(UserWarning, match="repeat earlier ones"):
        extract_vectors(env.model, pairs + pairs[:2], "mean_diff")


def test_too_few_pairs_to_hold_out_warn(env):
    with pytest.warns(UserWarning, match="in-sample"):
        extract_vectors(env.model, arithmetic_pairs(2), "mean_diff", held_out=0.25)


# ---------------------------------------------------------------- results that must be right


def _independent_norms(model):
    enc = model.tokenizer(list(REFERENCE_TEXTS), return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model.original_model(**enc, output_hidden_states=True).hidden_states
    keep = enc["attention_mask"].bool().numpy()
    return {l: float(np.median(np.linalg.norm(h.numpy(), axis=-1)[keep])) for l, h in enumerate(hidden[1:-1])}


def test_residual_norms_first_measured_inside_steer_are_the_unsteered_model():
    """The cache behind scale="relative" is never filled under steering."""
    model = tiny_model("llama", 3, 64, 3)  # a fresh model: nothing cached yet
    vectors = SteeringVectors.random(model, 0)
    with steer(model, vectors, 5.0):
        inside = residual_norms(model)
        size = relative_size(model, vectors, 0.5)
    ref = _independent_norms(model)
    for l, m in ref.items():
        assert inside[l] == pytest.approx(m, rel=1e-4)
        assert size[l] == pytest.approx(0.5 / m, rel=1e-4)
    assert residual_norms(model) == inside


def test_residual_norms_cannot_be_poisoned_through_the_returned_dict(env):
    first = residual_norms(env.model)
    first[0] = 0.0
    assert residual_norms(env.model)[0] != 0.0


def test_residual_norms_follow_the_weights():
    """Weights changed in place (another model in the same object) are measured again."""
    model = tiny_model("llama", 3, 64, 4)
    before = residual_norms(model)
    with torch.no_grad():
        model.original_model.get_input_embeddings().weight.mul_(3.0)
    after = residual_norms(model)
    assert after[0] == pytest.approx(_independent_norms(model)[0], rel=1e-4)
    assert after[0] != pytest.approx(before[0], rel=1e-2)


def test_negation_and_scaling_compose_with_lambda(env):
    v = env.vectors.select([1])
    ref = _hf_added(env.model, {1: -0.75 * v[1]})
    torch.testing.assert_close(_run(env.model, -v, 0.75), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_run(env.model, 2 * v, 0.5), _hf_added(env.model, {1: v[1]}), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_run(env.model, v * 0.5, 2.0), _hf_added(env.model, {1: v[1]}), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_run(env.model, v / 4, 4.0), _hf_added(env.model, {1: v[1]}), atol=1e-5, rtol=1e-4)
    assert (-v).gain == -1.0 and torch.equal((-v)[1], v[1])  # the stored direction keeps its sign
    assert relative_size(env.model, 3 * v, 0.5)[1] == pytest.approx(3 * relative_size(env.model, v, 0.5)[1])


def test_apply_is_steer(env):
    v = env.vectors
    with torch.no_grad(), v.apply(env.model, 1.5, layers=[0, 2]):
        got = env.model(env.model.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"])[0, -1]
    torch.testing.assert_close(got, _hf_added(env.model, {0: 1.5 * v[0], 2: 1.5 * v[2]}), atol=1e-5, rtol=1e-4)


def test_operator_spec_string_is_the_operator(env):
    torch.testing.assert_close(
        _run(env.model, env.vectors, 0.5, operator="project"), _run(env.model, env.vectors, 0.5, operator=Project())
    )


def test_gain_and_identity_round_trip_and_old_files_load(env, tmp_path):
    v = -2 * env.vectors
    back = SteeringVectors.load(v.save(tmp_path / "v"))
    assert back == v and back.gain == -2.0 and back.fingerprint.matches(model_fingerprint(env.model))
    old = SteeringVectors.load(_saved(tmp_path, env.vectors, lambda m: [m.pop("gain"), m.pop("fingerprint")]))
    assert old.gain == 1.0 and old.fingerprint is None
    _steer(env, old, 1.0)  # no identity to check: width and depth only, as before
    with steer(env.twin, old, 1.0):
        pass


def test_vectors_of_another_model_steer_when_asked(env):
    """The escape hatch: the same addition as on the model they came from."""
    v = env.vectors.select([1])
    got = _run(env.twin, v, 0.5, check_model=False)
    torch.testing.assert_close(got, _hf_added(env.twin, {1: 0.5 * v[1]}), atol=1e-5, rtol=1e-4)


def test_the_same_model_in_another_dtype_matches(env):
    model = tiny_model("llama", 3, 64, 0)
    model.original_model.to(torch.bfloat16)
    assert env.vectors.fingerprint.matches(model_fingerprint(model))
    assert not env.vectors.fingerprint.matches(model_fingerprint(env.twin))


def test_extract_records_the_model_and_transfer_stamps_the_child(env):
    v = extract_vectors(env.model, arithmetic_pairs(6), "mean_diff")
    assert v.fingerprint.matches(model_fingerprint(env.model))
    out = _transfer(env).apply(-v)
    assert out.gain == -1.0 and out.fingerprint.matches(model_fingerprint(env.narrow))
    with pytest.raises(ValueError, match="fit a Transfer"):  # same name and shape, other weights
        _transfer(env).apply(SteeringVectors(**{**v.__dict__, "fingerprint": model_fingerprint(env.twin)}))


def test_random_vectors_are_one_implementation(env):
    like = extract_vectors(env.model, arithmetic_pairs(6), "mean_diff", layers=[1, 2])
    made = random_vectors(like, 5)
    direct = SteeringVectors.random(env.model, 5, layers=[1, 2])
    assert made.layers == [1, 2] and all(torch.equal(made[l], direct[l]) for l in (1, 2))
    assert made.fingerprint == like.fingerprint and (-made).gain == -1.0


def test_reusing_a_condition_name_with_other_vectors_is_refused(env):
    ev = Evaluator(env.model, env.loglik, progress=False)
    first = ev.sweep(env.examples, "validation", "c", env.vectors, [0.5])
    again = ev.sweep(env.examples, "validation", "c", env.vectors, [0.5])
    assert [r.output for r in first[0.5]] == [r.output for r in again[0.5]]
    other = SteeringVectors.random(env.model, 9)
    with pytest.raises(ValueError, match="own condition name"):
        ev.sweep(env.examples, "validation", "c", other, [0.5])
    with pytest.raises(ValueError, match="own condition name"):  # same name, another schedule, same store
        Evaluator(env.model, env.loglik, store=ev.store, progress=False, schedule=Constant(2.0)).sweep(
            env.examples, "validation", "c", env.vectors, [0.5])
    ev.sweep(env.examples, "validation", "c2", other, [0.5])  # its own name: fine


def test_lm_eval_export_folds_the_gain(env, tmp_path):
    path = to_lm_eval(-2 * env.vectors, tmp_path / "g.pt", 0.25)
    config = torch.load(path, weights_only=True)
    assert config["layers.1"]["steering_coefficient"] == pytest.approx(-0.5)
    _, strengths = from_lm_eval(path, model=env.model)
    assert strengths[1] == pytest.approx(-0.5)


def test_lm_eval_width_mismatch_names_the_target_model(env, tmp_path):
    path = to_lm_eval(env.vectors, tmp_path / "w.pt", 0.5)
    with pytest.raises(ValueError) as info:
        from_lm_eval(path, model=env.narrow)
    message = str(info.value)
    assert f"{env.narrow.cfg.model_name!r} is 48-wide" in message and "64-wide" in message


def test_hooks_are_removed_when_the_block_raises(env):
    plain = _run(env.model)
    with pytest.raises(RuntimeError):
        with steer(env.model, env.vectors, 3.0):
            raise RuntimeError("stop")
    torch.testing.assert_close(_run(env.model), plain)


# ---------------------------------------------------------------- TransferConfig and run_transfer


def test_config_checks_assignment_and_keeps_the_old_value():
    cfg = TransferConfig()
    for field, value, needle in (("lambdas", [0.1, math.nan], "finite"), ("batch_size", 0, "batch_size"),
                                 ("n_random", -1, "n_random"), ("operator", "clamp", "clamp:VALUE")):
        before = getattr(cfg, field)
        with pytest.raises(ValueError, match=re.escape(needle)):
            setattr(cfg, field, value)
        assert getattr(cfg, field) == before
    cfg.lambdas = [0.5, 0.1, 0.5]
    assert cfg.lambdas == [0.1, 0.5]  # normalised as on construction


def test_config_changed_in_place_is_checked_before_anything_loads(loads, tmp_path):
    cfg = TransferConfig(parent="tiny:llama:3:64:0", child="tiny:qwen3:4:48:1", k_shot=0)
    cfg.lambdas.append(math.nan)
    with pytest.raises(ValueError, match="finite"):
        run_transfer(cfg, tmp_path / "run", progress=False)
    assert loads == [] and not (tmp_path / "run").exists()


def test_models_entry_holding_another_model_is_refused(env, loads, tmp_path):
    cfg = TransferConfig(parent="tiny:llama:3:64:0", child="tiny:qwen3:2:48:1", k_shot=0)
    with pytest.raises(ValueError, match=r"holds 'tiny-llama-L3-d64-s7'.*names 'tiny-llama-L3-d64-s0'.*key each loaded model"):
        run_transfer(cfg, tmp_path / "run", models={"tiny:llama:3:64:0": env.twin}, progress=False)
    assert loads == [] and not (tmp_path / "run").exists()


def test_parent_vectors_of_another_parent_are_refused(env, loads, tmp_path):
    cfg = TransferConfig(parent="tiny:llama:3:64:0", child="tiny:qwen3:2:48:1", k_shot=0)
    twin_vectors = SteeringVectors.random(env.twin, 0)
    with pytest.raises(ValueError, match="not of the config's parent.*Fix: pass the vectors"):
        run_transfer(cfg, tmp_path / "a", progress=False, parent_vectors=twin_vectors)
    renamed = SteeringVectors(**{**twin_vectors.__dict__, "model_name": env.model.cfg.model_name})
    with pytest.raises(ValueError, match="not of the config's parent.*fingerprint.*Fix: pass the vectors"):
        run_transfer(cfg, tmp_path / "b", models={"tiny:llama:3:64:0": env.model}, progress=False, parent_vectors=renamed)
    assert loads == []


# ---------------------------------------------------------------- records


def test_record_store_refuses_a_folder_and_names_a_broken_line(tmp_path):
    with pytest.raises(ValueError, match="is a folder.*records.jsonl"):
        RecordStore(tmp_path)
    path = tmp_path / "r.jsonl"
    path.write_text('{"not": "a record"}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl:1 is not a record.*Fix"):
        RecordStore(path)
