"""xsteer.transfer: layer maps, dimension adapters, CKA, the Transfer object and its diagnostics.

Known answers come from planted ground truth (linear maps, rotations, layer correspondences), brute
force, and independent numpy / scikit-learn computations.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from xsteer.transfer import (
    CKAMap,
    ExplicitMap,
    GreedyMap,
    IdentityAdapter,
    LayerMap,
    ModelInfo,
    ProcrustesAdapter,
    ProportionalMap,
    RandomProjectionAdapter,
    RidgeAdapter,
    Transfer,
    TruncatePadAdapter,
    anchor_texts,
    cka_matrix,
    collect_anchor_activations,
    cosine_to_reference,
    linear_cka,
    make_layer_map,
    monotone_alignment,
)
from xsteer.extract import sign_vote
from xsteer.vectors import SteeringVectors


def _rng(seed=0):
    return np.random.default_rng(seed)


def _orthonormal(rows, cols, seed):
    """(rows, cols) with orthonormal columns (rows >= cols) or orthonormal rows (rows < cols)."""
    q, _ = np.linalg.qr(_rng(seed).standard_normal((max(rows, cols), min(rows, cols))))
    return q if rows >= cols else q.T


def _cos(a, b):
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# --------------------------------------------------------------------------- adapters


def test_ridge_recovers_planted_linear_map():
    rng = _rng(1)
    xp = rng.standard_normal((400, 32)) * rng.uniform(0.5, 3, 32) + 5.0
    w = rng.standard_normal((32, 24))
    xc = xp @ w - 2.0 + 0.01 * rng.standard_normal((400, 24))
    adapter = RidgeAdapter().fit(xp, xc)
    assert adapter.score_ > 0.999
    assert adapter.alpha_ in adapter.alphas
    v = rng.standard_normal(32)
    assert _cos(adapter.transform(torch.tensor(v)), w.T @ v) > 0.9999
    batch = rng.standard_normal((5, 32))
    out = adapter.transform(batch)
    assert out.shape == (5, 24)
    for row, target in zip(out.numpy(), batch @ w):
        assert _cos(row, target) > 0.9999


def test_ridge_score_is_held_out_r2_of_the_population():
    # x ~ N(0, I), y = x W + N(0, 1): child dimension j has population R^2 = ||W_j||^2 / (||W_j||^2 + 1);
    # the score averages them over dimensions (sklearn's uniform average)
    rng = _rng(2)
    w = rng.standard_normal((8, 6)) * 0.6
    xp = rng.standard_normal((3000, 8))
    xc = xp @ w + rng.standard_normal((3000, 6))
    col = (w**2).sum(0)
    expected = float(np.mean(col / (col + 1)))
    assert RidgeAdapter().fit(xp, xc).score_ == pytest.approx(expected, abs=0.03)
    # an unrelated child: nothing to predict, the held-out R^2 is near zero (never clearly positive)
    noise = RidgeAdapter().fit(xp, rng.standard_normal((3000, 6)))
    assert noise.score_ < 0.01


@pytest.mark.parametrize("group_size", [1, 2])
def test_ridge_alpha_is_the_leave_one_text_out_optimum(group_size):
    rng = _rng(3)
    x = rng.standard_normal((14, 6))
    y = x @ rng.standard_normal((6, 3)) + 1.5 * rng.standard_normal((14, 3))
    groups = np.arange(14) // group_size
    adapter = RidgeAdapter(alphas=(0.01, 0.1, 1.0, 10.0, 100.0))
    adapter._select(torch.tensor(x - x.mean(0)), torch.tensor(y - y.mean(0)), groups)
    unit = (np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2).sum() / 6
    errors = []
    for a in adapter.alphas:  # brute force: refit without each group (intercept unpenalised)
        err = 0.0
        for g in np.unique(groups):
            out = groups == g
            model = Ridge(alpha=a * unit).fit(x[~out], y[~out])
            err += ((model.predict(x[out]) - y[out]) ** 2).sum()
        errors.append(err / y.size)
    np.testing.assert_allclose(adapter.cv_errors_, errors, rtol=1e-8)
    assert 0 < int(np.argmin(errors)) < len(errors) - 1  # an interior optimum: the choice matters
    assert adapter.alpha_ == adapter.alphas[int(np.argmin(errors))]


@pytest.mark.parametrize("d_parent,d_child", [(16, 16), (12, 20)])
def test_procrustes_recovers_planted_rotation(d_parent, d_child):
    rng = _rng(4)
    q = _orthonormal(d_parent, d_child, seed=5)
    xp = rng.standard_normal((300, d_parent)) + 3.0
    xc = 2.5 * xp @ q + 1.0
    adapter = ProcrustesAdapter().fit(xp, xc)
    assert adapter.scale_ == pytest.approx(2.5, rel=1e-6)
    np.testing.assert_allclose(adapter.W_.numpy(), 2.5 * q, atol=1e-4)
    assert adapter.score_ == pytest.approx(1.0, abs=1e-6)
    unscaled = ProcrustesAdapter(scale=False).fit(xp, xc)
    np.testing.assert_allclose(unscaled.W_.numpy(), q, atol=1e-5)


def test_procrustes_semi_orthogonal_to_narrower_child():
    # with isotropic parent rows the cross-covariance is proportional to the planted map
    n, d_parent, d_child = 200, 20, 12
    x = _rng(6).standard_normal((n, d_parent))
    x = np.linalg.qr(x - x.mean(0))[0] * np.sqrt(n)  # centred, orthogonal columns of equal norm
    q = _orthonormal(d_parent, d_child, seed=7)
    w = ProcrustesAdapter(scale=False).fit(x, x @ q).W_.numpy()
    np.testing.assert_allclose(w, q, atol=1e-5)
    np.testing.assert_allclose(w.T @ w, np.eye(d_child), atol=1e-5)


def test_identity_adapter_rejects_width_mismatch_and_names_alternatives():
    x = _rng(8).standard_normal((20, 16))
    with pytest.raises(
        ValueError,
        match="RidgeAdapter.*ProcrustesAdapter.*TruncatePadAdapter.*RandomProjectionAdapter",
    ):
        IdentityAdapter().fit(x, x[:, :12])
    same = IdentityAdapter().fit(x, 2 * x)
    v = _rng(9).standard_normal(16)
    np.testing.assert_allclose(same.transform(v).numpy(), v, rtol=1e-6)


def test_null_adapters_are_controls():
    rng = _rng(10)
    xp, xc = rng.standard_normal((30, 10)), rng.standard_normal((30, 6))
    v = rng.standard_normal(10)
    trunc = TruncatePadAdapter().fit(xp, xc)
    np.testing.assert_allclose(trunc.transform(v).numpy(), v[:6], rtol=1e-6)
    pad = TruncatePadAdapter().fit(xc, xp)
    np.testing.assert_allclose(pad.transform(v[:6]).numpy(), np.r_[v[:6], np.zeros(4)], rtol=1e-6)
    a, b = RandomProjectionAdapter(seed=1).fit(xp, xc), RandomProjectionAdapter(seed=1).fit(xp, xc)
    w = a.W_.numpy().astype(float)
    np.testing.assert_allclose(w.T @ w, np.eye(6), atol=1e-5)
    assert torch.equal(a.W_, b.W_)
    assert not torch.allclose(a.W_, RandomProjectionAdapter(seed=2).fit(xp, xc).W_)
    assert all(x.is_control for x in (trunc, a)) and not RidgeAdapter.is_control
    assert "[control]" in repr(a)


def test_adapter_needs_enough_rows_and_matching_rows():
    x = _rng(11).standard_normal((3, 4))
    with pytest.raises(ValueError, match="more anchor texts"):
        RidgeAdapter().fit(x[:2], x[:2])
    with pytest.raises(ValueError, match="same anchor texts"):
        RidgeAdapter().fit(x, x[:2])


def test_grouped_rows_are_held_out_together():
    # two near-identical rows per text and a wide parent: the map can memorise texts, so a split
    # that separates a text's rows leaks; the child is unrelated noise, so honest R^2 is low
    rng = _rng(12)
    texts = rng.standard_normal((40, 100))
    xp = np.vstack([texts, texts + 0.01 * rng.standard_normal((40, 100))])
    xc = np.tile(rng.standard_normal((40, 3)), (2, 1))
    groups = np.tile(np.arange(40), 2)
    assert RidgeAdapter(alphas=(1e-6,)).fit(xp, xc, groups=groups).score_ < 0.2
    assert RidgeAdapter(alphas=(1e-6,)).fit(xp, xc).score_ > 0.5


# --------------------------------------------------------------------------- layer maps


@pytest.mark.parametrize("n_parent,n_child", [(40, 28), (28, 40), (18, 30)])
def test_greedy_is_the_papers_rule(n_parent, n_child):
    m = GreedyMap().fit(n_parent, n_child)
    assert m.mapping_ == {i: i for i in range(min(n_parent, n_child))}
    assert m.inverse() == {i: [i] for i in range(min(n_parent, n_child))}
    last = min(n_parent, n_child) - 1
    assert repr(m).endswith(f"child<-parent {{0-{last}<-0-{last}}}")


@pytest.mark.parametrize("n_parent,n_child", [(18, 30), (30, 18), (5, 5), (40, 28)])
def test_proportional_maps_endpoints_and_is_monotone(n_parent, n_child):
    m = ProportionalMap().fit(n_parent, n_child)
    assert sorted(m.mapping_) == list(range(n_child))
    assert m.mapping_[0] == 0 and m.mapping_[n_child - 1] == n_parent - 1
    values = [m.mapping_[j] for j in range(n_child)]
    assert values == sorted(values)
    if n_parent == n_child:
        assert values == list(range(n_child))
    inv = m.inverse()
    assert sorted(c for cs in inv.values() for c in cs) == list(range(n_child))


def test_proportional_band_keeps_child_layers_in_the_band():
    m = ProportionalMap(band=(0.25, 0.5)).fit(18, 30)
    assert sorted(m.mapping_) == [j for j in range(30) if 0.25 <= j / 29 <= 0.5]  # 8..14
    assert m.mapping_[8] == round(8 * 17 / 29)
    with pytest.raises(ValueError, match="band"):
        ProportionalMap(band=(0.6, 0.2))


def _brute_force_best(s):
    n_rows, n_cols = s.shape
    return max(
        sum(s[r, c] for r, c in enumerate(path))
        for path in itertools.combinations_with_replacement(range(n_cols), n_rows)
    )


@pytest.mark.parametrize(
    "shape,seed", [((5, 4), 0), ((4, 6), 1), ((6, 3), 2), ((1, 5), 3), ((5, 1), 4)]
)
def test_monotone_alignment_is_optimal(shape, seed):
    s = _rng(seed).uniform(size=shape)
    path = monotone_alignment(s)
    assert len(path) == shape[0]
    assert path == sorted(path)
    assert sum(s[r, c] for r, c in enumerate(path)) == pytest.approx(_brute_force_best(s))


def test_monotone_alignment_hand_made():
    # row-wise argmax would be [2, 0, 2]; the best monotone path trades row 1 away
    s = np.array([[0.0, 0.1, 0.9], [0.8, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert monotone_alignment(s) == [2, 2, 2]
    s = np.array([[0.9, 0.1, 0.0], [0.5, 0.0, 0.0], [0.0, 0.2, 0.0], [0.0, 0.0, 0.3]])
    assert monotone_alignment(s) == [0, 0, 1, 2]


def test_cka_map_recovers_planted_layer_correspondence():
    rng = _rng(13)
    parent = {l: torch.tensor(rng.standard_normal((150, 16))) for l in range(6)}
    truth = {0: 0, 1: 1, 2: 1, 3: 3, 4: 5}
    child = {
        j: parent[p] @ torch.tensor(_orthonormal(16, 24, seed=20 + j)) * (j + 1)
        for j, p in truth.items()
    }
    m = CKAMap().fit(6, 5, parent, child)
    assert m.mapping_ == truth
    assert m.similarity_.shape == (5, 6)
    np.testing.assert_allclose([m.similarity_[j, p] for j, p in truth.items()], 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="anchor activations"):
        CKAMap().fit(6, 5)
    with pytest.raises(ValueError, match=r"layers \[5\] are missing"):
        CKAMap().fit(6, 5, {l: parent[l] for l in range(5)}, child)


def test_explicit_map_validates_both_depths():
    assert ExplicitMap({0: 3, 2: 5}).fit(6, 4).mapping_ == {0: 3, 2: 5}
    with pytest.raises(ValueError, match=r"child layers \[40\].*0\.\.27"):
        ExplicitMap({40: 0}).fit(40, 28)
    with pytest.raises(ValueError, match=r"parent layers \[18\].*0\.\.17"):
        ExplicitMap({0: 18}).fit(18, 30)
    assert isinstance(make_layer_map({1: 1}), ExplicitMap)
    with pytest.raises(ValueError, match="greedy"):
        make_layer_map("nearest")


@pytest.mark.parametrize(
    "layer_map", [GreedyMap(), ProportionalMap(band=(0.0, 0.5)), ExplicitMap({1: 0, 3: 2})]
)
def test_layer_map_dict_round_trip(layer_map):
    layer_map.fit(3, 4)
    back = LayerMap.from_dict(layer_map.to_dict())
    assert type(back) is type(layer_map)
    assert back.mapping_ == layer_map.mapping_
    assert back.get_params() == layer_map.get_params()
    assert repr(back) == repr(layer_map)


# --------------------------------------------------------------------------- CKA


def _cka_hsic(x, y):
    """Reference: HSIC with explicit centring matrices and linear kernels."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_matches_hsic_reference_and_invariances():
    rng = _rng(14)
    x = rng.standard_normal((50, 12))
    y = x[:, :7] @ rng.standard_normal((7, 9)) + rng.standard_normal((50, 9))
    assert linear_cka(x, y) == pytest.approx(_cka_hsic(x, y), rel=1e-10)
    q = _orthonormal(12, 12, seed=15)
    assert linear_cka(x @ q, y) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(3.7 * x + 2.0, y) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0, rel=1e-12)
    wide = rng.standard_normal((10, 40))  # n < d goes through the small Gram matrix
    assert linear_cka(wide, wide[:, :30]) == pytest.approx(_cka_hsic(wide, wide[:, :30]), rel=1e-10)
    with pytest.raises(ValueError, match="paired rows"):
        linear_cka(x, y[:10])


