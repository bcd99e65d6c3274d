"""The evaluation engine: grids as per-row λ, cached log-likelihood, ITS vote, resumable records."""

import json

import pytest
import torch

from xsteer.contrast import arithmetic_pairs
from xsteer.choices import ChoiceTrie
from xsteer.evaluate import PAPER_LAMBDAS, Evaluator, check_lambdas, its_vote
from xsteer.extract import extract_vectors
from xsteer.models import tiny_model
from xsteer.records import RecordStore
from xsteer.steer import steer
from xsteer.tasks import load_task


@pytest.fixture(scope="module")
def child():
    return tiny_model("qwen3", n_layers=3, d_model=48, seed=3)


@pytest.fixture(scope="module")
def vectors(child):
    return extract_vectors(child, arithmetic_pairs(8), "pca")


def test_paper_grid():
    expected = [i / 100 for i in range(1, 10)] + [i / 10 for i in range(1, 11)]
    assert len(PAPER_LAMBDAS) == 19
    assert list(PAPER_LAMBDAS) == pytest.approx(expected)
    assert check_lambdas([0.5, 0.1, 0.5]) == [0.1, 0.5]
    with pytest.raises(ValueError, match="empty"):
        check_lambdas([])
    with pytest.raises(ValueError, match=">= 0"):
        check_lambdas([0.1, -0.2])


def test_its_vote_by_hand():
    assert its_vote({0.1: "7", 0.2: "8", 0.3: "8", 0.4: None}) == "8"
    # tie between "7" and "8": the answer first given by the smallest λ wins
    assert its_vote({0.3: "7", 0.1: "8", 0.2: "7", 0.4: "8"}) == "8"
    assert its_vote({0.1: None, 0.2: "5", 0.5: None, 0.9: None}) == "5"  # None never votes
    assert its_vote({0.1: None}) is None


def test_batched_grid_equals_one_lambda_at_a_time(child, vectors):
    task = load_task("arith", mode="generate", k_shot=1)
    examples = task.split("validation")[:2]
    lams = [0.0, 2.0, 8.0]
    batched = Evaluator(child, task, batch_size=6, max_new_tokens=6, progress=False)
    got = batched.sweep(examples, "validation", "c", vectors, lams)
    for lam in lams:
        single = Evaluator(child, task, batch_size=1, max_new_tokens=6, progress=False)
        ref = single.sweep(examples, "validation", "c", vectors, [lam])[lam]
        assert [r.output for r in got[lam]] == [r.output for r in ref]
    assert got[0.0][0].output != got[8.0][0].output  # steering changed something


