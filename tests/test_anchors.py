"""Token-aligned anchors and the streamed ridge: hand-worked alignments across two tokenizers,
rows against Hugging Face hidden states, statistics against a direct numpy ridge, planted maps."""

from __future__ import annotations

import string
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from xsteer.models import tiny_model
from xsteer.transfer import RidgeAdapter, RidgeStats, Transfer, aligned_positions, iter_aligned_batches
from xsteer.transfer.aligned import _adapter_from_stats, encode_with_offsets, split_texts

WORDS = "the cat sat on a mat dog ran to red big hat and we see it".split()


def _word_tokenizer(folder):
    """Whitespace word-level tokenizer with a BOS token: a vocabulary unlike the byte-level one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(["<pad>", "<bos>", "<unk>", *WORDS, *string.punctuation])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>", padding_side="left"
    )
    fast.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 9))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Parent with the byte-level tokenizer; child (other arch and width) with the word tokenizer."""
    parent = tiny_model("llama", 3, 32, seed=1)
    child = tiny_model("qwen2", 2, 48, seed=2)
    child.tokenizer = _word_tokenizer(str(tmp_path_factory.mktemp("wordtok")))
    return parent, child


def test_aligned_positions_hand_worked():
    # "ab cd": bytes end at 1..5; words (after a zero-width BOS) end at 2 and 5.
    a = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    b = [(0, 0), (0, 2), (2, 5)]
    assert aligned_positions(a, b) == [(1, 1), (4, 2)]
    # several byte tokens of one character share its span: the last one counts
    assert aligned_positions([(0, 1), (0, 1), (1, 2)], [(0, 1), (1, 2)]) == [(1, 0), (2, 1)]
    assert aligned_positions([(0, 0)], [(0, 0)]) == []


def test_offsets_of_two_tokenizers_hand_worked(pair):
    parent, child = pair
    text = "the cat sat."
    enc_p, off_p = encode_with_offsets(parent, [text])
    enc_c, off_c = encode_with_offsets(child, [text])
    # both bridges' tokenizers prepend a zero-width BOS (TransformerLens forces add_bos_token)
    assert enc_p["input_ids"][0, 0] == parent.tokenizer.bos_token_id and enc_p["input_ids"].shape[1] == 13
    assert enc_c["input_ids"][0, 0] == 1
    # bytes end at 1..12 (ids 1..12); words end at 3 ("the"), 7 ("cat"), 11 ("sat"), 12 (".")
    assert aligned_positions(off_p[0], off_c[0]) == [(3, 1), (7, 2), (11, 3), (12, 4)]


