"""The plain Hugging Face view: same weights, same steered logits as the bridge, fused attention."""

import pytest
import torch

from xsteer.contrast import arithmetic_pairs
from xsteer.extract import extract_vectors
from xsteer.models import TINY_ARCHS, tiny_model
from xsteer.plain import plain_view, sliding_window
from xsteer.steer import steering_hooks


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_view_logits_equal_bridge_logits_under_steering(arch):
    model = tiny_model(arch, n_layers=2, d_model=64, seed=1)
    vectors = extract_vectors(model, arithmetic_pairs(4), "pca")
    view = plain_view(model)
    ids = torch.randint(3, 250, (3, 12), generator=torch.Generator().manual_seed(0))
    hooks = steering_hooks(model, vectors, torch.tensor([0.0, 2.0, 5.0]))
    with torch.inference_mode():
        with model.hooks(fwd_hooks=hooks):
            bridge = model.original_model(ids).logits
        with view.hooks(hooks):
            steered = view.model(ids).logits
        unsteered = view.model(ids).logits
    assert torch.allclose(steered, bridge, atol=1e-5)
    assert torch.allclose(unsteered[0], bridge[0], atol=1e-5)  # λ = 0 row
    assert not torch.allclose(unsteered[2], bridge[2], atol=1e-3)  # the hooks were applied
    softcapped = getattr(view.model.config, "attn_logit_softcapping", None) is not None
    assert view.model.config._attn_implementation == ("eager" if softcapped else "xsteer_sdpa")


def test_view_shares_parameters_and_rejects_other_hook_points(tiny_llama):
    view = plain_view(tiny_llama)
    assert plain_view(tiny_llama) is view  # built once per bridge
    bridge_ptrs = {p.data_ptr() for p in tiny_llama.original_model.parameters()}
    assert {p.data_ptr() for p in view.model.parameters()} <= bridge_ptrs
    with pytest.raises(ValueError, match="hook_resid_post"):
        with view.hooks([("blocks.0.attn.hook_z", lambda x, hook: x)]):
            pass


def test_sliding_window_by_layer_types():
    assert sliding_window(tiny_model("llama").original_model.config) is None
    assert sliding_window(tiny_model("qwen3", sliding_window=8).original_model.config) is None  # no sliding layers
    assert sliding_window(tiny_model("gemma3", sliding_window=16).original_model.config) == 16
    assert sliding_window(tiny_model("mistral", sliding_window=16).original_model.config) == 16


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_token_logprobs_equal_log_softmax_of_the_models_logits(arch):
    model = tiny_model(arch, n_layers=2, d_model=64, seed=2)
    view = plain_view(model)
    with torch.no_grad():  # logits far beyond gemma2's soft cap of 30, so a missed cap shows
        view.model.get_output_embeddings().weight.mul_(200)
    ids = torch.randint(3, 250, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = torch.log_softmax(view.model(ids).logits.float(), dim=-1)  # soft-capped by the model itself
        hidden = view.model.get_decoder()(ids).last_hidden_state
        rows, cols = torch.meshgrid(torch.arange(2), torch.arange(9), indexing="ij")
        tokens = torch.randint(0, reference.shape[-1], (18,), generator=torch.Generator().manual_seed(2))
        got = view.token_logprobs(hidden[rows.flatten(), cols.flatten()], tokens, chunk=4)  # chunks: 4, 4, 4, 4, 2
    expected = reference[rows.flatten(), cols.flatten(), tokens]
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-5)
