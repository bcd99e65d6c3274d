"""The concepts' own judges, which score text without looking at any vector.

- ``SentimentJudge``: VADER compound score in [-1, 1] (positive sentiment > 0).
- ``LanguageJudge``: lingua's probability that a text is French rather than English, in [0, 1].
- ``make_judge``: a built-in name, a user's object with ``.score(texts)`` or a callable texts ->
  scores, as one judge whose every answer is checked (one finite number per text).
"""

from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np

from xsteer.concepts.base import JudgeLike, check_judge, judge_name

__all__ = ["JUDGE_PACKAGES", "CheckedJudge", "LanguageJudge", "SentimentJudge", "make_judge"]

#: judge name -> (module imported, PyPI package that provides it)
JUDGE_PACKAGES: dict[str, tuple[str, str]] = {
    "sentiment": ("vaderSentiment.vaderSentiment", "vaderSentiment"),
    "language": ("lingua", "lingua-language-detector"),
}


def _import(judge: str):
    module, package = JUDGE_PACKAGES[judge]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModuleNotFoundError(
            f"The {judge} judge needs the {package!r} package: pip install {package} "
            "(or pip install 'xsteer[judges]')."
        ) from None


class SentimentJudge:
    """VADER compound sentiment in [-1, 1]; an empty text scores 0."""

    name = "sentiment"

    def __init__(self) -> None:
        self._analyzer = _import("sentiment").SentimentIntensityAnalyzer()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Compound score per text."""
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts], dtype=float)

    def valenced_words(self) -> set[str]:
        """Every word of the lexicon with a non-zero valence (what the judge reacts to)."""
        return {w for w, v in self._analyzer.lexicon.items() if v != 0}


class LanguageJudge:
    """P(French) / (P(French) + P(English)) from lingua restricted to those two languages; 0 where
    lingua finds no evidence either way (an empty or degenerate text earns no credit as French: a
    vector that makes the child fall silent must not score as half-way to French)."""

    name = "language"

    def __init__(self) -> None:
        lingua = _import("language")
        self._fr, self._en = lingua.Language.FRENCH, lingua.Language.ENGLISH
        self._detector = lingua.LanguageDetectorBuilder.from_languages(self._en, self._fr).build()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of French per text."""
        out = []
        for values in self._detector.compute_language_confidence_values_in_parallel(list(texts)):
            conf = {v.language: v.value for v in values}
            fr, en = conf.get(self._fr, 0.0), conf.get(self._en, 0.0)
            out.append(fr / (fr + en) if fr + en > 0 else 0.0)
        return np.array(out, dtype=float)


_JUDGES = {"sentiment": SentimentJudge, "language": LanguageJudge}


class CheckedJudge:
    """A judge whose every answer is checked: ``score(texts)`` returns a float array of one finite
    number per text, or raises a ValueError that names the judge. ``inner`` is the object with
    ``.score`` or the callable it wraps."""

    def __init__(self, inner, name: str):
        self.inner, self.name = inner, name

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """One finite score per text."""
        texts = list(texts)
        raw = self.inner.score(texts) if callable(getattr(self.inner, "score", None)) else self.inner(texts)
        fix = "return one finite number per text (a list or 1-D array)"
        try:
            scores = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"Judge {self.name!r} returned {type(raw).__name__} values that are not numbers "
                f"(e.g. {list(raw)[:2] if hasattr(raw, '__iter__') else raw!r}); it must {fix}."
            ) from None
        if scores.shape != (len(texts),):
            raise ValueError(
                f"Judge {self.name!r} returned shape {scores.shape} for {len(texts)} texts; it must {fix}."
            )
        bad = np.flatnonzero(~np.isfinite(scores))
        if len(bad):
            raise ValueError(
                f"Judge {self.name!r} returned {scores[bad[0]]} for {len(bad)} of {len(texts)} texts (e.g. "
                f"{texts[bad[0]][:60]!r}); it must {fix} - score an empty or odd text, e.g. 0, instead of NaN."
            )
        return scores

    def __repr__(self) -> str:
        return f"CheckedJudge({self.name!r})"


def make_judge(judge: JudgeLike) -> CheckedJudge:
    """A checked judge from a built-in name (``"sentiment"``, ``"language"``), an object with
    ``.score(texts)`` or a callable texts -> scores (its name: ``.name``, else ``__name__``)."""
    if isinstance(judge, CheckedJudge):
        return judge
    if judge is None:
        raise ValueError(
            "No judge given; pass a built-in name (e.g. 'sentiment'), an object with .score(texts), or a "
            "function texts -> scores (or a concept that has one)."
        )
    check_judge(judge, "the steering-fidelity run")
    if isinstance(judge, str):
        return CheckedJudge(_JUDGES[judge](), judge)
    return CheckedJudge(judge, judge_name(judge))
