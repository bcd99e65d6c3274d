"""The bridge keeps Hugging Face coordinates, and its cached generation is right."""

import pytest
import torch

from xsteer.models import TINY_ARCHS, load_model, resid_post_hook, tiny_model


def _hf_hidden(model, texts):
    enc = model.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.original_model(**enc, output_hidden_states=True)
    return enc, out.hidden_states


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_resid_post_is_hf_hidden_state(arch):
    model = tiny_model(arch, n_layers=3, d_model=64, seed=1)
    enc, hidden = _hf_hidden(model, ["The cat sat.", "A much longer sentence here."])
    _, cache = model.run_with_cache(
        enc["input_ids"], attention_mask=enc["attention_mask"], names_filter=lambda n: "resid_post" in n
    )
    for layer in range(model.cfg.n_layers - 1):  # the last block's HF state is after the final norm
        torch.testing.assert_close(cache[resid_post_hook(layer)], hidden[layer + 1], rtol=0, atol=1e-5)


def test_tiny_model_is_seeded():
    a, b, c = (tiny_model("qwen3", 2, 32, seed=s) for s in (3, 3, 4))
    wa, wb, wc = (m.original_model.lm_head.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def _greedy(model, ids, cached):
    return model.generate(ids, max_new_tokens=12, do_sample=False, use_past_kv_cache=cached, verbose=False)


def test_cached_generation_matches_uncached_tiny():
    model = tiny_model("llama", n_layers=2, d_model=64, seed=0)
    ids = model.tokenizer("Once upon a time", return_tensors="pt")["input_ids"]
    assert torch.equal(_greedy(model, ids, True), _greedy(model, ids, False))


@pytest.mark.real
def test_real_models_bridge(smollm2, gemma):
    for model in (smollm2, gemma):
        enc, hidden = _hf_hidden(model, ["The capital of France is"])
        _, cache = model.run_with_cache(enc["input_ids"], names_filter=lambda n: "resid_post" in n)
        for layer in (0, model.cfg.n_layers // 2, model.cfg.n_layers - 2):
            torch.testing.assert_close(cache[resid_post_hook(layer)], hidden[layer + 1], rtol=0, atol=1e-3)
    ids = smollm2.tokenizer("Question: What is 2 + 3?\nAnswer:", return_tensors="pt")["input_ids"]
    cached, uncached = _greedy(smollm2, ids, True), _greedy(smollm2, ids, False)
    assert torch.equal(cached, uncached)
    assert "5" in smollm2.tokenizer.decode(cached[0, ids.shape[1]:])


def test_load_model_errors(tmp_path):
    with pytest.raises(ValueError, match="embedded defaults"):
        load_model("no-such-model")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing.gguf")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="tiny architecture"):
        tiny_model("gpt17")
