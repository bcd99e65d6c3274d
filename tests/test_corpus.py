"""The anchor corpus, its concept-level hold-out, and the topic concepts with keyword judges."""

from __future__ import annotations

import numpy as np
import pytest

from xsteer.concepts import concept_from_pairs, load_concept
from xsteer.concepts.topics import NEUTRAL_NOUNS, TOPICS, TopicJudge, topic_concept, topic_lexicon, topic_pairs, words
from xsteer.transfer.corpus import (
    LEXICON_TEMPLATES,
    AnchorCorpus,
    builtin_corpus,
    concept_markers,
    generated_corpus,
    hold_out,
    lexicon_corpus,
)


# --------------------------------------------------------------------------- topic concepts


@pytest.mark.parametrize("topic", TOPICS)
def test_topic_pairs_differ_in_one_topic_noun_only(topic):
    pairs = topic_pairs(topic, 128, seed=1)
    assert len({(p.positive, p.negative) for p in pairs}) == 128
    lexicon = topic_lexicon(topic)
    neutral = {w for n in NEUTRAL_NOUNS for w in words(n)}
    for p in pairs:
        pos, neg = words(p.positive), words(p.negative)
        only_pos, only_neg = set(pos) - set(neg), set(neg) - set(pos)
        assert only_pos and only_pos <= lexicon  # the topic noun, nothing else
        assert only_neg and only_neg <= neutral  # an everyday object
        assert not (set(neg) & lexicon)  # the negative side says nothing of the topic
    c = topic_concept(topic, n=64)
    assert (len(c.train), len(c.test)) == (48, 16) and c.judge == TopicJudge(topic)
    assert load_concept(topic, n=64) == c  # a built-in concept by name
    judged = c.judge.score([p.positive for p in c.test]), c.judge.score([p.negative for p in c.test])
    assert (judged[0] > 0).all() and (judged[1] == 0).all()


def test_no_everyday_object_belongs_to_a_topic():
    neutral = {w for n in NEUTRAL_NOUNS for w in words(n)}
    for t in TOPICS:
        assert not (neutral & topic_lexicon(t))


def test_topic_judge_is_the_share_of_topic_words():
    judge = TopicJudge("music")
    texts = ["I played the guitar and sang songs.", "The stapler is on the shelf.", "", "Drums! Drums, drums."]
    expected = []
    for t in texts:
        ws = words(t)
        hits = [w for w in ws if w in judge.lexicon or (w.endswith("s") and w[:-1] in judge.lexicon)]
        expected.append(len(hits) / len(ws) if ws else 0.0)
    np.testing.assert_allclose(judge.score(texts), expected)
    assert judge.score(texts)[0] == pytest.approx(3 / 7)  # guitar, sang, songs
    assert judge.name == "topic:music"
    with pytest.raises(ValueError, match="Unknown topic"):
        TopicJudge("knitting")


# --------------------------------------------------------------------------- corpus


def _corpus():
    texts = ["The orchestra played all night.", "We sorted the envelopes.", "Guitars were on sale.",
             "A quiet afternoon at the library.", "What a wonderful morning!", "Je vois la voiture rouge."]
    return AnchorCorpus.of(texts, "gen", topics=["music", "office", "shopping", "library", "", ""],
                           styles=["story"] * 6)


def test_hold_out_a_topic_drops_its_label_its_words_and_its_texts():
    c = topic_concept("music", n=32)
    corpus = _corpus() + AnchorCorpus.of([c.train[0].positive, c.test[0].negative], "leak")
    kept = hold_out(corpus, c)
    # orchestra: topic label and lexicon word; Guitars: a lexicon word with a plural s; the
    # concept's own texts (the negative one too)
    assert kept.texts == ("We sorted the envelopes.", "A quiet afternoon at the library.", "What a wonderful morning!",
                          "Je vois la voiture rouge.")
    assert kept.sources == ("gen",) * 4 and kept.topics == ("office", "library", "", "")


def test_hold_out_sentiment_drops_every_word_with_a_vader_valence():
    pytest.importorskip("vaderSentiment")
    kept = hold_out(_corpus(), load_concept("sentiment", n=32))
    assert "What a wonderful morning!" not in kept.texts
    assert "We sorted the envelopes." in kept.texts
    _, markers, english_only = concept_markers(load_concept("sentiment", n=32))
    assert {"wonderful", "terrible", "love"} <= markers and not english_only


def test_hold_out_language_drops_non_english_text():
    pytest.importorskip("lingua")
    kept = hold_out(_corpus(), load_concept("language", n=32))
    assert "Je vois la voiture rouge." not in kept.texts
    assert len(kept) == 5


