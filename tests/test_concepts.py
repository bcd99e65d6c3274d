"""Concept suite: built-in contrast sets, user pairs and JSONL files, bad input, concept strength."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from xsteer.concepts import (
    CONCEPTS,
    MIN_PAIRS,
    Concept,
    concept_from_pairs,
    language_pairs,
    load_concept,
    sentiment_pairs,
)
from xsteer.fidelity import model_strength
from xsteer.contrast import ContrastPair


@pytest.mark.parametrize("name", CONCEPTS)
def test_builtin_concepts_have_disjoint_splits_of_distinct_pairs(name):
    c = load_concept(name, n=256, seed=0)
    assert isinstance(c, Concept) and len(c.train) + len(c.test) == 256 and len(c.test) == 64
    texts = c.texts("all")
    assert len(set(texts)) == len(texts)  # no text occurs twice, so nothing leaks across splits
    assert load_concept(name, n=256, seed=0) == c  # deterministic
    assert load_concept(name, n=256, seed=1).test != c.test


def test_sentiment_pairs_differ_only_in_the_sentiment_word():
    for p in sentiment_pairs(200, seed=3):
        a, b = p.positive.rstrip(".").split(" "), p.negative.rstrip(".").split(" ")
        pos_word, neg_word = p.meta["words"]
        assert p.positive.replace(pos_word, neg_word, 1) == p.negative


def test_language_pairs_are_parallel_and_french_is_agreed():
    import re

    from xsteer.concepts import language as lang

    total = len(lang._SUBJECTS) * len(lang._VERBS) * len(lang._OBJECTS) * len(lang._COLOURS) * len(lang._TIMES)
    pairs = language_pairs(total, seed=0)
    by_en = {p.negative: p.positive for p in pairs}
    assert len(by_en) == total
    known = {  # hand-checked translations
        "I like the white car.": "J'aime la voiture blanche.",
        "We paint the green boat every day.": "Nous peignons le bateau vert tous les jours.",
        "The child opens the grey door in the evening.": "L'enfant ouvre la porte grise le soir.",
        "They want the black hat today.": "Ils veulent le chapeau noir aujourd'hui.",
        "You clean the blue cup again.": "Vous nettoyez la tasse bleue de nouveau.",
        "My sister sees the red window every morning.": "Ma sœur voit la fenêtre rouge chaque matin.",
    }
    for en, fr in known.items():
        assert by_en[en] == fr
    masc = {c[1] for c in lang._COLOURS}
    fem = {c[2] for c in lang._COLOURS}
    for fr in by_en.values():
        assert not re.match(r"Je [aeiouéèh]", fr)  # elision: J'aime, J'ouvre, J'achète
        article, _, colour = re.search(r" (le|la) (\S+) ([^ .]+)", fr).groups()
        assert colour in (masc if article == "le" else fem), fr


def test_user_pairs_tuples_and_split_sizes():
    pairs = [(f"good {i}", f"bad {i}") for i in range(40)]
    c = concept_from_pairs("mine", pairs, held_out=0.25, seed=0, judge="sentiment")
    assert (len(c.train), len(c.test), c.judge) == (30, 10, "sentiment")
    assert all(isinstance(p, ContrastPair) for p in c.pairs)


def test_bad_input_gets_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=f"at least {MIN_PAIRS}"):
        concept_from_pairs("few", [(f"a{i}", f"b{i}") for i in range(MIN_PAIRS - 1)])
    with pytest.raises(ValueError, match="identical texts"):
        concept_from_pairs("same", [("x", "x")] + [(f"a{i}", f"b{i}") for i in range(20)])
    with pytest.raises(ValueError, match="duplicates pair 0"):
        concept_from_pairs("dup", [("a", "b")] * 2 + [(f"a{i}", f"b{i}") for i in range(20)])
    with pytest.raises(ValueError, match="Unknown concept"):
        load_concept("nonsense")
    with pytest.raises(ValueError, match="Unknown judge"):
        concept_from_pairs("j", [(f"a{i}", f"b{i}") for i in range(20)], judge="vibes")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"positive": "a", "negative": "b"}\n{"positive": "c"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: .*'negative'"):
        load_concept(bad)
    bad.write_text('{"positive": "a", "negative": "b"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        load_concept(bad)


def test_jsonl_concept(tmp_path):
    f = tmp_path / "formal.jsonl"
    f.write_text("".join(json.dumps({"positive": f"Dear Sir {i}", "negative": f"hey dude {i}", "src": i}) + "\n" for i in range(24)))
    c = load_concept(f, judge=None)
    assert c.name == "formal" and len(c.pairs) == 24
    assert {p.meta["src"] for p in c.pairs} == set(range(24))
    assert len(load_concept(f, n=20).pairs) == 20


def test_task_concept_needs_its_data(tmp_path):
    with pytest.raises(Exception, match="(?i)data|XSTEER_DATA_DIR|not found"):
        load_concept("task:arc-easy", data_dir=tmp_path)


def test_model_strength_matches_sklearn_on_tiny_model():
    from xsteer.activations import collect_activations
    from xsteer.extract import extract_vectors
    from xsteer.models import tiny_model

    model = tiny_model("llama", n_layers=2, d_model=32, seed=0)
    c = load_concept("sentiment", n=32, seed=0)
    s = model_strength(model, c, n_boot=200)
    assert [l.layer for l in s.layers] == [0, 1]
    # reference: extract_vectors on the train pairs only, sklearn AUROC on the test texts
    vecs = extract_vectors(model, c.train, "mean_diff", held_out=0.0)
    acts = collect_activations(model, c.texts("test"))
    m = len(c.test)
    for layer in s.layers:
        proj = acts[layer.layer].double() @ vecs[layer.layer].double()
        want = roc_auc_score(np.r_[np.ones(m), np.zeros(m)], proj.numpy())
        assert layer.auroc.value == pytest.approx(want, abs=1e-5)
        assert layer.sign_agreement == pytest.approx(float((proj[:m] > proj[m:]).double().mean()))
        assert layer.auroc.low <= layer.auroc.value <= layer.auroc.high
    assert s.holds == (s.best.auroc.value >= 0.7 and s.best.auroc.low > 0.5)
    assert (s.flag == "") == s.holds
    (line,) = s.plot().data  # the result draws its per-layer AUROC
    assert list(line.x) == [0, 1] and list(line.y) == [l.auroc.value for l in s.layers]
    assert f"{s.layers[0].auroc.value:.3f}" in s._repr_html_()