def test_cka_matrix_equals_pairwise_cka():
    rng = _rng(16)
    rows = {l: torch.tensor(rng.standard_normal((30, 8))) for l in range(3)}
    cols = {l: torch.tensor(rng.standard_normal((30, 5))) for l in range(4)}
    m = cka_matrix(rows, cols)
    expected = [[_cka_hsic(rows[a].numpy(), cols[b].numpy()) for b in range(4)] for a in range(3)]
    np.testing.assert_allclose(m, expected, rtol=1e-10)


# --------------------------------------------------------------------------- Transfer on synthetic activations

PARENT = ModelInfo("parent-x", 12, 4)
CHILD = ModelInfo("child-y", 8, 3)


def _planted(n=200, seed=17):
    """Parent acts per layer and child acts = parent (greedy layer) @ W_l + small noise."""
    rng = _rng(seed)
    parent = {l: torch.tensor(rng.standard_normal((n, 12)), dtype=torch.float32) for l in range(4)}
    maps = {l: rng.standard_normal((12, 8)) for l in range(3)}
    child = {
        l: torch.tensor(
            parent[l].numpy() @ maps[l] + 0.01 * rng.standard_normal((n, 8)), dtype=torch.float32
        )
        for l in range(3)
    }
    return parent, child, maps


def _parent_vectors(info=PARENT, layers=range(4), seed=18):
    rng = _rng(seed)
    return SteeringVectors.from_raw(
        {l: rng.standard_normal(info.d_model) for l in layers},
        model_name=info.name,
        d_model=info.d_model,
        n_layers=info.n_layers,
        method="pca",
        seed=3,
        data_hash="abc",
    )


