"""Batched decoding with drafts: the same tokens as Hugging Face greedy generation row by row,
whatever the drafts say; seeded sampling."""

import random

import pytest
import torch

from xsteer.contrast import arithmetic_pairs
import xsteer.decode as decoding
from xsteer.decode import Group, Sampling, decode, propose
from xsteer.extract import extract_vectors
from xsteer.models import tiny_model
from xsteer.plain import plain_view, sliding_window
from xsteer.steer import steer, steering_hooks

N_NEW = 20


def test_propose_by_hand():
    draft = [5, 6, 7, 8, 9, 6, 7, 4]
    assert propose([5, 6], draft, 3) == [7, 8, 9]  # still aligned: the next tokens
    assert propose([5, 6], draft, 0) == []
    # diverged: after the last 3 (else 2) tokens' occurrence nearest to the current position
    assert propose([1, 2, 9, 6, 7], draft, 2) == [4]
    assert propose([1, 9, 6, 7, 8], draft, 2) == [9, 6]
    assert propose([1, 2, 3], draft, 4) == []
    # nothing in the draft: after the last occurrence in a lookup sequence (the prompt)
    assert propose([3, 1, 2], [], 2, lookup=[[1, 2, 5, 0, 1, 2, 6, 7, 8]]) == [6, 7]
    assert propose([1, 2, 9, 6, 7], draft, 2, lookup=[[6, 7, 0]]) == [4]  # the draft comes first


@pytest.fixture(scope="module", params=["llama", "gemma3", "phi3"])
def setup(request):
    model = tiny_model(request.param, n_layers=2, d_model=64, seed=1)
    vectors = extract_vectors(model, arithmetic_pairs(4), "pca")
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 250, (n,), generator=gen).tolist() for n in (5, 9, 12, 7)]
    lams = torch.tensor([0.0, 2.0, 5.0, 1.0])
    reference = []  # Hugging Face greedy generation through the bridge, one row at a time
    for prompt, lam in zip(prompts, lams):
        with torch.inference_mode(), steer(model, vectors, float(lam)):
            out = model.original_model.generate(
                input_ids=torch.tensor([prompt]), max_new_tokens=N_NEW, do_sample=False, pad_token_id=0,
                eos_token_id=None,
            )
        reference.append(out[0, len(prompt):].tolist())
    return model, vectors, prompts, lams, reference


def _left_padded(prompts):
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def _decode(setup, finished, drafts=None, lookup=None, group_size=4, **kw):
    """Rows in groups of ``group_size`` (a group joins when fewer than ``refill_below`` rows run)."""
    model, vectors, prompts, lams, _ = setup
    groups = []
    for start in range(0, len(prompts), group_size):
        ids, mask = _left_padded(prompts[start : start + group_size])
        part = slice(start, start + group_size)
        groups.append(Group(list(range(len(prompts)))[part], ids, mask, drafts=drafts and drafts[part],
                            lookup=lookup and lookup[part]))
    got = dict(decode(
        plain_view(model), groups, hooks_for=lambda keys: steering_hooks(model, vectors, lams[keys]),
        max_new_tokens=N_NEW, finished=finished, **kw,
    ))
    return [got[k] for k in range(len(prompts))]


def test_drafts_never_change_greedy_tokens(setup):
    reference = setup[-1]
    assert len({tuple(r) for r in reference}) > 1
    stop = reference[1][7]  # an end token that stops rows at different lengths
    expected = [r[: r.index(stop) + 1] if stop in r else r for r in reference]
    assert len({len(e) for e in expected}) > 1
    finished = lambda tokens: len(tokens) if tokens[-1] == stop else None
    rng = random.Random(0)
    drafts = {
        "none": None,
        "exact": reference,
        "garbage": [[rng.randrange(250) for _ in range(30)] for _ in reference],
        "one wrong token": [r[:5] + [r[5] + 1] + r[6:] for r in reference],
        "another row's": reference[::-1],
    }
    prompts = setup[2]
    for name, draft in drafts.items():
        assert _decode(setup, finished, drafts=draft) == expected, name
        assert _decode(setup, finished, drafts=draft, group_size=1, refill_below=2) == expected, name
        assert _decode(setup, finished, drafts=draft, lookup=[[p, r] for p, r in zip(prompts, reference[::-1])]) == expected, name


def test_finished_can_keep_fewer_tokens(setup):
    reference = setup[-1]
    got = _decode(setup, lambda tokens: 2 if len(tokens) == 4 else None, drafts=reference)
    assert got == [r[:2] for r in reference]


def test_sampling_is_seeded(setup):
    never = lambda tokens: None
    a = _decode(setup, never, sampling=Sampling(temperature=2.0, seed=1))
    b = _decode(setup, never, sampling=Sampling(temperature=2.0, seed=1), drafts=setup[-1])  # drafts unused
    c = _decode(setup, never, sampling=Sampling(temperature=2.0, seed=2))
    assert a == b and a != c
    assert all(len(row) == N_NEW for row in a)


