"""The built-in anchor corpus and concept-level hold-out.

An :class:`AnchorCorpus` is a list of texts with labels (source, topic, style). Three parts:

- **generated** (shipped, ``xsteer/data/anchor_corpus.jsonl.gz``): texts SmolLM2-135M-Instruct and
  Gemma-3-270M wrote from 102 topics × 5 styles (``benchmarks/transfer_corpus_generate.py``);
- **tasks** (read at run time from ``data_dir`` / ``$XSTEER_DATA_DIR`` when present): train-split
  questions of ARC-Easy and GSM8K;
- **lexicon**: words that both tokenizers write as one token, each in a few neutral templates
  (:func:`lexicon_corpus`; built from the two tokenizers, so it covers whatever vocabulary they share).

:func:`hold_out` removes a concept's *topic* from a corpus, not only its texts: see its docstring.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass
from importlib import resources
from typing import Callable, Sequence

import numpy as np

from xsteer.concepts.judges import LanguageJudge, SentimentJudge

__all__ = [
    "LEXICON_TEMPLATES",
    "AnchorCorpus",
    "builtin_corpus",
    "concept_markers",
    "generated_corpus",
    "hold_out",
    "lexicon_corpus",
    "task_corpus",
]

#: Neutral sentence frames for lexicon anchors (no topic or VADER word in them, and no phrase of a
#: built-in concept's templates): the word sits inside a sentence, so the last token carries it as
#: context, as it carries a concept pair's word.
LEXICON_TEMPLATES = (
    "Nobody there had seen the {w} before that day.",
    "In the end it was {w}, or so it seemed.",
    "The word {w} came up again at the table.",
)

_GENERATED = "anchor_corpus.jsonl.gz"


@dataclass(frozen=True)
class AnchorCorpus:
    """Anchor texts with one label per text: ``source`` (e.g. "generated:smollm2-135m", "task:arc-easy",
    "lexicon"), ``topic`` and ``style`` ("" where unknown; lexicon anchors: topic "word:<word>",
    style = the template index)."""

    texts: tuple[str, ...]
    sources: tuple[str, ...]
    topics: tuple[str, ...]
    styles: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.texts)
        if not all(len(x) == n for x in (self.sources, self.topics, self.styles)):
            raise ValueError("AnchorCorpus needs one source, topic and style label per text.")

    @classmethod
    def of(cls, texts: Sequence[str], source: str, topics: Sequence[str] | None = None,
           styles: Sequence[str] | None = None) -> AnchorCorpus:
        """A corpus of one source; missing labels are ""."""
        n = len(texts)
        return cls(tuple(texts), (source,) * n, tuple(topics or ("",) * n), tuple(styles or ("",) * n))

    def __len__(self) -> int:
        return len(self.texts)

    def __add__(self, other: AnchorCorpus) -> AnchorCorpus:
        """Both corpora, duplicates of an earlier text dropped."""
        return AnchorCorpus(*(a + b for a, b in zip(self._columns(), other._columns()))).unique()

    def unique(self) -> AnchorCorpus:
        """Each text once, at its first occurrence (with that occurrence's labels)."""
        _, first = np.unique(np.asarray(self.texts, dtype=object), return_index=True)
        return self if len(first) == len(self) else self.subset(np.sort(first))

    def _columns(self):
        return self.texts, self.sources, self.topics, self.styles

    def subset(self, index: Sequence[int] | np.ndarray) -> AnchorCorpus:
        """The texts at ``index`` (indices or a boolean mask), in that order."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return AnchorCorpus(*(tuple(col[i] for i in idx) for col in self._columns()))

    def where(self, keep: Callable[[str, str, str, str], bool]) -> AnchorCorpus:
        """The texts for which ``keep(text, source, topic, style)`` holds."""
        return self.subset([i for i, row in enumerate(zip(*self._columns())) if keep(*row)])

    def sample(self, n: int, seed: int = 0) -> AnchorCorpus:
        """A seeded random subset of ``n`` texts (all of them when ``n`` >= the size), in corpus order."""
        if n >= len(self):
            return self
        return self.subset(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))

    def describe(self) -> dict[str, int]:
        """Text count per source."""
        out: dict[str, int] = {}
        for s in self.sources:
            out[s] = out.get(s, 0) + 1
        return out


def generated_corpus() -> AnchorCorpus:
    """The shipped texts the two models generated (topic and style labelled; a text written twice
    is kept once)."""
    path = resources.files("xsteer") / "data" / _GENERATED
    with resources.as_file(path) as p, gzip.open(p, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return AnchorCorpus(tuple(r["text"] for r in rows), tuple(f"generated:{r['model']}" for r in rows),
                        tuple(r["topic"] for r in rows), tuple(r["style"] for r in rows)).unique()


def task_corpus(data_dir=None, *, tasks: Sequence[str] = ("arc-easy", "gsm8k"), n_per_task: int = 512,
                seed: int = 0) -> AnchorCorpus:
    """Up to ``n_per_task`` train-split questions of each task found in ``data_dir`` (or
    ``$XSTEER_DATA_DIR``); empty when no local data is there."""
    from xsteer.tasks import load_task

    data_dir = data_dir or os.environ.get("XSTEER_DATA_DIR")
    out = AnchorCorpus.of([], "task")
    if not data_dir:
        return out
    for name in tasks:
        try:
            examples = load_task(name, data_dir=data_dir, seed=seed).split("train")
        except (FileNotFoundError, ValueError):
            continue
        chosen = np.random.default_rng(seed).permutation(len(examples))[:n_per_task]
        out = out + AnchorCorpus.of([examples[i].question for i in chosen], f"task:{name}", styles=[name] * len(chosen))
    return out


def lexicon_corpus(words: Sequence[str], *, templates: Sequence[str] = LEXICON_TEMPLATES) -> AnchorCorpus:
    """Every word in every template (topic label "word:<word>", style = the template index)."""
    rows = [(t.format(w=w), f"word:{w}", str(k)) for w in words for k, t in enumerate(templates)]
    return AnchorCorpus.of([r[0] for r in rows], "lexicon", [r[1] for r in rows], [r[2] for r in rows])


def builtin_corpus(parent=None, child=None, *, generated: bool = True, data_dir=None, n_words: int = 1200,
                   n_per_task: int = 512, seed: int = 0) -> AnchorCorpus:
    """Generated texts (``generated``) + task questions (when local data is found in ``data_dir`` or
    ``$XSTEER_DATA_DIR``; ``data_dir=False``: none) + lexicon anchors of ``n_words`` seeded words
    both tokenizers share (when both models are given)."""
    corpus = generated_corpus() if generated else AnchorCorpus.of([], "generated")
    if data_dir is not False:
        corpus = corpus + task_corpus(data_dir, n_per_task=n_per_task, seed=seed)
    if parent is not None and child is not None and n_words > 0:
        from xsteer.transfer.vocab import shared_words

        shared = shared_words(parent.tokenizer, child.tokenizer)
        corpus = corpus + lexicon_corpus(random.Random(seed).sample(shared, min(n_words, len(shared))))
    return corpus


# ---------------------------------------------------------------------------- hold-out


def _words(text: str) -> list[str]:
    from xsteer.concepts.topics import words

    return words(text)


def _pair_marker_words(concept) -> set[str]:
    """Words found on only one side of the concept's pairs (never on the other side of any pair)."""
    pos = {w for p in concept.pairs for w in _words(p.positive)}
    neg = {w for p in concept.pairs for w in _words(p.negative)}
    return pos ^ neg


def concept_markers(concept) -> tuple[set[str], set[str], bool]:
    """(topic labels, marker words, drop non-English text) that define a concept's topic:

    - a built-in topic concept (``xsteer.concepts.topics``): its name and its judge's lexicon;
    - "sentiment": every word with a VADER valence (the judge's own lexicon);
    - "language": no words, but every text the language judge finds more French than English;
    - any other concept: the words found on only one side of its pairs.
    """
    from xsteer.concepts.topics import TOPICS, topic_lexicon

    name = concept.name
    if name in TOPICS:
        return {name}, set(topic_lexicon(name)), False
    if name == "sentiment":
        return set(), SentimentJudge().valenced_words(), False
    if name == "language":
        return set(), set(), True
    return set(), _pair_marker_words(concept), False


def hold_out(corpus: AnchorCorpus, concept) -> AnchorCorpus:
    """The corpus without the concept's topic: drop (1) the concept's own texts (train and test),
    (2) texts labelled with its topic, (3) texts containing any of its marker words (a trailing "s"
    stripped too) and, for language, (4) text that is not English (see :func:`concept_markers`)."""
    topics, markers, english_only = concept_markers(concept)
    own = set(concept.texts("all"))

    def has_marker(text: str) -> bool:
        return any(w in markers or (w.endswith("s") and w[:-1] in markers) for w in _words(text))

    keep = np.array([t not in own and topic not in topics and not has_marker(t)
                     for t, topic in zip(corpus.texts, corpus.topics)], dtype=bool)
    if english_only and keep.any():
        idx = np.flatnonzero(keep)
        keep[idx[LanguageJudge().score([corpus.texts[i] for i in idx]) > 0.5]] = False  # more French than English
    return corpus.subset(keep)