def test_transfer_applies_planted_maps_with_provenance():
    parent, child, maps = _planted()
    t = Transfer("greedy", "ridge").fit_activations(parent, child, PARENT, CHILD)
    vectors = _parent_vectors()
    out = t.apply(vectors)
    assert (out.model_name, out.d_model, out.n_layers) == ("child-y", 8, 3)
    assert out.layers == [0, 1, 2]
    assert out.method == "transfer:greedy+ridge"
    for l in out.layers:
        assert _cos(out[l], maps[l].T @ vectors[l].numpy()) > 0.9999
        assert float(out[l].norm()) == pytest.approx(1.0, abs=1e-5)
    prov = out.provenance
    assert prov["layer_pairs"] == {"0": 0, "1": 1, "2": 2}
    assert set(prov["alpha"]) == set(prov["r2"]) == {"0", "1", "2"}
    assert all(r > 0.99 for r in prov["r2"].values())
    assert prov["parent"] == {
        "model_name": "parent-x",
        "d_model": 12,
        "n_layers": 4,
        "method": "pca",
        "seed": 3,
        "data_hash": "abc",
    }
    assert prov["adapter"]["name"] == "ridge" and prov["adapter"]["is_control"] is False
    assert prov["n_anchors"] == 200 and isinstance(prov["anchor_hash"], str)
    assert (out.seed, out.data_hash) == (3, "abc")


