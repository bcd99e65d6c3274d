"""xsteer.transfer.estimators, contrasts, vocab, FitMap and MultiParentTransfer on planted cases:
child activations are a known transform of the parent's plus noise, a planted concept direction must
arrive at the child's own direction, and random parent directions must read the concept at chance."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from xsteer.fidelity.strength import auroc
from xsteer.transfer import (
    AnchorCoordinateAdapter,
    CovarianceProbeAdapter,
    DifferenceAdapter,
    FitMap,
    ModelInfo,
    MultiParentTransfer,
    StandardizedRidgeAdapter,
    Transfer,
    VocabBridge,
    embedding_rows,
    group_contrasts,
    make_adapter,
    shared_words,
)
from xsteer.vectors import SteeringVectors

DP, DC = 24, 16


def _cos(a, b):
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _semi_orthogonal(rows, cols, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((rows, cols)))
    return q  # (rows, cols), orthonormal columns (rows >= cols)


def _planted(kind: str, n: int = 1500, seed: int = 0):
    """Parent rows X, child rows Y = X M (+ offset, noise); ``kind``: "general" (any linear map,
    anisotropic parent with two massive dimensions), "isometry" (isotropic parent, a semi-orthogonal
    map scaled per child coordinate) or "isotropic" (isotropic parent, any linear map)."""
    rng = np.random.default_rng(seed)
    if kind == "general":
        scale = rng.uniform(0.3, 3.0, DP)
        scale[:2] = 40.0  # massive activations
        m = rng.standard_normal((DP, DC)) / np.sqrt(DP)
    elif kind == "isometry":
        scale = np.ones(DP)
        m = _semi_orthogonal(DP, DC, seed + 1) * rng.uniform(0.5, 4.0, DC)
    else:
        scale = np.ones(DP)
        m = rng.standard_normal((DP, DC)) / np.sqrt(DP)
    x = rng.standard_normal((n, DP)) * scale + 3.0
    y = x @ m - 1.0 + 0.05 * rng.standard_normal((n, DC)) * (x @ m).std(0)
    return x, y, m


def _reads_like_child(adapter, m, seed=0):
    """(cos of a mapped planted direction to the child's own, child AUROC of it minus that of the
    child's own direction, child AUROCs of 20 mapped random parent directions) on planted concept
    pairs in the child."""
    rng = np.random.default_rng(seed + 7)
    delta_p = rng.standard_normal(DP)
    delta_c = delta_p @ m  # the child's own direction of the planted concept
    base = rng.standard_normal((200, DC))
    pos, neg = base + 0.5 * delta_c / np.linalg.norm(delta_c) * 3, base - 0.5 * delta_c / np.linalg.norm(delta_c) * 3
    moved = adapter.transform(torch.tensor(delta_p)).numpy()
    randoms = adapter.transform(torch.tensor(rng.standard_normal((20, DP)))).numpy()
    rand_auc = [max(auroc(pos @ r, neg @ r), auroc(-(pos @ r), -(neg @ r))) for r in randoms]
    return _cos(moved, delta_c), auroc(pos @ moved, neg @ moved) - auroc(pos @ delta_c, neg @ delta_c), rand_auc


@pytest.mark.parametrize("whiten", [False, True])
def test_standardized_ridge_recovers_a_planted_map_despite_massive_dimensions(whiten):
    x, y, m = _planted("general")
    adapter = StandardizedRidgeAdapter(whiten=whiten).fit(x, y)
    assert adapter.score_ > 0.95
    cos, own_gap, rand_auc = _reads_like_child(adapter, m)
    assert cos > 0.99 and own_gap > -0.01
    # mapped random directions read at chance: their absolute-AUROC spread is that of random child
    # directions (a planted signal along one direction, so most random projections see little of it)
    assert np.median(rand_auc) < 0.9


def test_standardized_ridge_map_is_the_plain_ridge_of_standardised_rows():
    x, y, _ = _planted("general", n=400)
    adapter = StandardizedRidgeAdapter(alphas=(0.5,)).fit(x, y)
    from sklearn.linear_model import Ridge

    sx, sy = x.std(0), y.std(0)
    xs, ys = (x - x.mean(0)) / sx, (y - y.mean(0)) / sy
    ref = Ridge(alpha=0.5 * (xs**2).sum() / DP, fit_intercept=False).fit(xs, ys).coef_.T  # (DP, DC)
    np.testing.assert_allclose(adapter.W_.numpy(), ref / sx[:, None] * sy, rtol=1e-3, atol=1e-5)


def test_difference_adapter_fits_through_the_origin_on_contrasts():
    rng = np.random.default_rng(3)
    _, _, m = _planted("general")
    d_p = rng.standard_normal((300, DP)) * rng.uniform(0.2, 2.0, DP)
    d_c = d_p @ m + 0.02 * rng.standard_normal((300, DC))
    adapter = DifferenceAdapter().fit(d_p, d_c)
    assert adapter.score_ > 0.95
    assert float(adapter.mean_parent_.abs().max()) == 0.0 and float(adapter.mean_child_.abs().max()) == 0.0
    cos, own_gap, _ = _reads_like_child(adapter, m)
    assert cos > 0.99 and own_gap > -0.01
    # differences shifted by a constant are a different map: no intercept absorbs the shift
    shifted = DifferenceAdapter().fit(d_p + 5.0, d_c)
    assert not np.allclose(shifted.W_.numpy(), adapter.W_.numpy(), atol=1e-2)


def test_difference_prior_on_states_carries_directions_the_contrasts_miss():
    rng = np.random.default_rng(4)
    x, y, m = _planted("isotropic")
    d_p = np.zeros((60, DP))
    d_p[:, :4] = rng.standard_normal((60, 4))  # the contrasts span only 4 parent coordinates
    d_c = d_p @ m
    probe = np.zeros(DP)
    probe[10] = 1.0  # a direction no contrast spans
    alone = DifferenceAdapter().fit(d_p, d_c)
    with_prior = DifferenceAdapter(prior=1.0).fit(d_p, d_c, states=(x, y))
    assert _cos(with_prior.transform(torch.tensor(probe)), probe @ m) > 0.95
    assert abs(_cos(alone.transform(torch.tensor(probe)) + 1e-12, probe @ m)) < 0.5


def test_anchor_coordinates_recover_an_isometry_in_standardised_units():
    x, y, m = _planted("isometry")
    adapter = AnchorCoordinateAdapter().fit(x, y)
    cos, own_gap, _ = _reads_like_child(adapter, m)
    assert cos > 0.97 and own_gap > -0.01


def test_probe_conversion_sends_a_planted_direction_to_the_childs_own():
    x, y, m = _planted("isotropic")
    adapter = CovarianceProbeAdapter().fit(x, y)
    assert adapter.score_ > 0.6  # the child -> parent map's held-out R² (16 child dims explain 16 of 24)
    cos, own_gap, _ = _reads_like_child(adapter, m)
    assert cos > 0.97 and own_gap > -0.01
    # W_ = Bᵀ Σ_child for B the child -> parent map
    back = StandardizedRidgeAdapter(alphas=(adapter.alpha_,)).fit(y, x)
    yc = y - y.mean(0)
    np.testing.assert_allclose(adapter.W_.numpy(), back.W_.numpy().T @ (yc.T @ yc / len(y)), rtol=1e-3, atol=1e-4)


def test_estimators_are_registered_by_name_and_round_trip():
    for name, cls in (("ridge_std", StandardizedRidgeAdapter), ("difference", DifferenceAdapter),
                      ("vocab", VocabBridge), ("anchor_coords", AnchorCoordinateAdapter),
                      ("probe_cov", CovarianceProbeAdapter)):
        assert type(make_adapter(name)) is cls
    x, y, _ = _planted("general", n=200)
    a = DifferenceAdapter(prior=0.5).fit(x, y)
    from xsteer.transfer import DimAdapter

    b = DimAdapter.from_dict(a.to_dict(), a.tensors())
    assert b.prior == 0.5 and torch.equal(b.W_, a.W_)


# --------------------------------------------------------------------------- contrasts


def test_group_contrasts_are_group_means_minus_their_source_mean():
    rng = np.random.default_rng(5)
    acts = {0: torch.tensor(rng.standard_normal((9, 4)), dtype=torch.float32)}
    sources = ["a"] * 6 + ["b"] * 3
    topics = ["x", "x", "y", "y", "z", "", "p", "p", "q"]
    rows, names = group_contrasts(acts, sources, {"topic": topics}, min_size=2)
    assert names == ["a|topic|x", "a|topic|y"]  # z has one text; b has only one group of >= 2
    x = acts[0].double().numpy()
    base = x[:5].mean(0)
    np.testing.assert_allclose(rows[0].numpy(), np.stack([x[:2].mean(0) - base, x[2:4].mean(0) - base]), rtol=1e-5)
    with pytest.raises(ValueError, match="No contrast groups"):
        group_contrasts(acts, sources, {"topic": [""] * 9})


def test_contrast_texts_are_exactly_the_rows_the_contrasts_read():
    from xsteer.transfer.contrasts import contrast_texts

    rng = np.random.default_rng(5)
    acts = {0: torch.tensor(rng.standard_normal((9, 4)), dtype=torch.float32)}
    sources = ["a"] * 6 + ["b"] * 3
    topics = ["x", "x", "y", "y", "z", "", "p", "p", "q"]
    mask = contrast_texts(sources, {"topic": topics}, min_size=2)
    # source a's labelled texts (z too: it is in a's mean); not a's unlabelled text, nor source b (one group)
    assert mask.tolist() == [True] * 5 + [False] * 4
    full, names = group_contrasts(acts, sources, {"topic": topics}, min_size=2)
    kept = np.flatnonzero(mask)
    sub, sub_names = group_contrasts({0: acts[0][kept]}, [sources[i] for i in kept], {"topic": [topics[i] for i in kept]})
    assert sub_names == names
    torch.testing.assert_close(sub[0], full[0])
    with pytest.raises(ValueError, match="No contrast groups"):
        contrast_texts(sources, {"topic": [""] * 9})


# --------------------------------------------------------------------------- vocabulary bridge


class _Tok:
    """A minimal tokenizer: pieces with a leading marker for a space (as SentencePiece's ▁)."""

    def __init__(self, pieces, marker):
        self.vocab = {p: i for i, p in enumerate(pieces)}
        self.marker = marker

    def get_vocab(self):
        return dict(self.vocab)

    def convert_tokens_to_string(self, pieces):
        return "".join(p.replace(self.marker, " ") for p in pieces)


def _fake_model(tok, emb):
    hf = types.SimpleNamespace(get_input_embeddings=lambda: torch.nn.Embedding.from_pretrained(torch.tensor(emb, dtype=torch.float32)))
    return types.SimpleNamespace(tokenizer=tok, original_model=hf)


def test_shared_words_and_the_vocabulary_bridge_recover_a_planted_embedding_map():
    rng = np.random.default_rng(6)
    words = [f"w{chr(97 + i % 26)}{chr(97 + i // 26)}x" for i in range(300)]
    words = ["".join(c for c in w if c.isalpha()) for w in words]
    tok_p = _Tok(["▁" + w for w in words] + ["▁The", "ab", "▁é"], "▁")
    tok_c = _Tok(["Ġ" + w for w in reversed(words)] + ["Ġzz9"], "Ġ")
    assert shared_words(tok_p, tok_c) == sorted(set(words))
    m = rng.standard_normal((DP, DC))
    emb_p = rng.standard_normal((len(tok_p.vocab), DP))
    emb_c = np.zeros((len(tok_c.vocab), DC))
    for w in words:
        emb_c[tok_c.vocab["Ġ" + w]] = emb_p[tok_p.vocab["▁" + w]] @ m
    xp, xc = embedding_rows(_fake_model(tok_p, emb_p), _fake_model(tok_c, emb_c))
    bridge = VocabBridge().fit(xp, xc)
    assert bridge.score_ > 0.99
    v = rng.standard_normal(DP)
    assert _cos(bridge.transform(torch.tensor(v)), v @ m) > 0.999
    with pytest.raises(ValueError, match="not one token in both"):
        embedding_rows(_fake_model(tok_p, emb_p), _fake_model(tok_c, emb_c), ["The"])


# --------------------------------------------------------------------------- layer pairing


def test_fit_map_pairs_each_child_layer_with_the_parent_layer_that_predicts_it():
    rng = np.random.default_rng(8)
    n, lp, lc = 600, 4, 6
    parent = {l: torch.tensor(rng.standard_normal((n, DP)), dtype=torch.float32) for l in range(lp)}
    source = [0, 0, 1, 2, 3, 3]
    child = {c: torch.tensor(parent[p].numpy() @ rng.standard_normal((DP, DC)) + 0.1 * rng.standard_normal((n, DC)),
                             dtype=torch.float32) for c, p in enumerate(source)}
    fm = FitMap().fit(lp, lc, parent, child)
    assert fm.mapping_ == dict(enumerate(source))
    assert fm.similarity_.shape == (lc, lp) and fm.similarity_[2, 1] > 0.9 > fm.similarity_[2, 0]
    with pytest.raises(ValueError, match="every parent layer"):
        FitMap().fit(lp, lc, {0: parent[0]}, child)


# --------------------------------------------------------------------------- several parents


def _vectors(direction, info, layers):
    return SteeringVectors.from_raw({l: torch.tensor(direction, dtype=torch.float32) for l in layers},
                                    model_name=info.name, d_model=info.d_model, n_layers=info.n_layers, method="mean_diff")


def test_averaging_over_parents_beats_each_noisy_parent():
    rng = np.random.default_rng(9)
    child_info = ModelInfo("child", DC, 2)
    delta_c = rng.standard_normal(DC)
    transfers, vectors, single = [], [], []
    for k in range(4):
        info = ModelInfo(f"parent{k}", DP, 2)
        x = rng.standard_normal((800, DP))
        m = rng.standard_normal((DP, DC)) / np.sqrt(DP)
        y = x @ m
        acts_p = {l: torch.tensor(x, dtype=torch.float32) for l in range(2)}
        acts_c = {l: torch.tensor(y, dtype=torch.float32) for l in range(2)}
        tr = Transfer("greedy", "ridge_std").fit_activations(acts_p, acts_c, info, child_info)
        exact = np.linalg.lstsq(m.T, delta_c, rcond=None)[0]  # a parent direction that maps onto delta_c
        noisy = exact / np.linalg.norm(exact) + 0.6 * rng.standard_normal(DP) / np.sqrt(DP)
        transfers.append(tr)
        vectors.append(_vectors(noisy, info, [0, 1]))
        single.append(_cos(tr.apply(vectors[-1])[1], delta_c))
    avg = MultiParentTransfer(transfers).apply(vectors)
    assert avg.layers == [0, 1] and avg.model_name == "child"
    assert _cos(avg[1], delta_c) > max(single)
    with pytest.raises(ValueError, match="one vector set per parent"):
        MultiParentTransfer(transfers).apply(vectors[:2])
    with pytest.raises(ValueError, match="same child"):
        other = Transfer("greedy", "ridge_std").fit_activations(
            {l: torch.randn(50, DP) for l in range(2)}, {l: torch.randn(50, 8) for l in range(2)},
            ModelInfo("p", DP, 2), ModelInfo("other", 8, 2))
        MultiParentTransfer([transfers[0], other])


# --------------------------------------------------------------------------- Transfer integration


def test_transfer_fits_each_estimator_source_on_tiny_models_with_a_held_out_topic(monkeypatch):
    from xsteer.concepts.topics import topic_concept
    from xsteer.models import tiny_model
    from xsteer.transfer import AnchorCorpus
    from xsteer.transfer import transfer as transfer_module

    parent, child = tiny_model("llama", 2, 32), tiny_model("qwen3", 3, 16)
    topics = ["music", "boats", "rain", "maths"]
    texts = [f"A {s} text number {i} about {t}." for t in topics for s in ("short", "long") for i in range(4)]
    corpus = AnchorCorpus.of(texts, "gen", topics=[t for t in topics for _ in range(8)],
                             styles=[s for _ in topics for s in ("short", "long") for _ in range(4)])
    music = topic_concept("music", n=32)
    seen = {}
    real = transfer_module.Transfer.fit_activations

    def spy(self, pa, ca, pi, ci, **kw):
        seen["rows"] = next(iter(pa.values())).shape[0]
        seen["differences"] = kw.get("differences")
        return real(self, pa, ca, pi, ci, **kw)

    monkeypatch.setattr(transfer_module.Transfer, "fit_activations", spy)
    t = Transfer("fit", "ridge_std").fit(parent, child, corpus, hold_out=music, progress=False)
    assert seen["rows"] == 2 * 24  # the 8 music texts are gone (label and word), last + mean rows
    assert sorted(t.layer_map_.mapping_) == [0, 1, 2]
    d = Transfer("greedy", "difference").fit(parent, child, corpus, hold_out=music, progress=False)
    dp, dc, groups = seen["differences"]
    assert dp[0].shape == (2 * (3 + 2), 32) and dc[1].shape[1] == 16  # 3 topics + 2 styles, per pooling
    assert len(set(groups)) == 5  # both poolings of a group leave together
    assert d.adapters_[0].source == "differences"
    # plain texts form no groups, and byte-level tiny tokenizers share no words for lexicon anchors:
    # the shipped generated texts (topic and style labelled) supply the contrasts
    from xsteer.transfer.corpus import generated_corpus

    Transfer("greedy", "difference").fit(parent, child, texts, progress=False)
    # unlabelled texts reach no contrast, nor do Gemma's story openings (one style, one text per topic):
    # only SmolLM2's 102 topics x 4 styles are read
    generated = generated_corpus()
    assert seen["rows"] == 2 * sum(s == "generated:smollm2-135m" for s in generated.sources)
    assert len(set(seen["differences"][2])) > 100  # the generated corpus's topics and styles


def test_transfer_rejects_too_few_anchors_and_nan_and_missing_layers():
    from xsteer.models import tiny_model

    parent, child = tiny_model("llama", 2, 32), tiny_model("qwen3", 2, 16)
    with pytest.raises(ValueError, match="Too few anchors.*32 -> 16 map.*built-in anchor corpus"):
        Transfer("greedy", "ridge_std").fit(parent, child, ["one text", "two texts"], progress=False)
    acts_p = {l: torch.randn(40, 32) for l in range(2)}
    acts_c = {l: torch.randn(40, 16) for l in range(2)}
    acts_p[1][3, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Transfer("greedy", "ridge_std").fit_activations(acts_p, acts_c, ModelInfo("p", 32, 2), ModelInfo("c", 16, 2))
    with pytest.raises(ValueError, match="parent layers \\[5\\] are outside"):
        Transfer({0: 5}, "ridge_std").fit_activations(acts_c, acts_c, ModelInfo("p", 16, 2), ModelInfo("c", 16, 2))


def test_accessibility_profile_is_zero_for_uniform_and_one_at_the_top():
    from xsteer.models import tiny_model
    from xsteer.transfer.steerability import accessibility_profile, accessible_band

    model = tiny_model("llama", 3, 32)
    prof = accessibility_profile(model, ["the cat sat on the mat", "a dog ran in the park today"])
    assert prof.shape == (3,) and prof[-1] == pytest.approx(1.0)
    assert accessible_band(np.array([0.0, 0.2, 0.6, 0.7, 0.9, 1.0]), width=2, threshold=0.5) == [2, 3]
    assert accessible_band(np.array([0.0, 0.1, 0.2, 1.0]), width=3, threshold=0.5) == [1, 2, 3]
    with pytest.raises(ValueError, match="finite"):
        accessible_band(np.array([np.nan, 1.0]))


def test_streamed_standardised_ridge_equals_the_row_fit_and_scores_last_rows_apart():
    from xsteer.models import tiny_model
    from xsteer.transfer.aligned import RidgeStats

    x, y, _ = _planted("general", n=300)
    stats = RidgeStats(DP, DC).update(torch.tensor(x[:150]), torch.tensor(y[:150])).update(
        torch.tensor(x[150:]), torch.tensor(y[150:]))
    xc, yc = torch.tensor(x - x.mean(0)), torch.tensor(y - y.mean(0))
    adapter = StandardizedRidgeAdapter(alphas=(0.3,))
    adapter.alpha_ = 0.3
    np.testing.assert_allclose(stats.solve(0.3, standardize=True), adapter._solve(xc, yc).numpy(), rtol=1e-6, atol=1e-9)
    parent, child = tiny_model("llama", 2, 32), tiny_model("qwen3", 2, 16)
    texts = [f"Sentence number {i} is about a {w} and its colour." for i in range(30) for w in ("cat", "boat")]
    t = Transfer("greedy", "ridge_std").fit(parent, child, texts, pooling="aligned", progress=False)
    for a in t.adapters_.values():
        assert isinstance(a, StandardizedRidgeAdapter) and np.isfinite(a.score_last_) and a.score_last_ != a.score_


@pytest.mark.parametrize("layer_map, adapter, reads_tasks", [
    ("proportional", "difference", False), ("greedy", "difference", False), ("fit", "difference", True),
    ("proportional", "ridge", True), ("cka", "difference", True),
])
def test_builtin_corpus_reads_task_questions_only_for_fits_that_read_states(layer_map, adapter, reads_tasks,
                                                                             data_dir, monkeypatch):
    """Task questions carry no labels, so a difference-fitted map on a fixed pairing learns nothing from
    them (checked: the same map with and without them) and the built-in fit skips reading them."""
    from xsteer.models import tiny_model
    from xsteer.transfer import anchors as anchors_module
    from xsteer.transfer.corpus import generated_corpus, task_corpus

    parent, child = tiny_model("llama", 2, 32), tiny_model("qwen3", 3, 16)
    sources = []
    real = anchors_module.collect_corpus_activations
    monkeypatch.setattr(anchors_module, "collect_corpus_activations",
                        lambda m, corpus, *a, **k: sources.append(set(corpus.sources)) or real(m, corpus, *a, **k))
    Transfer(layer_map, adapter).fit(parent, child, data_dir=data_dir, progress=False)
    assert any(s.startswith("task:") for s in sources[0]) == reads_tasks
    if layer_map == "proportional" and adapter == "difference":
        with_tasks = Transfer().fit(parent, child, generated_corpus() + task_corpus(data_dir, n_per_task=32),
                                    progress=False)
        without = Transfer().fit(parent, child, generated_corpus(), progress=False)
        v = torch.randn(32, generator=torch.Generator().manual_seed(0))
        for layer in without.adapters_:
            torch.testing.assert_close(with_tasks.adapters_[layer].transform(v), without.adapters_[layer].transform(v))