def test_aligned_rows_match_hf_hidden_states_and_batching(pair):
    parent, child = pair
    texts = _texts(7)
    batched = list(iter_aligned_batches(parent, child, texts, [0, 1], [0], batch_size=4))
    single = list(iter_aligned_batches(parent, child, texts, [0, 1], [0], batch_size=1))
    for key in ("parent", "child"):
        for l in getattr(batched[0], key):
            a = torch.cat([getattr(b, key)[l] for b in batched])
            s = torch.cat([getattr(b, key)[l] for b in single])
            torch.testing.assert_close(a, s, atol=1e-4, rtol=1e-4)
    # independent read: HF hidden states of one text, at the hand-found aligned positions
    text = texts[2]
    with torch.no_grad():
        hp = parent.original_model(**parent.tokenizer([text], return_tensors="pt"), output_hidden_states=True)
        hc = child.original_model(**child.tokenizer([text], return_tensors="pt"), output_hidden_states=True)
    # ASCII text: byte-level id k + 1 (after BOS) ends at character k + 1; word k ends after BOS too
    assert parent.tokenizer([text])["input_ids"][0][0] == parent.tokenizer.bos_token_id
    pos = [(m + len(w), k + 1) for k, (m, w) in enumerate(_word_spans(text))]
    rows = [b for b in single if b.text[0] == 2][0]
    torch.testing.assert_close(rows.parent[1], hp.hidden_states[2][0, [i for i, _ in pos]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(rows.child[0], hc.hidden_states[1][0, [j for _, j in pos]], atol=1e-4, rtol=1e-4)


def _word_spans(text):
    """(start, token) of whitespace words and punctuation, as the Whitespace pre-tokenizer splits."""
    import re

    return [(m.start(), m.group()) for m in re.finditer(r"\w+|[^\w\s]+", text)]


def _direct_ridge(x, y, alpha):
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    unit = np.trace(xc.T @ xc) / x.shape[1]
    return np.linalg.solve(xc.T @ xc + alpha * unit * np.eye(x.shape[1]), xc.T @ yc), mx, my


def _direct_r2(x, y, W, mx, my):
    pred = my + (x - mx) @ W
    spread = ((y - my) ** 2).sum(0)
    return float((1 - ((y - pred) ** 2).sum(0) / spread).mean())


def test_streamed_ridge_equals_direct_ridge_and_ignores_batch_splits():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 12)) * 3 + 5
    y = x @ rng.standard_normal((12, 7)) + rng.standard_normal((300, 7)) + 2
    one = RidgeStats(12, 7).update(x, y)
    many = RidgeStats(12, 7)
    for chunk in np.split(np.arange(300), [1, 50, 51, 170]):
        many.update(x[chunk], y[chunk])
    for alpha in (1e-3, 1.0):
        W, mx, my = _direct_ridge(x, y, alpha)
        np.testing.assert_allclose(one.solve(alpha), W, atol=1e-6)
        np.testing.assert_allclose(many.solve(alpha), W, atol=1e-6)
        # the SVD ridge of RidgeAdapter agrees (same alpha units)
        ref = RidgeAdapter()
        ref.alpha_ = alpha
        xt, yt = torch.from_numpy(x - mx), torch.from_numpy(y - my)
        np.testing.assert_allclose(ref._solve(xt, yt).numpy(), W, atol=1e-6)
    held_x = rng.standard_normal((80, 12)) * 3 + 5
    held_y = held_x @ rng.standard_normal((12, 7)) + 2
    held = RidgeStats(12, 7).update(held_x, held_y)
    W, mx, my = _direct_ridge(x, y, 0.1)
    assert held.r2(W, mx, my) == pytest.approx(_direct_r2(held_x, held_y, W, mx, my), abs=1e-6)


def test_planted_linear_map_recovered_with_true_r2():
    rng = np.random.default_rng(1)
    d_p, d_c, noise = 20, 10, 0.5
    A = rng.standard_normal((d_p, d_c)) / np.sqrt(d_p)  # unit signal variance per child dim
    stats = []
    for n in (4000, 1000):
        x = rng.standard_normal((n, d_p))
        stats.append(RidgeStats(d_p, d_c).update(x, x @ A + noise * rng.standard_normal((n, d_c))))
    fitted = _adapter_from_stats(*stats, RidgeAdapter())
    truth = float(np.mean((A**2).sum(0) / ((A**2).sum(0) + noise**2)))
    assert fitted.score_ == pytest.approx(truth, abs=0.03)
    np.testing.assert_allclose(fitted.W_.numpy(), A, atol=0.05)
    assert fitted.n_anchors_ == 5000 and fitted.alpha_ in RidgeAdapter().alphas


def test_fit_aligned_holds_out_texts_and_matches_materialised_ridge(pair):
    parent, child = pair
    texts = _texts(60, seed=3)
    tr = Transfer("greedy", RidgeAdapter(alphas=(0.01, 1.0))).fit(
        parent, child, texts, pooling="aligned", batch_size=8, progress=False
    )
    batches = list(iter_aligned_batches(parent, child, texts, [0, 1], [0, 1], batch_size=5))
    text = np.concatenate([b.text for b in batches])
    held = split_texts(len(texts), 0.2, 0)[text]
    assert tr.n_anchors_ == len(text) and 0 < held.sum() < len(text)
    assert held.sum() == sum(len(_word_spans(texts[i])) for i in np.flatnonzero(split_texts(60, 0.2, 0)))
    for c in (0, 1):
        x = torch.cat([b.parent[c] for b in batches]).double().numpy()
        y = torch.cat([b.child[c] for b in batches]).double().numpy()
        scores = [_direct_r2(x[held], y[held], *_direct_ridge(x[~held], y[~held], a)) for a in (0.01, 1.0)]
        a = tr.adapters_[c]
        assert a.score_ == pytest.approx(max(scores), abs=1e-6)
        assert a.alpha_ == (0.01, 1.0)[int(np.argmax(scores))]
        np.testing.assert_allclose(a.W_.numpy(), _direct_ridge(x, y, a.alpha_)[0], atol=1e-4)
    v = tr.apply(_vectors(parent))
    assert v.provenance["n_anchors"] == len(text)