def test_hold_out_a_user_concept_drops_words_of_one_side_only():
    pairs = [(f"The {a} sat by the door {i}.", f"The {b} sat by the door {i}.") for i in range(8)
             for a, b in (("cat", "lamp"), ("dog", "chair"))]
    concept = concept_from_pairs("pets", pairs)
    _, markers, _ = concept_markers(concept)
    assert markers == {"cat", "dog", "lamp", "chair"}
    corpus = AnchorCorpus.of(["A dog barked.", "A door opened.", "Chairs were stacked."], "x")
    assert hold_out(corpus, concept).texts == ("A door opened.",)


def test_corpus_add_sample_and_lexicon():
    a = AnchorCorpus.of(["x", "y"], "s1")
    b = AnchorCorpus.of(["y", "z"], "s2", topics=["t", "u"])
    both = a + b
    assert both.texts == ("x", "y", "z") and both.sources == ("s1", "s1", "s2")
    assert both.describe() == {"s1": 2, "s2": 1}
    assert both.sample(2, seed=3) == both.sample(2, seed=3) and len(both.sample(2)) == 2
    assert both.sample(10) is both
    lex = lexicon_corpus(["apple", "river"])
    assert len(lex) == 2 * len(LEXICON_TEMPLATES)
    assert lex.texts[: len(LEXICON_TEMPLATES)] == tuple(t.format(w="apple") for t in LEXICON_TEMPLATES)
    assert set(lex.topics) == {"word:apple", "word:river"}
    with pytest.raises(ValueError, match="one source, topic and style"):
        AnchorCorpus(("a",), (), ("",), ("",))


def test_the_shipped_corpus_is_labelled_and_spans_many_topics():
    corpus = generated_corpus()
    assert len(corpus) >= 400
    assert len(set(corpus.topics)) >= 90 and len(set(corpus.styles)) >= 4
    assert {s.split(":")[0] for s in corpus.sources} == {"generated"}
    assert all(t.strip() for t in corpus.texts)
    assert len(set(corpus.texts)) == len(corpus)  # Gemma, a base model, sometimes wrote a text twice: kept once
    assert builtin_corpus(data_dir=False).texts == corpus.texts


def test_lexicon_frames_hold_no_marker_of_any_built_in_concept():
    pytest.importorskip("vaderSentiment")
    pytest.importorskip("lingua")
    lex = lexicon_corpus(["apple", "river", "window"])
    for name in ("sentiment", "language"):
        assert hold_out(lex, load_concept(name, n=32)) == lex
    for t in TOPICS:
        assert hold_out(lex, topic_concept(t, n=32)) == lex


# --------------------------------------------------------------------------- activations of a corpus


def test_corpus_activations_are_the_kept_rows_and_fixed_sources_are_read_whole_once(tmp_path, monkeypatch):
    """Rows for the kept texts, in their order and pooling-major, equal a direct collection of those
    texts; a fixed source is cached whole (whatever the hold-out keeps), the user's texts are not."""
    import torch

    from xsteer.models import tiny_model
    from xsteer.transfer.anchors import collect_anchor_activations, collect_corpus_activations

    monkeypatch.setenv("XSTEER_CACHE", str(tmp_path))
    model = tiny_model("llama", 2, 32, 0)
    corpus = (AnchorCorpus.of([f"a fixed text number {i}" for i in range(6)], "lexicon")
              + AnchorCorpus.of(["mine", "mine two words", "mine three more words"], "user"))
    keep = corpus.subset([4, 7, 1, 6])
    rows = collect_corpus_activations(model, corpus, keep, ("last", "mean"), batch_size=4, progress=False)
    direct = collect_anchor_activations(model, list(keep.texts), None, ("last", "mean"), 4, False)
    assert rows.keys() == direct.keys()
    for layer in rows:
        assert rows[layer].shape == (8, 32)
        torch.testing.assert_close(rows[layer], direct[layer], rtol=1e-4, atol=1e-5)
    assert len(list((tmp_path / "activations").glob("*.safetensors"))) == 1
    again = collect_corpus_activations(model, corpus, corpus.subset([1]), ("last", "mean"), batch_size=4, progress=False)
    assert len(list((tmp_path / "activations").glob("*.safetensors"))) == 1  # another hold-out, the same file
    for layer in again:
        torch.testing.assert_close(again[layer], direct[layer][[2, 6]], rtol=1e-4, atol=1e-5)
