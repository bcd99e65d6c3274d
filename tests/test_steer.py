"""Steering hooks against a hand-made Hugging Face forward hook and separate runs."""

import numpy as np
import pytest
import torch

from xsteer.models import tiny_model
from xsteer.steer import REFERENCE_TEXTS, relative_size, residual_norms, steer
from xsteer.vectors import SteeringVectors


def _vectors(model, layers=(0, 1), seed=0):
    g = torch.Generator().manual_seed(seed)
    return SteeringVectors.from_raw(
        {l: torch.randn(model.cfg.d_model, generator=g) for l in layers},
        model_name=model.cfg.model_name, d_model=model.cfg.d_model, n_layers=model.cfg.n_layers, method="random",
    )


def _enc(model, texts=("Hello there", "A longer second line of text")):
    return model.tokenizer(list(texts), return_tensors="pt", padding=True)


def _hf_steered_logits(model, vectors, lam, enc):
    """Independent reference: plain torch forward hooks on the HF decoder layers."""
    handles = []
    for l in vectors.layers:
        v = lam * vectors[l]
        handles.append(model.original_model.model.layers[l].register_forward_hook(
            lambda mod, inp, out, v=v: (out[0] + v, *out[1:]) if isinstance(out, tuple) else out + v))
    try:
        with torch.no_grad():
            return model.original_model(**enc).logits
    finally:
        for h in handles:
            h.remove()


def test_steering_adds_lambda_v(tiny_llama):
    sv, enc = _vectors(tiny_llama), _enc(tiny_llama)
    with torch.no_grad(), steer(tiny_llama, sv, 2.5):
        got = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
    ref = _hf_steered_logits(tiny_llama, sv, 2.5, enc)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        plain = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
    assert (got - plain).abs().max() > 1e-3


def test_lambda_zero_is_bit_identical(tiny_llama):
    sv, enc = _vectors(tiny_llama), _enc(tiny_llama)
    with torch.no_grad():
        plain = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
        with steer(tiny_llama, sv, 0.0):
            zero = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
        with steer(tiny_llama, sv, torch.zeros(2)):
            zero_rows = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
    assert torch.equal(plain, zero) and torch.equal(plain, zero_rows)


def test_per_row_lambda_equals_separate_runs(tiny_llama):
    sv = _vectors(tiny_llama)
    text = ["Same prompt for every row"] * 3
    lams = torch.tensor([0.0, 1.0, -3.0])
    enc = _enc(tiny_llama, text)
    with torch.no_grad(), steer(tiny_llama, sv, lams):
        batched = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
    for i, lam in enumerate(lams.tolist()):
        single = _enc(tiny_llama, text[:1])
        with torch.no_grad(), steer(tiny_llama, sv, lam):
            ref = tiny_llama(single["input_ids"])
        torch.testing.assert_close(batched[i], ref[0], atol=1e-5, rtol=1e-4)


def test_steered_cached_generation_matches_uncached():
    model = tiny_model("qwen3", n_layers=3, d_model=64, seed=2)
    sv = _vectors(model, layers=(0, 1, 2))
    ids = model.tokenizer("Steer me", return_tensors="pt")["input_ids"]
    with steer(model, sv, 4.0):
        kw = dict(max_new_tokens=10, do_sample=False, verbose=False)
        cached = model.generate(ids, use_past_kv_cache=True, **kw)
        uncached = model.generate(ids, use_past_kv_cache=False, **kw)
    plain = model.generate(ids, max_new_tokens=10, do_sample=False, verbose=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, plain)


def _hf_median_norms(model):
    enc = _enc(model, REFERENCE_TEXTS)
    with torch.no_grad():
        hs = model.original_model(**enc, output_hidden_states=True).hidden_states
    keep = enc["attention_mask"].bool().numpy()
    return [float(np.median(np.linalg.norm(h.numpy(), axis=-1)[keep])) for h in hs[1:]]


def test_relative_scale_and_size(tiny_llama):
    sv, enc = _vectors(tiny_llama, layers=(0, 1)), _enc(tiny_llama)
    ref_norms = _hf_median_norms(tiny_llama)
    norms = residual_norms(tiny_llama)
    for l in (0, 1):
        assert norms[l] == pytest.approx(ref_norms[l], rel=1e-5)
    size = relative_size(tiny_llama, sv, 0.5)
    assert size[1] == pytest.approx(0.5 / ref_norms[1], rel=1e-5)
    assert relative_size(tiny_llama, sv, 0.5, scale="relative")[0] == pytest.approx(0.5, rel=1e-5)
    with torch.no_grad():
        with steer(tiny_llama, sv.select([1]), 0.3, scale="relative"):
            rel = tiny_llama(enc["input_ids"], attention_mask=enc["attention_mask"])
    ref = _hf_steered_logits(tiny_llama, sv.select([1]), 0.3 * ref_norms[1], enc)
    torch.testing.assert_close(rel, ref, atol=1e-4, rtol=1e-4)


def test_vectors_cast_to_activation_dtype():
    model = tiny_model("llama", n_layers=2, d_model=32, seed=0)
    model.original_model.to(torch.bfloat16)
    sv = _vectors(model, layers=(0,))
    ids = model.tokenizer("dtype", return_tensors="pt")["input_ids"]
    with torch.no_grad(), steer(model, sv, 1.0):
        out = model(ids)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_bad_input(tiny_llama):
    wide = SteeringVectors.from_raw({0: torch.ones(128)}, model_name="x", d_model=128, n_layers=3, method="pca")
    with pytest.raises(ValueError, match="wide"):
        with steer(tiny_llama, wide, 1.0):
            pass
    sv, enc = _vectors(tiny_llama), _enc(tiny_llama)
    with pytest.raises(ValueError, match="one λ per row"):
        with steer(tiny_llama, sv, torch.ones(5)):
            tiny_llama(enc["input_ids"])
    with pytest.raises(ValueError, match="scale"):
        with steer(tiny_llama, sv, 1.0, scale="percent"):
            pass