def _vectors(parent):
    from xsteer.vectors import SteeringVectors

    return SteeringVectors(
        directions={0: torch.ones(32) / 32**0.5},
        model_name=parent.cfg.model_name, d_model=32, n_layers=3, method="pca", seed=0,
    )


def test_too_few_aligned_positions_and_other_adapters_raise(pair):
    parent, child = pair
    with pytest.raises(ValueError, match="align on only .* pooling='last'"):
        Transfer("greedy", "ridge").fit(parent, child, ["the cat.", "a dog."], pooling="aligned", progress=False)
    with pytest.raises(ValueError, match="adapter='ridge'"):
        Transfer(adapter="procrustes").fit(parent, child, _texts(5), pooling="aligned", progress=False)
    with pytest.raises(ValueError, match="adapter=.ridge. or .ridge_std."):  # before any generation
        Transfer().fit(parent, child, _texts(5), pooling="continued", progress=False)


def test_starts_keep_only_the_rows_after_each_offset(pair):
    """Rows after a character offset are exactly the unrestricted rows whose child word ends after it."""
    parent, child = pair
    texts = _texts(9, seed=5)
    starts = [m + len(w) for t in texts for (m, w) in _word_spans(t)[1:2]]  # after each text's second word
    full = list(iter_aligned_batches(parent, child, texts, [1], [0], batch_size=4))
    cut = list(iter_aligned_batches(parent, child, texts, [1], [0], batch_size=4, starts=starts))
    keep = np.concatenate([[m + len(w) > starts[i] for (m, w) in _word_spans(texts[i])] for i in range(len(texts))])
    assert keep.sum() == sum(len(_word_spans(t)) - 2 for t in texts)
    for key, layer in (("parent", 1), ("child", 0)):
        whole = torch.cat([getattr(b, key)[layer] for b in full])
        torch.testing.assert_close(torch.cat([getattr(b, key)[layer] for b in cut]), whole[torch.as_tensor(keep)])
    with pytest.raises(ValueError, match="one per text"):
        next(iter_aligned_batches(parent, child, texts, [1], [0], starts=starts[:-1]))


def test_continuations_are_the_models_own_greedy_tokens():
    from xsteer.transfer import continue_texts, openings

    model = tiny_model("llama", 2, 32, seed=4)
    prompts = openings([f"{t} and then some more words follow here" for t in _texts(5, seed=6)], n_words=4)
    got = continue_texts(model, prompts, max_new_tokens=6, batch_size=3)
    tok = model.tokenizer
    want = []
    for p in prompts:  # one prompt at a time, no padding: Hugging Face's own greedy generate
        ids = tok([p], return_tensors="pt")
        out = model.original_model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id)
        want.append(p + tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    kept = [(w, len(p)) for w, p in zip(want, prompts) if w[len(p):].strip()]
    assert len(kept) >= 3 and list(zip(got.texts, got.starts)) == kept
    assert all(len(p.split()) == 4 for p in prompts)


def test_continued_pooling_fits_the_aligned_ridge_on_the_childs_continuations_only():
    from xsteer.transfer import continue_texts, fit_aligned_ridge, openings
    from xsteer.transfer.layer_maps import GreedyMap

    parent, child = tiny_model("llama", 3, 32, seed=1), tiny_model("qwen2", 2, 48, seed=2)
    texts = [f"{t} {u}" for t, u in zip(_texts(40, seed=7), _texts(40, seed=8))]
    tr = Transfer("greedy", RidgeAdapter(alphas=(0.1,))).fit(parent, child, texts, pooling="continued", new_tokens=8,
                                                             progress=False)
    cont = continue_texts(child, openings(texts), max_new_tokens=8)
    mapping = GreedyMap().fit(3, 2).mapping_
    want, rows = fit_aligned_ridge(parent, child, list(cont.texts), mapping, RidgeAdapter(alphas=(0.1,)), starts=cont.starts)
    everything, _ = fit_aligned_ridge(parent, child, list(cont.texts), mapping, RidgeAdapter(alphas=(0.1,)))
    assert tr.n_anchors_ == rows
    for c in mapping:
        torch.testing.assert_close(tr.adapters_[c].W_, want[c].W_)
        assert everything[c].n_anchors_ > rows  # the openings' own positions are not rows