def test_transfer_resigns_on_child_pairs():
    parent, child, maps = _planted()
    t = Transfer("greedy", "ridge").fit_activations(parent, child, PARENT, CHILD)
    vectors = _parent_vectors()
    plain = t.apply(vectors)
    rng = _rng(19)
    base = torch.tensor(rng.standard_normal((20, 8)), dtype=torch.float32)
    # the child's pairs say layer 1's positive side lies along -v, layer 0's along +v
    pos = {0: base + plain[0], 1: base - plain[1]}
    neg = {0: base, 1: base}
    signed = t.apply(vectors, child_pairs_acts=(pos, neg))
    assert torch.allclose(signed[0], plain[0]) and torch.allclose(signed[1], -plain[1])
    assert torch.allclose(signed[2], plain[2])
    assert signed.sign_agreement == {0: 1.0, 1: 1.0}
    v = np.array([1.0, 0.0])
    np.testing.assert_array_equal(sign_vote(v, np.array([[-1.0, 0], [-1, 0]])), -v)
    # a tie in the vote goes to the sign with the larger mean margin
    np.testing.assert_array_equal(sign_vote(v, np.array([[-3.0, 0], [1, 0]])), -v)


def test_apply_to_differences_maps_through_w():
    parent, child, maps = _planted()
    t = Transfer("greedy", "ridge").fit_activations(parent, child, PARENT, CHILD)
    diffs = {
        1: torch.tensor(_rng(20).standard_normal((6, 12)), dtype=torch.float32),
        3: torch.zeros(2, 12),
    }
    out = t.apply_to_differences(diffs)
    assert list(out) == [1]  # parent layer 3 feeds no child layer under greedy 4 -> 3
    assert out[1].shape == (6, 8)
    for row, d in zip(out[1].numpy(), diffs[1].numpy()):
        assert _cos(row, d @ maps[1]) > 0.9999
    with pytest.raises(ValueError, match="expected"):
        t.apply_to_differences({1: torch.zeros(6, 5)})


