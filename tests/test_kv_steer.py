"""KV-cache steering against its definition: mean differences of hand-read caches, and decoding
on a hand-edited cache with plain forward passes."""

import pytest
import torch

from xsteer.contrast import ContrastPair, arithmetic_pairs
from xsteer.kv_steer import extract_kv_vectors, kv_generate
from xsteer.models import tiny_model
from xsteer.plain import PlainView


@pytest.fixture(scope="module", params=["llama", "qwen3", "gemma2"])
def model(request):
    return tiny_model(request.param, n_layers=2, d_model=64, seed=1)


def _hf_cache(model, ids):
    hf = model.original_model
    return hf(torch.tensor([ids]), use_cache=True).past_key_values


def test_kv_vectors_and_steered_decoding_equal_definition(model, monkeypatch):
    pairs = arithmetic_pairs(3)
    tok = model.tokenizer
    vec = extract_kv_vectors(model, pairs)
    with torch.no_grad():  # the definition, on the Hugging Face model's own caches
        for l in (0, 1):
            diffs = []
            for p in pairs:
                pos, neg = (_hf_cache(model, tok(t)["input_ids"]).layers[l] for t in (p.positive, p.negative))
                diffs.append((pos.keys[0, :, -1] - neg.keys[0, :, -1], pos.values[0, :, -1] - neg.values[0, :, -1]))
            torch.testing.assert_close(vec.keys[l], torch.stack([d[0] for d in diffs]).mean(0), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(vec.values[l], torch.stack([d[1] for d in diffs]).mean(0), atol=1e-5, rtol=1e-4)

    prompt, n_new, ck, cv = tok("Question: 3 plus 4?")["input_ids"], 6, 8.0, 8.0
    with torch.no_grad():  # hand-edited cache, then plain greedy steps
        hf = model.original_model
        out = hf(torch.tensor([prompt]), use_cache=True)
        cache, ref = out.past_key_values, [int(out.logits[0, -1].argmax())]
        for l in (0, 1):
            cache.layers[l].keys[0, :, len(prompt) - 1] += ck * vec.keys[l]
            cache.layers[l].values[0, :, len(prompt) - 1] += cv * vec.values[l]
        while len(ref) < n_new:
            out = hf(torch.tensor([[ref[-1]]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            ref.append(int(out.logits[0, -1].argmax()))

    def no_hooks(self, fwd_hooks=()):
        raise AssertionError("KV-cache steering must not install per-step hooks")

    monkeypatch.setattr(PlainView, "hooks", no_hooks)
    got = kv_generate(model, prompt, vec, ck, cv, max_new_tokens=n_new)
    assert got == ref[: len(got)] and len(got) >= 2
    plain = kv_generate(model, prompt, vec, 0.0, 0.0, max_new_tokens=n_new)
    assert plain[0] == got[0]  # the first token comes from the prefill, before the edit
    allpos = kv_generate(model, prompt, vec, ck, cv, max_new_tokens=n_new, positions="all")
    assert got != plain or allpos != plain  # the edit changed what follows


def test_bad_input():
    model = tiny_model("llama", n_layers=2, d_model=32, seed=0, use_cache=False)
    with pytest.raises(ValueError, match="use_cache"):
        extract_kv_vectors(model, [ContrastPair("yes", "no")])
    with pytest.raises(ValueError, match="at least one"):
        extract_kv_vectors(model, [])
