"""Operators and position modes against plain torch forward hooks on the Hugging Face decoder
layers (full sequences, no cache, a hand-made position mask), per-row batched == sequential."""

import pytest
import torch

from xsteer.decode import Group, decode
from xsteer.evaluate import Evaluator
from xsteer.models import tiny_model
from xsteer.operators import Add, Clamp, NormPreservingAdd, Project, operator_from_dict
from xsteer.plain import plain_view
from xsteer.positions import Layout, layout
from xsteer.steer import steer, steering_hooks
from xsteer.tasks import load_task
from xsteer.vectors import SteeringVectors

ARCHS = ["llama", "qwen3", "gemma2"]
OPERATORS = [Add(), Project(), Clamp(1.5), NormPreservingAdd()]


def _vectors(model, layers, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors.from_raw(
        {l: torch.randn(model.cfg.d_model, generator=g) for l in layers},
        model_name=model.cfg.model_name, d_model=model.cfg.d_model, n_layers=model.cfg.n_layers, method="random",
    )


def _reference(op, h, v, lam):
    """Each operator written out from its definition (einsum over positions)."""
    u = v / v.norm()
    along = torch.einsum("bsd,d->bs", h, u)[..., None]
    if isinstance(op, Add):
        return h + lam * v
    if isinstance(op, Project):
        return h - lam * along * u
    if isinstance(op, Clamp):
        return h + lam * (op.value * v.norm() - along) * u
    g = h + lam * v
    return g * torch.linalg.vector_norm(h, dim=-1, keepdim=True) / torch.linalg.vector_norm(g, dim=-1, keepdim=True)


def _ref_logits(model, vectors, op, lam, ids, mask=None, steer_mask=None):
    """Logits of a full sequence under plain HF forward hooks (``steer_mask``: positions to steer)."""
    handles = []

    def make(v):
        def hook(mod, inp, out):
            h = out[0] if isinstance(out, tuple) else out
            new = _reference(op, h, v, lam)
            if steer_mask is not None:
                new = torch.where(steer_mask[..., None], new, h)
            return (new, *out[1:]) if isinstance(out, tuple) else new
        return hook

    view = plain_view(model)  # the Hugging Face modules themselves (the bridge's own forward is slow)
    for l in vectors.layers:
        handles.append(view.layers[l].register_forward_hook(make(vectors[l])))
    try:
        with torch.no_grad():
            return view.model(input_ids=ids, attention_mask=mask).logits
    finally:
        for h in handles:
            h.remove()


@pytest.fixture(scope="module", params=ARCHS)
def model(request):
    return tiny_model(request.param, n_layers=2, d_model=64, seed=1)


@pytest.mark.parametrize("op", OPERATORS, ids=lambda o: o.name)
def test_operator_per_row_batched_equals_reference_per_row(model, op):
    sv = _vectors(model, (0, 1))
    ids = torch.randint(3, 250, (3, 9), generator=torch.Generator().manual_seed(0))
    lams = torch.tensor([0.0, 0.7, 2.0])
    view = plain_view(model)
    with torch.inference_mode(), view.hooks(steering_hooks(model, sv, lams, operator=op)):
        batched = view.model(ids).logits
    for i, lam in enumerate(lams.tolist()):
        ref = _ref_logits(model, sv, op, lam, ids[i : i + 1])
        torch.testing.assert_close(batched[i], ref[0], atol=1e-4, rtol=1e-4)
    with torch.inference_mode():
        plain = view.model(ids).logits
    assert torch.equal(batched[0], plain[0])  # λ = 0 row untouched, bit for bit
    assert (batched[2] - plain[2]).abs().max() > 1e-3


def _layer0_output(model, sv, op, lam, ids):
    """Hidden state after block 0 (the input of block 1), steered at block 0 only."""
    seen = []
    handle = model.original_model.model.layers[1].register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        with torch.no_grad(), steer(model, sv.select([0]), lam, operator=op):
            model.original_model(ids)
    finally:
        handle.remove()
    return seen[0]


def test_operator_properties_by_definition(tiny_llama):
    sv = _vectors(tiny_llama, (0,), seed=4)
    ids = torch.randint(3, 250, (2, 7), generator=torch.Generator().manual_seed(1))
    u = sv[0] / sv[0].norm()
    plain = _layer0_output(tiny_llama, sv, Add(), 0.0, ids)
    ablated = _layer0_output(tiny_llama, sv, Project(), 1.0, ids)
    assert (ablated @ u).abs().max() < 1e-4  # nothing left along v̂
    torch.testing.assert_close(ablated, plain - (plain @ u)[..., None] * u)
    clamped = _layer0_output(tiny_llama, sv, Clamp(3.0), 1.0, ids)
    torch.testing.assert_close(clamped @ u, torch.full(clamped.shape[:2], 3.0), atol=1e-4, rtol=0)
    kept = _layer0_output(tiny_llama, sv, NormPreservingAdd(), 5.0, ids)
    torch.testing.assert_close(kept.norm(dim=-1), plain.norm(dim=-1), atol=1e-4, rtol=1e-5)
    assert (kept @ u).min() > (plain @ u).min()  # moved toward v̂


def test_operator_round_trip_and_bad_input(tiny_llama):
    for op in OPERATORS:
        assert operator_from_dict(op.to_dict()) == op
    assert operator_from_dict("project") == Project()
    with pytest.raises(ValueError, match="Clamp needs the value"):
        Clamp()
    with pytest.raises(ValueError, match="Clamp needs the value"):
        operator_from_dict("clamp")
    with pytest.raises(ValueError, match="Unknown steering operator"):
        operator_from_dict("scale")
    sv = _vectors(tiny_llama, (0,))
    with pytest.raises(ValueError, match="positions must be"):
        steering_hooks(tiny_llama, sv, 1.0, positions="first")
    hooks = steering_hooks(tiny_llama, sv, 1.0, positions="prompt")
    with pytest.raises(ValueError, match="layout"):
        with torch.no_grad(), plain_view(tiny_llama).hooks(hooks):
            plain_view(tiny_llama).model(torch.tensor([[5, 6, 7]]))


# ---------------------------------------------------------------- positions under the KV cache


def _ref_greedy(model, sv, op, lam, prompt, n_new, positions):
    """Greedy decoding without a cache: each step a full forward pass with a hand-made mask."""
    seq = list(prompt)
    for _ in range(n_new):
        t = torch.arange(len(seq))
        mask = {"all": t >= 0, "prompt": t < len(prompt), "generated": t >= len(prompt),
                "last_prompt": t == len(prompt) - 1}[positions]
        logits = _ref_logits(model, sv, op, lam, torch.tensor([seq]), steer_mask=mask[None])
        seq.append(int(logits[0, -1].argmax()))
    return seq[len(prompt):]


@pytest.mark.parametrize("positions", ["prompt", "generated", "last_prompt"])
@pytest.mark.parametrize("op", [Clamp(-2.0)], ids=lambda o: o.name)
def test_positions_under_kv_cache_and_drafts_equal_full_sequence_reference(model, positions, op):
    """Two left-padded prompts, per-row λ, one row given its own answer as a draft (verified in the
    first pass, where drafted tokens are generated positions) == the uncached reference."""
    sv = _vectors(model, (0, 1), seed=2)
    prompts = [[5, 17, 33, 40, 41, 90, 12], [7, 8, 100]]
    lams = [6.0, 9.0]
    n_new = 6
    ref = [_ref_greedy(model, sv, op, lam, p, n_new, positions) for p, lam in zip(prompts, lams)]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    group = Group([0, 1], ids, mask, drafts=[ref[0], [3, 3, 3]], lookup=[[], []])
    got = dict(decode(
        plain_view(model), [group], max_new_tokens=n_new, finished=lambda out: None,
        hooks_for=lambda keys: steering_hooks(model, sv, torch.tensor([lams[k] for k in keys]),
                                              operator=op, positions=positions),
    ))
    assert [got[0], got[1]] == ref
    unsteered = [_ref_greedy(model, sv, op, 0.0, p, n_new, "all") for p in prompts]
    assert ref != unsteered or positions == "generated"  # the mode steered something


def test_layout_of_a_pass():
    lay = Layout.of(torch.tensor([[0, 1, 1], [1, 1, 1]]), 2)
    assert lay.prompt.tolist() == [[False, True, True, False, False], [True, True, True, False, False]]
    assert lay.last_prompt.tolist() == [[False, False, True, False, False]] * 2
    assert not Layout.of(torch.ones(1, 3), 0, ends_prompt=False).last_prompt.any()


# ---------------------------------------------------------------- the Evaluator


@pytest.fixture(scope="module")
def child():
    return tiny_model("qwen3", n_layers=3, d_model=48, seed=3)


def test_evaluator_generate_with_project_at_prompt_equals_reference(child):
    task = load_task("arith", mode="generate", k_shot=1)
    examples = task.split("validation")[:2]
    sv = _vectors(child, (0, 1, 2), seed=5)
    op, lams = Clamp(4.0), [0.0, 1.0]
    ev = Evaluator(child, task, batch_size=4, max_new_tokens=6, progress=False, operator=op, positions="prompt")
    got = ev.sweep(examples, "validation", "c", sv, lams)
    for lam in lams:
        for ex, rec in zip(examples, got[lam]):
            _, prefix, suffix = ev._prompt_ids(ex, chat=True)
            tokens = _ref_greedy(child, sv, op, lam, prefix + suffix, 6, "prompt")
            for n in range(1, len(tokens) + 1):
                if ev._finished(tokens[:n]) is not None:
                    tokens = tokens[:n]
                    break
            assert rec.output == child.tokenizer.decode(tokens, skip_special_tokens=True)
    assert [r.output for r in got[0.0]] != [r.output for r in got[1.0]]


@pytest.mark.parametrize("positions", ["all", "last_prompt"])
def test_evaluator_loglik_with_norm_preserving_add_equals_reference(child, positions):
    task = load_task("arith", k_shot=1)
    examples = task.split("test")[:3]
    sv = _vectors(child, (0, 1, 2), seed=6)
    op = NormPreservingAdd()
    ev = Evaluator(child, task, batch_size=8, progress=False, operator=op, positions=positions)
    got = ev.sweep(examples, "test", "c", sv, [0.0, 5.0])
    tok = child.tokenizer
    for lam, records in got.items():
        for ex, rec in zip(examples, records):
            _, prefix, suffix = ev._prompt_ids(ex, chat=False)
            ctx, ref = prefix + suffix, []
            for cont in task.continuations(ex):
                c = tok(cont, add_special_tokens=False)["input_ids"]
                t = torch.arange(len(ctx) + len(c))
                where = t >= 0 if positions == "all" else t == len(ctx) - 1
                lp = torch.log_softmax(_ref_logits(child, sv, op, lam, torch.tensor([ctx + c]), steer_mask=where[None])[0], -1)
                ref.append(sum(float(lp[len(ctx) - 1 + k, x]) for k, x in enumerate(c)))
            assert rec.meta["sum"] == pytest.approx(ref, abs=1e-3)
    assert got[0.0][0].meta["sum"] != pytest.approx(got[5.0][0].meta["sum"], abs=1e-3)


def test_evaluator_rejects_generated_positions_for_loglik(child):
    with pytest.raises(ValueError, match="log-likelihood"):
        Evaluator(child, load_task("arith"), positions="generated")