def test_transfer_with_proportional_map_and_procrustes():
    parent, child, _ = _planted()
    t = Transfer(ProportionalMap(), ProcrustesAdapter()).fit_activations(
        parent, child, PARENT, CHILD
    )
    assert t.layer_map_.mapping_ == {0: 0, 1: 2, 2: 3}
    out = t.apply(_parent_vectors(layers=[0, 2]))
    assert out.layers == [0, 1]
    assert out.method == "transfer:proportional+procrustes"
    assert "alpha" not in out.provenance


def test_transfer_save_load_round_trip(tmp_path):
    parent, child, _ = _planted()
    t = Transfer("cka", "ridge").fit_activations(parent, child, PARENT, CHILD, anchor_hash="h1")
    path = t.save(tmp_path / "t")
    assert path.suffix == ".safetensors" and (tmp_path / "t.json").is_file()
    back = Transfer.load(tmp_path / "t.json")
    assert back.layer_map_.mapping_ == t.layer_map_.mapping_
    np.testing.assert_allclose(back.layer_map_.similarity_, t.layer_map_.similarity_)
    assert (back.parent_, back.child_, back.anchor_hash_) == (PARENT, CHILD, "h1")
    assert back.r2_ == t.r2_
    vectors = _parent_vectors()
    assert back.apply(vectors) == t.apply(vectors)
    assert repr(back) == repr(t)


