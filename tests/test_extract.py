"""Activation collection and extraction against Hugging Face hidden states and sklearn PCA."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from xsteer.contrast import ContrastPair, arithmetic_pairs
from xsteer.activations import collect_activations
from xsteer.extract import extract_vectors
from xsteer.splits import held_out_split

TEXTS = ["Hi.", "The quick brown fox jumps over the lazy dog.", "2 + 2 = 4.", "A medium length line."]


def _one_by_one(model, texts, layer, pooling):
    """Reference: unpadded single-text HF forward, last token or mean over tokens."""
    rows = []
    for t in texts:
        ids = model.tokenizer(t, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = model.original_model(ids, output_hidden_states=True).hidden_states[layer + 1][0]
        rows.append(h[-1] if pooling == "last" else h.mean(0))
    return torch.stack(rows)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_batched_equals_one_by_one(tiny_llama, side, pooling):
    tiny_llama.tokenizer.padding_side = side
    try:
        acts = collect_activations(tiny_llama, TEXTS, layers=[0, 1], pooling=pooling, batch_size=3)
    finally:
        tiny_llama.tokenizer.padding_side = "right"
    for layer in (0, 1):
        torch.testing.assert_close(acts[layer], _one_by_one(tiny_llama, TEXTS, layer, pooling), atol=1e-5, rtol=1e-4)


def _diffs(model, pairs, layer):
    pos = _one_by_one(model, [p.positive for p in pairs], layer, "last").double().numpy()
    neg = _one_by_one(model, [p.negative for p in pairs], layer, "last").double().numpy()
    return pos - neg


def test_pca_matches_sklearn(tiny_llama):
    pairs = arithmetic_pairs(24, seed=1)
    sv = extract_vectors(tiny_llama, pairs, "pca", layers=[1], seed=5, held_out=0.25)
    diff = _diffs(tiny_llama, pairs, 1)
    fit_idx, test_idx = held_out_split(len(pairs), 0.25, 5)
    flips = np.where(np.random.default_rng(5).random(len(fit_idx)) < 0.5, -1.0, 1.0)
    pca = PCA(n_components=1).fit(diff[fit_idx] * flips[:, None])  # sklearn recentres itself
    ref = pca.components_[0]
    if np.mean(diff[fit_idx] @ ref > 0) < 0.5:
        ref = -ref
    v = sv[1].double().numpy()
    np.testing.assert_allclose(v, ref, atol=1e-4)
    assert sv.explained_variance[1] == pytest.approx(pca.explained_variance_ratio_[0], rel=1e-4)
    assert sv.sign_agreement[1] == pytest.approx(np.mean(diff[test_idx] @ ref > 0))
    assert len(test_idx) == 6 and not set(test_idx) & set(fit_idx)


def test_held_out_split_keeps_groups_together_and_rounds():
    fit, held = held_out_split(10, 0.25, 0)
    assert len(held) == 2 and sorted([*fit, *held]) == list(range(10))  # round(2.5) = 2
    assert len(held_out_split(3, 0.1, 0)[1]) == 1  # at least one held out when asked
    groups = np.repeat(np.arange(6), 2)  # one text pooled two ways
    fit, held = held_out_split(groups, 0.5, 1)
    assert set(groups[fit]).isdisjoint(groups[held]) and len(held) == 6


def test_pca_on_degenerate_differences_is_an_error_not_an_arbitrary_direction():
    from xsteer.extract import fit_direction

    d = np.array([[1.0, 2.0, 0.0]])
    with pytest.raises(ValueError, match="PCA needs at least 2 distinct"):
        fit_direction(d, "pca")  # one pair: nothing left after recentring
    same = np.repeat(d, 6, axis=0)  # duplicated pairs: their flipped differences still span d
    np.testing.assert_allclose(fit_direction(same, "pca", seed=3), d[0] / np.linalg.norm(d), atol=1e-12)
    with pytest.raises(ValueError, match="zero direction"):
        fit_direction(np.zeros((4, 3)), "mean_diff")


def test_mean_diff_and_random(tiny_llama):
    pairs = arithmetic_pairs(12, seed=2)
    md = extract_vectors(tiny_llama, pairs, "mean_diff", layers=[0], held_out=0)
    ref = _diffs(tiny_llama, pairs, 0).mean(0)
    np.testing.assert_allclose(md[0].double().numpy(), ref / np.linalg.norm(ref), atol=1e-4)
    assert md.sign_agreement[0] >= 0.5  # in-sample with held_out=0
    r1, r2, r3 = (extract_vectors(tiny_llama, pairs, "random", seed=s) for s in (0, 0, 1))
    assert torch.equal(r1[2], r2[2]) and not torch.equal(r1[2], r3[2])
    assert float(r1[2].norm()) == pytest.approx(1.0, abs=1e-6)
    assert r1.provenance["n_pairs"] == 12


def test_sign_points_to_positive_side(tiny_llama):
    """A planted concept: positives all contain a marker; +v must make them project higher."""
    pairs = [ContrastPair(f"zzzz zzzz item {i}", f"item {i}") for i in range(16)]
    sv = extract_vectors(tiny_llama, pairs, "pca", held_out=0.25, seed=0)
    for layer in sv.layers:
        assert sv.sign_agreement[layer] == 1.0


def test_bad_input(tiny_llama):
    with pytest.raises(ValueError, match="at least 2"):
        extract_vectors(tiny_llama, [], "pca")
    with pytest.raises(ValueError, match="identical"):
        ContrastPair("same", "same")
    with pytest.raises(ValueError, match="outside"):
        extract_vectors(tiny_llama, arithmetic_pairs(4), layers=[7])
    with pytest.raises(ValueError, match="Unknown method"):
        extract_vectors(tiny_llama, arithmetic_pairs(4), method="ica")
    with pytest.raises(ValueError, match="no texts"):
        collect_activations(tiny_llama, [])


def test_one_pass_gives_every_pooling_and_the_disk_cache_returns_the_same(tiny_llama, tmp_path, monkeypatch):
    from xsteer.activations import collect_pooled

    monkeypatch.setenv("XSTEER_CACHE", str(tmp_path))
    both = collect_pooled(tiny_llama, TEXTS, [0, 1], poolings=("last", "mean"), batch_size=3, cache=True)
    for pooling in ("last", "mean"):
        alone = collect_activations(tiny_llama, TEXTS, [0, 1], pooling=pooling)
        for l in (0, 1):
            torch.testing.assert_close(both[pooling][l], alone[l])
    (saved,) = (tmp_path / "activations").iterdir()
    again = collect_pooled(tiny_llama, TEXTS, [0, 1], poolings=("last", "mean"), cache=True)
    assert all(torch.equal(again[p][l], both[p][l]) for p in ("last", "mean") for l in (0, 1))
    other = collect_pooled(tiny_llama, TEXTS[:2], [0, 1], poolings=("last", "mean"), cache=True)
    assert torch.equal(other["last"][0], both["last"][0][:2])
    assert len(list((tmp_path / "activations").iterdir())) == 2  # other texts: another file