def _full_sequence_scores(model, task, example, vectors, lam):
    """Reference: each choice scored on its own unpadded, uncached full sequence."""
    tok, scores = model.tokenizer, []
    p = task.prompt(example)  # prefix and suffix tokenized apart, as the engine does
    ctx = tok(p.prefix)["input_ids"] + tok(p.suffix, add_special_tokens=False)["input_ids"]
    for cont in task.continuations(example):
        ids = tok(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad(), steer(model, vectors, lam):
            logits = model.original_model(torch.tensor([ctx + ids])).logits[0]
        lp = torch.log_softmax(logits.float(), -1)
        scores.append(sum(float(lp[len(ctx) - 1 + t, tok_id]) for t, tok_id in enumerate(ids)))
    return scores


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_loglik_cached_scores_equal_full_sequences(child, vectors, data_dir, prefix_cache):
    """Shared few-shot prefix (per λ) + question cache shared by the choices == each choice scored
    on its own uncached, unpadded sequence."""
    task = load_task("arc-easy", data_dir=data_dir, k_shot=2)
    examples = task.split("test")[:3]
    ev = Evaluator(child, task, batch_size=64, prefix_cache=prefix_cache, progress=False)
    got = ev.sweep(examples, "test", "c", vectors, [0.0, 3.0])
    for lam, records in got.items():
        for ex, rec in zip(examples, records):
            ref = _full_sequence_scores(child, task, ex, vectors, lam)
            assert rec.meta["sum"] == pytest.approx(ref, abs=1e-3)
            best = max(range(len(ref)), key=ref.__getitem__)
            assert rec.prediction == ex.choices[best][0]
            assert rec.correct == (rec.prediction == ex.answer)


@pytest.mark.parametrize("arch", ["gemma2", "gemma3", "mistral"])
def test_loglik_with_sliding_window_beyond_prompt_length(arch, data_dir):
    """Prompts far longer than the attention window: the choice trie's windowed mask == the model's
    own sliding window on each full sequence."""
    model = tiny_model(arch, n_layers=2, d_model=48, seed=3, sliding_window=16)
    vecs = extract_vectors(model, arithmetic_pairs(8), "pca")
    task = load_task("arc-easy", data_dir=data_dir, k_shot=1)
    examples = task.split("test")[:2]
    got = Evaluator(model, task, batch_size=8, progress=False).sweep(examples, "test", "c", vecs, [0.0, 3.0])
    for lam, records in got.items():
        for ex, rec in zip(examples, records):
            assert rec.meta["sum"] == pytest.approx(_full_sequence_scores(model, task, ex, vecs, lam), abs=1e-3)


def test_choice_trie_by_hand():
    trie = ChoiceTrie.build([[7, 8, 9], [7, 8, 5], [7, 3], [4]])
    # nodes: proper prefixes (7,), (7, 8); the token after (7, 8) is predicted by node 1
    assert trie.tokens == [7, 8] and trie.parents == [-1, 0] and trie.depths == [0, 1]
    assert trie.node == {(7,): 0, (7, 8): 1}
    assert trie.ancestry(3).tolist() == [[True, False, False], [True, True, False], [False, False, True]]


def test_arith_loglik_choices():
    task = load_task("arith")
    assert task.mode == "loglik"
    for ex in task.split("test")[:50]:
        texts = [t for _, t in ex.choices]
        assert len(set(texts)) == 4 and dict(ex.choices)[ex.answer] == ex.meta["number"]
    again = load_task("arith")
    assert [e.choices for e in again.split("test")[:20]] == [e.choices for e in task.split("test")[:20]]


class _Crash(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted(child, vectors, tmp_path):
    task = load_task("arith", k_shot=0)
    examples = task.split("test")[:5]
    lams = [0.0, 1.0, 4.0]
    full = RecordStore(tmp_path / "full.jsonl")
    Evaluator(child, task, batch_size=8, store=full, progress=False).sweep(examples, "test", "c", vectors, lams)

    path = tmp_path / "cut.jsonl"
    store = RecordStore(path)
    calls = {"n": 0}
    original = store.add

    def crash_on_second_batch(records):
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Crash
        original(records)

    store.add = crash_on_second_batch
    with pytest.raises(_Crash):
        Evaluator(child, task, batch_size=8, store=store, progress=False).sweep(examples, "test", "c", vectors, lams)
    with path.open("a") as fh:  # a line cut short by the crash
        fh.write('{"split": "test", "condition": "c", "exam')
    done_before = len(RecordStore(path))
    assert 0 < done_before < len(examples) * len(lams)

    resumed = RecordStore(path)
    ev = Evaluator(child, task, batch_size=8, store=resumed, progress=False)
    ev.sweep(examples, "test", "c", vectors, lams)
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    reference = [json.loads(l) for l in (tmp_path / "full.jsonl").read_text().splitlines()]
    key = lambda r: (r["example_id"], r["lam"])
    assert len(lines) == len(reference)  # nothing duplicated
    assert sorted(lines, key=key) == sorted(reference, key=key)


def test_self_consistency_loglik_is_seeded(child):
    task = load_task("arith", k_shot=0)
    examples = task.split("test")[:4]
    ev = Evaluator(child, task, progress=False)
    a = ev.sample(examples, "test", 7, seed=1)
    b = Evaluator(child, task, progress=False).sample(examples, "test", 7, seed=1)
    assert [[r.prediction for r in rs] for rs in a] == [[r.prediction for r in rs] for rs in b]
    assert all(len(rs) == 7 and {r.prediction for r in rs} <= set("ABCD") for rs in a)


def test_bad_input(child, vectors):
    task = load_task("arith", k_shot=0)
    ev = Evaluator(child, task, progress=False)
    with pytest.raises(ValueError, match="No examples"):
        ev.sweep([], "test", "c", vectors, [0.1])
    with pytest.raises(ValueError, match="needs steering vectors"):
        ev.sweep(task.split("test")[:1], "test", "c", None, [0.1])


@pytest.mark.parametrize("arch, window", [("llama", None), ("gemma3", None), ("gemma3", 16)])
def test_prefix_cache_keeps_answers(arch, window):
    """Few-shot prefix computed once per λ == the plain path == TransformerBridge.generate row by row
    (with drafts from the neighbouring λ; a short sliding window turns prefix cache and drafts off)."""
    model = tiny_model(arch, n_layers=2, d_model=64, seed=5, **({"sliding_window": window} if window else {}))
    vecs = extract_vectors(model, arithmetic_pairs(8), "pca")
    task = load_task("arith", mode="generate", k_shot=2)
    examples = task.split("test")[:3]
    lams = [0.0, 3.0]
    runs = [
        Evaluator(model, task, batch_size=6, max_new_tokens=8, prefix_cache=flag, progress=False)
        .sweep(examples, "test", "c", vecs, lams)
        for flag in (True, False)
    ]
    for lam in lams:
        assert [r.output for r in runs[0][lam]] == [r.output for r in runs[1][lam]]
        for ex, rec in zip(examples, runs[0][lam]):
            p = task.prompt(ex, model.tokenizer)
            ids = model.tokenizer(p.prefix)["input_ids"] + model.tokenizer(p.suffix, add_special_tokens=False)["input_ids"]
            with steer(model, vecs, lam):
                out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, verbose=False)
            ref = model.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
            assert ref.startswith(rec.output)  # the engine may stop early at a stop string
