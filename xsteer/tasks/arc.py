"""ARC-Challenge and ARC-Easy (Clark et al. 2018) with their official Train/Dev/Test splits.

Choice labels are normalised to letters by position (A, B, C, ...): a few records use "1".."4";
their original labels are kept in ``meta["original_labels"]``.

Modes:

- ``loglik`` (default): prompt ``Question: <stem>\\nAnswer:``, one continuation `` <choice text>``
  per choice; shots (if ``k_shot > 0``) are written the same way with the gold text. ``k_shot=0``
  gives the usual zero-shot log-likelihood setup.
- ``generate``: the choices are listed as ``(A) text`` lines and the reply must give the letter in
  square brackets, e.g. ``[B]``.

Answer extraction (generate mode), first rule that matches: the first ``[X]``; "answer is X" /
"Answer: (X)"; the first ``(X)``; a reply that starts with a bare letter ("B", "B.", "B)").
"""

from __future__ import annotations

import random
import re
import string
from typing import ClassVar

from .base import BaseTask, Example
from .sources import check_source, hub_rows, local_rows

__all__ = ["ARC", "ARCChallenge", "ARCEasy", "extract_choice"]

_CHOICE_PATTERNS = (
    re.compile(r"\[\s*([A-E])\s*\]"),
    re.compile(r"(?i:answer)(?:\s+(?i:is))?\s*:?\s*[(\[]?\s*([A-E])\b"),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"^\s*([A-E])\s*(?:[.):]|$)"),
)
_FILES = {"train": "Train", "validation": "Dev", "test": "Test"}


def extract_choice(output: str) -> str | None:
    """The choice letter of an output (see the module docstring for the rules), or None."""
    for pattern in _CHOICE_PATTERNS:
        found = pattern.search(output)
        if found:
            return found.group(1)
    return None


def _arc_example(row: dict) -> Example:
    question = row["question"]
    if isinstance(question, dict):  # AI2 JSONL release
        stem = question["stem"]
        texts = [c["text"] for c in question["choices"]]
        labels = [c["label"] for c in question["choices"]]
    else:  # Hugging Face allenai/ai2_arc
        stem, texts, labels = question, list(row["choices"]["text"]), list(row["choices"]["label"])
    letters = string.ascii_uppercase[: len(labels)]
    return Example(
        id=row["id"],
        question=stem.strip(),
        answer=letters[labels.index(row["answerKey"])],
        choices=tuple(zip(letters, (t.strip() for t in texts))),
        meta={"original_labels": tuple(labels)},
    )


class ARC(BaseTask):
    """AI2 Reasoning Challenge, one subset (see ``ARCChallenge`` and ``ARCEasy``)."""

    subset: ClassVar[str]
    modes = ("loglik", "generate")

    def __init__(
        self,
        *,
        data_dir=None,
        source: str = "local",
        k_shot: int = 5,
        seed: int = 0,
        mode: str | None = None,
    ) -> None:
        check_source(source)
        splits = {}
        for split, part in _FILES.items():
            if source == "local":
                rows = local_rows(data_dir, f"arc/ARC-{self.subset}-{part}.jsonl")
            else:
                rows = hub_rows("allenai/ai2_arc", f"ARC-{self.subset}", split)
            splits[split] = [_arc_example(r) for r in rows]
        super().__init__(splits, k_shot=k_shot, seed=seed, mode=mode)
        generate = self.mode == "generate"
        self.max_new_tokens = 48 if generate else 0
        self.instruction = (
            "Answer the multiple-choice question. Reply with the letter of the correct choice "
            "in square brackets, for example [B]."
            if generate
            else ""
        )

    def question_text(self, example: Example) -> str:
        if self.mode == "loglik":
            return example.question
        lines = "\n".join(f"({label}) {text}" for label, text in example.choices or ())
        return f"{example.question}\n{lines}"

    def _reply(self, example: Example, label: str) -> str:
        return f"[{label}]" if self.mode == "generate" else dict(example.choices or ())[label]

    def target(self, example: Example) -> str:
        return self._reply(example, example.answer)

    def corrupt(self, example: Example, rng: random.Random) -> str:
        """The reply naming a wrong choice drawn with ``rng``."""
        wrong = rng.choice([label for label, _ in example.choices or () if label != example.answer])
        return self._reply(example, wrong)

    def extract(self, output: str) -> str | None:
        return extract_choice(output)

    def is_correct(self, prediction: str | None, example: Example) -> bool:
        return prediction is not None and prediction.strip().upper() == example.answer

    def stop_strings(self) -> list[str]:
        extra = [f"[{label}]" for label in "ABCDE"] if self.mode == "generate" else []
        return super().stop_strings() + extra


class ARCChallenge(ARC):
    """ARC-Challenge."""

    name = "arc-challenge"
    subset = "Challenge"


class ARCEasy(ARC):
    """ARC-Easy."""

    name = "arc-easy"
    subset = "Easy"