def test_apply_rejects_vectors_of_another_model():
    parent, child, _ = _planted()
    t = Transfer("greedy", "ridge").fit_activations(parent, child, PARENT, CHILD)
    for info in (ModelInfo("other", 12, 4), ModelInfo("parent-x", 12, 6)):
        with pytest.raises(ValueError, match=r"fitted for parent 'parent-x'.*Fix: fit a Transfer"):
            t.apply(_parent_vectors(info=info, layers=[0]))
    with pytest.raises(ValueError, match="is mapped"):
        Transfer(ExplicitMap({0: 3}), "ridge").fit_activations(parent, child, PARENT, CHILD).apply(
            _parent_vectors(layers=[0, 1])
        )


def test_anchor_count_errors():
    with pytest.raises(ValueError, match="at least 2 distinct anchor texts"):
        anchor_texts(["only one"])
    with pytest.raises(ValueError, match="at least 2 distinct anchor texts"):
        anchor_texts(["same", "same"])
    with pytest.raises(TypeError, match="list of strings"):
        anchor_texts("a string")
    with pytest.raises(ValueError, match="at least 2 distinct anchor texts"):
        Transfer().fit(None, None, ["one text"])
    parent, child, _ = _planted()
    with pytest.raises(ValueError, match="at least 2 anchor rows"):
        Transfer().fit_activations(
            {l: a[:1] for l, a in parent.items()},
            {l: a[:1] for l, a in child.items()},
            PARENT,
            CHILD,
        )
    with pytest.raises(ValueError, match="same anchor texts"):
        Transfer().fit_activations(parent, {l: a[:50] for l, a in child.items()}, PARENT, CHILD)
    with pytest.raises(ValueError, match=r"shape \(200, 8\); expected \(n_anchors, 9\)"):
        Transfer().fit_activations(parent, child, PARENT, ModelInfo("child-y", 9, 3))


def test_identity_transfer_between_different_widths_fails_clearly():
    parent, child, _ = _planted()
    with pytest.raises(ValueError, match="IdentityAdapter needs equal widths"):
        Transfer(adapter="identity").fit_activations(parent, child, PARENT, CHILD)


# --------------------------------------------------------------------------- diagnostics


