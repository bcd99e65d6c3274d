"""BOS convention: every path that tokenizes plain text follows the model's own tokenizer default
(checked against the Hugging Face tokenizer loaded independently), with an explicit override."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from xsteer.evaluate import Evaluator
from xsteer.activations import collect_activations, encode
from xsteer.models import _tiny_tokenizer_dir, embedded_gguf_path, gguf_adds_bos, tiny_model
from xsteer.tasks import load_task

TEXTS = ["Question: what is 2+2?\nAnswer:", "hi"]


@pytest.fixture(scope="module")
def own_tiny_tokenizer():
    return AutoTokenizer.from_pretrained(_tiny_tokenizer_dir())


@pytest.mark.parametrize("prepend_bos", [None, True, False])
def test_tiny_encode_follows_own_tokenizer_or_override(own_tiny_tokenizer, prepend_bos):
    model = tiny_model("llama", 2, 32, prepend_bos=prepend_bos)
    want_bos = True if prepend_bos is None else prepend_bos  # the byte-level tokenizer's own default is BOS
    plain = own_tiny_tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    own = own_tiny_tokenizer(TEXTS[1])["input_ids"]
    assert own == [own_tiny_tokenizer.bos_token_id] + plain  # the default being tested
    expected = ([model.tokenizer.bos_token_id] if want_bos else []) + plain
    enc = encode(model, [TEXTS[1]])
    assert enc["input_ids"][0].tolist() == expected
    assert model.to_tokens(TEXTS[1])[0].tolist() == expected
    assert model.cfg.default_prepend_bos is want_bos


def test_activations_without_bos_equal_hf_hidden_states_of_plain_ids(own_tiny_tokenizer):
    model = tiny_model("qwen2", 2, 32, seed=3, prepend_bos=False)
    acts = collect_activations(model, TEXTS, [0])
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([own_tiny_tokenizer(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            hs = model.original_model(input_ids=ids, output_hidden_states=True).hidden_states
        torch.testing.assert_close(acts[0][i], hs[1][0, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prepend_bos", [True, False])
def test_evaluator_prompt_ids_follow_the_setting(prepend_bos):
    model = tiny_model("llama", 2, 32, prepend_bos=prepend_bos)
    task = load_task("arith", mode="generate", k_shot=1)
    ev = Evaluator(model, task, progress=False)
    ex = task.split("validation")[0]
    text, prefix, suffix = ev._prompt_ids(ex, chat=False)
    ids = prefix + suffix
    assert (ids[0] == model.tokenizer.bos_token_id) is prepend_bos
    body = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == ([model.tokenizer.bos_token_id] if prepend_bos else []) + body


@pytest.mark.real
@pytest.mark.parametrize("name,bos", [("smollm2-135m", False), ("gemma-3-270m", True)])
def test_real_models_follow_their_gguf_default(name, bos, request):
    gguf = embedded_gguf_path(name)
    assert gguf_adds_bos(gguf) is bos  # the file's own declaration (llama.cpp follows it)
    model = request.getfixturevalue("smollm2" if name.startswith("smol") else "gemma")
    folder = model.tokenizer.name_or_path
    own = AutoTokenizer.from_pretrained(folder)  # the converted folder's tokenizer, loaded independently
    plain = own(TEXTS[0], add_special_tokens=False)["input_ids"]
    expected = ([own.bos_token_id] if bos else []) + plain
    assert encode(model, [TEXTS[0]])["input_ids"][0].tolist() == expected
    assert model.tokenizer(TEXTS[0])["input_ids"] == expected
