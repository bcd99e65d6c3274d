"""Activations for the transfer experiments, cached on disk (every layer of both models): the
held-out concepts' texts, and the anchor corpus parts (generated texts, task questions, lexicon
anchors) at the last token, plus the mean over tokens for generated and task texts.

    flock /tmp/xsteer-heavy.lock python -m benchmarks.transfer_acts --data-dir ../shared/data \
        [--cache /work/cache/xsteer-acts] [--parts concepts,tasks,lexicon,generated]

Other ``benchmarks/transfer_*`` scripts read them through :func:`load_all`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

PARENT, CHILD = "gemma-3-270m", "smollm2-135m"
CONCEPT_NAMES = ("music", "sport", "medicine", "space", "cooking", "sentiment", "language")
N_PAIRS = 128
N_WORDS = 1200
N_PER_TASK = 512
PARTS = ("concepts", "tasks", "lexicon", "generated")
MEAN_PARTS = ("tasks", "generated")


def concepts(seed: int = 0):
    """The seven held-out concepts (128 pairs each, 96 train / 32 test)."""
    from xsteer.concepts import load_concept
    from xsteer.concepts.topics import TOPICS, topic_concept

    return [topic_concept(n, n=N_PAIRS, seed=seed) if n in TOPICS else load_concept(n, n=N_PAIRS, seed=seed)
            for n in CONCEPT_NAMES]


def corpus_parts(data_dir, tokenizers=None, seed: int = 0) -> dict:
    """Anchor corpus by part (AnchorCorpus each); the lexicon part needs both tokenizers."""
    from xsteer.transfer.corpus import AnchorCorpus, generated_corpus, lexicon_corpus, task_corpus
    from xsteer.transfer.vocab import shared_words

    parts = {"tasks": task_corpus(data_dir, n_per_task=N_PER_TASK, seed=seed)}
    try:
        parts["generated"] = generated_corpus()
    except FileNotFoundError:
        parts["generated"] = AnchorCorpus.of([], "generated")
    if tokenizers is not None:
        shared = shared_words(*tokenizers)
        parts["lexicon"] = lexicon_corpus(random.Random(seed).sample(shared, N_WORDS))
    return parts


def _path(cache: Path, model: str, part: str, pooling: str, texts) -> Path:
    key = hashlib.sha256(json.dumps([model, pooling, list(texts)]).encode()).hexdigest()[:12]
    return cache / f"{model}-{part}-{pooling}-{key}.pt"


def cached(cache: Path, model, name: str, part: str, pooling: str, texts, batch_size: int = 32):
    """Layer -> (n, d) activations of ``texts``, collected once (``model``: a loaded model or None
    when everything is expected on disk)."""
    from xsteer.activations import collect_activations

    path = _path(cache, name, part, pooling, texts)
    if path.exists():
        return torch.load(path, weights_only=True)
    if model is None:
        raise FileNotFoundError(f"{path} is not cached; run python -m benchmarks.transfer_acts first.")
    t0 = time.perf_counter()
    acts = collect_activations(model, list(texts), None, pooling=pooling, batch_size=batch_size, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(acts, path)
    print(json.dumps({"model": name, "part": part, "pooling": pooling, "texts": len(texts),
                      "s": round(time.perf_counter() - t0, 1)}), flush=True)
    return acts


@dataclass
class Side:
    """One model's cached activations: concept texts (last token) and corpus parts by pooling."""

    name: str
    info: object
    concept_rows: dict  # text -> row index into concept_acts
    concept_acts: dict
    parts: dict  # (part, pooling) -> layer -> (n, d)

    def rows(self, texts):
        idx = torch.as_tensor([self.concept_rows[t] for t in texts])
        return {l: a[idx] for l, a in self.concept_acts.items()}

    def concept(self, c):
        from xsteer.fidelity.strength import ConceptActs

        side = lambda pairs, pos: self.rows([p.positive if pos else p.negative for p in pairs])
        return ConceptActs(side(c.train, True), side(c.train, False), side(c.test, True), side(c.test, False))


def load_all(cache: Path, data_dir, models: dict | None = None, parts=PARTS, seed: int = 0):
    """(concepts, corpus parts, {model name: Side}) from the cache (collecting what is missing when
    ``models`` holds loaded models by name)."""
    from xsteer.transfer import ModelInfo

    models = models or {}
    cs = concepts(seed)
    toks = None
    if "lexicon" in parts:
        toks = tuple((models.get(n) or _tokenizer_only(n)).tokenizer for n in (PARENT, CHILD))
    corpus = {k: v for k, v in corpus_parts(data_dir, toks, seed).items() if k in parts}
    sides = {}
    for name in (PARENT, CHILD):
        model = models.get(name)
        texts = list(dict.fromkeys(t for c in cs for t in c.texts("all")))
        acts = cached(cache, model, name, "concepts", "last", texts)
        part_acts = {}
        for part, corp in corpus.items():
            if not len(corp):
                continue
            for pooling in ("last", "mean") if part in MEAN_PARTS else ("last",):
                part_acts[(part, pooling)] = cached(cache, model, name, part, pooling, corp.texts)
        d = acts[0].shape[1]
        info = ModelInfo(name, d, len(acts))
        sides[name] = Side(name, info, {t: i for i, t in enumerate(texts)}, acts, part_acts)
    return cs, corpus, sides


class _Tok:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer


def _tokenizer_only(name: str):
    """The embedded model's tokenizer without loading its weights."""
    from transformers import AutoTokenizer

    from xsteer.models import cache_dir

    folder = next(p for p in (cache_dir() / "converted").iterdir()
                  if p.name.lower().startswith({PARENT: "gemma-3-270m", CHILD: "smollm2-135m"}[name]))
    return _Tok(AutoTokenizer.from_pretrained(folder))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--cache", default="/work/cache/xsteer-acts")
    ap.add_argument("--parts", default=",".join(PARTS))
    args = ap.parse_args()
    from xsteer.models import load_model

    models = {n: load_model(n) for n in (PARENT, CHILD)}
    load_all(Path(args.cache), args.data_dir, models, tuple(args.parts.split(",")))


if __name__ == "__main__":
    main()