def test_cosine_to_reference_and_random_null():
    d = 48
    info = ModelInfo("child", d, 3)
    rng = _rng(21)
    ref = _parent_vectors(info=info, layers=[0, 1, 2], seed=22)
    noisy = {l: ref[l].numpy() + 0.5 * rng.standard_normal(d) / math.sqrt(d) for l in ref.layers}
    noisy[2] = -ref[2].numpy()
    moved = SteeringVectors.from_raw(
        {l: noisy[l] for l in (1, 2)},
        model_name="child",
        d_model=d,
        n_layers=3,
        method="transfer:greedy+ridge",
        provenance={"r2": {"1": 0.8, "2": 0.4}},
    )
    diag = cosine_to_reference(moved, ref, n_random=2000, seed=0)
    assert list(diag.cosine) == [1, 2]
    assert diag.cosine[1] == pytest.approx(_cos(noisy[1], ref[1]), abs=1e-6)
    assert diag.cosine[2] == pytest.approx(-1.0, abs=1e-6)
    assert diag.r2 == {1: 0.8, 2: 0.4}
    # |cos| of a random unit vector with a fixed one in d dims has mean ~ sqrt(2 / (pi d))
    assert diag.null_mean == pytest.approx(math.sqrt(2 / (math.pi * d)), rel=0.06)
    assert diag.null_mean < diag.null_p95 < 0.4
    assert cosine_to_reference(moved, ref, n_random=50, seed=3) == cosine_to_reference(
        moved, ref, n_random=50, seed=3
    )
    rows = diag.rows()
    assert [r["above_null_p95"] for r in rows] == [True, True]
    with pytest.raises(ValueError, match="same child model"):
        cosine_to_reference(moved, _parent_vectors(info=ModelInfo("x", d, 3), layers=[1]))


# --------------------------------------------------------------------------- end to end on tiny models


def test_end_to_end_between_tiny_models_of_different_families(tmp_path):
    from xsteer.contrast import arithmetic_pairs
    from xsteer.activations import collect_activations
    from xsteer.extract import extract_vectors
    from xsteer.models import tiny_model

    parent = tiny_model("llama", 3, 64)
    child = tiny_model("qwen3", 5, 48)
    pairs = arithmetic_pairs(8, seed=0)
    anchors = (
        [p.positive for p in pairs]
        + [p.negative for p in pairs]
        + [f"note {i}: the sky" for i in range(4)]
    )
    vectors = extract_vectors(parent, pairs, "pca", seed=0)

    rows = collect_anchor_activations(child, anchors[:3] + anchors[:1], [0], progress=False)[0]
    expected = [
        collect_activations(child, anchors[:3], [0], pooling=p)[0] for p in ("last", "mean")
    ]
    torch.testing.assert_close(rows, torch.cat(expected))  # pooling-major rows, duplicate dropped

    t = Transfer("greedy", "ridge").fit(parent, child, anchors, batch_size=10, progress=False)
    assert t.n_anchors_ == 2 * len(anchors)  # last-token and mean rows
    pos = collect_activations(child, [p.positive for p in pairs])
    neg = collect_activations(child, [p.negative for p in pairs])
    out = t.apply(vectors, child_pairs_acts=(pos, neg))
    assert (out.model_name, out.d_model, out.n_layers, out.layers) == (
        child.cfg.model_name,
        48,
        5,
        [0, 1, 2],
    )
    out.check_compatible(child)
    assert set(out.sign_agreement) == {0, 1, 2} and all(
        a >= 0.5 for a in out.sign_agreement.values()
    )
    for l in out.layers:  # the child vector is the parent vector mapped through W, re-signed
        mapped = vectors[l] @ t.adapters_[l].W_
        assert abs(_cos(out[l], mapped)) == pytest.approx(1.0, abs=1e-5)

    cka = Transfer("cka", "procrustes").fit(
        parent, child, anchors[:10], pooling="last", progress=False
    )
    assert sorted(cka.layer_map_.mapping_) == list(range(5))
    assert cka.apply(vectors).layers == list(range(5))

    t.save(tmp_path / "llama-to-qwen3")
    assert Transfer.load(tmp_path / "llama-to-qwen3").apply(vectors) == t.apply(vectors)