def test_groups_join_when_the_batch_runs_low(setup):
    """A group is drawn only when fewer than ``refill_below`` rows run; rows of different groups
    (caches of different lengths) then decode together and still give the reference tokens.
    Models with sliding-window layers finish a group before drawing the next."""
    model, vectors, prompts, lams, reference = setup
    events = []

    def groups():
        for start in (0, 2):
            events.append(("draw", start))
            ids, mask = _left_padded(prompts[start : start + 2])
            yield Group([start, start + 1], ids, mask)

    early = reference[0][:3]  # row 0 stops after 3 tokens, so the second group joins row 1
    got = {}
    for key, tokens in decode(
        plain_view(model), groups(), hooks_for=lambda keys: steering_hooks(model, vectors, lams[keys]),
        max_new_tokens=N_NEW, finished=lambda tokens: 3 if tokens == early else None, refill_below=2,
    ):
        events.append(("done", key))
        got[key] = tokens
    if sliding_window(model.original_model.config) is None:
        assert events[:3] == [("draw", 0), ("done", 0), ("draw", 2)]
    else:  # a sliding window counts cache slots: groups do not merge
        assert events[:4] == [("draw", 0), ("done", 0), ("done", 1), ("draw", 2)]
    assert got == {0: early, **{k: reference[k] for k in (1, 2, 3)}}


def test_first_passes_by_hand(monkeypatch):
    """Rows sorted by prompt + draft length, cut where a pass (10 positions here) costs less than
    the padding it saves: 2×(2+0) … one pass of all would be 4×16 + 10 = 74, these two 22 + 42."""
    monkeypatch.setattr(decoding, "PASS_SLOTS", 10)
    prompts = [[1, 2], [1, 2], [1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]]
    ids, mask = _left_padded(prompts)
    group = Group([0, 1, 2, 3], ids, mask, drafts=[[7] * 10, None, [7] * 10, None])
    rows = decoding._Rows.start(group, drafting=True)
    assert decoding._first_passes(rows, max_new_tokens=50) == [[1, 3], [0, 2]]
    assert decoding._first_passes(rows, max_new_tokens=4) == [[1, 0, 3, 2]]  # drafts cut to 3: one pass
    part = rows.split([[0]])[0]  # its prompt without the columns that only pad it
    assert part.feed.tolist() == [[1, 2]] and part.feed_mask.tolist() == [[1, 1]]


def test_split_first_passes_keep_greedy_tokens(setup, monkeypatch):
    """With padding made as costly as a pass, a group whose rows' prompt + draft lengths all differ
    runs its first pass row by row, then decodes as one batch: the reference tokens still."""
    model, reference = setup[0], setup[-1]
    monkeypatch.setattr(decoding, "PASS_SLOTS", 0)
    view = plain_view(model)
    batches, forward = [], view.model.forward

    def counted(*args, **kwargs):
        batches.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(view.model, "forward", counted)
    drafts = [r[:k] for r, k in zip(reference, (19, 3, 0, 10))]
    drafts[1] = drafts[1][:2] + [drafts[1][2] + 1]  # a wrong token too
    assert _decode(setup, lambda tokens: None, drafts=drafts) == reference
    if sliding_window(model.original_model.config) is None:
        assert batches[:5] == [1, 1, 1, 1, 3]  # the row with the whole draft is done in its first pass
    else:  # rows would have to merge into one window that counts cache slots: no split
        assert batches[0] == 4


def test_split_first_passes_with_a_cached_head(setup, monkeypatch):
    """The same, with each row's first 4 prompt tokens given as a KV cache (as the few-shot prefix
    is): the split passes take their rows' slices of it."""
    model, vectors, prompts, lams, reference = setup
    monkeypatch.setattr(decoding, "PASS_SLOTS", 0)
    view, hooks = plain_view(model), steering_hooks(model, vectors, lams)
    with torch.inference_mode(), view.hooks(hooks):
        cache = view.model(input_ids=torch.tensor([p[:4] for p in prompts]), use_cache=True).past_key_values
    ids, tail_mask = _left_padded([p[4:] for p in prompts])
    mask = torch.cat([torch.ones(len(prompts), 4, dtype=torch.long), tail_mask], dim=1)
    drafts = [r[:k] for r, k in zip(reference, (19, 3, 0, 10))]
    group = Group([0, 1, 2, 3], ids, mask, cache, drafts=drafts)
    for part, index in zip(decoding._Rows.start(group, True).split([[2], [0, 3]]), ([2], [0, 3])):
        for mine, whole in zip(part.cache.layers, cache.layers):  # copies of the rows' slices
            assert torch.equal(mine.keys, whole.keys[index]) and torch.equal(mine.values, whole.values[index])
            assert mine.keys.data_ptr() != whole.keys.data_ptr()
    got = dict(decode(
        view, [group],
        hooks_for=lambda keys: steering_hooks(model, vectors, lams[keys]), max_new_tokens=N_NEW,
        finished=lambda tokens: None,
    ))
    assert [got[k] for k in range(4)] == reference
