"""MATH (Hendrycks et al. 2021) and MATH-500, answers in ``\\boxed{}`` checked with math-verify.

Splits (only the MATH *test* file is available, so the few-shot items are held out of it, as the
paper did):

- ``math``: from the 5000 test problems, ``train`` = ``n_fewshot`` (default 5) problems drawn with
  the seed among those whose problem + solution is at most 700 characters (short shots keep the
  prompt small); ``validation`` = a seeded sample of ``n_validation`` (default 200) of the rest;
  ``test`` = all remaining problems, in file order.
- ``math500``: ``test`` = all 500 MATH-500 problems (comparable with published numbers);
  ``train`` and ``validation`` are drawn the same way from the 4500 MATH test problems outside
  MATH-500.

Extraction: the content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces;
None when the output has no complete box. Scoring: exact string match, else
``math_verify.verify(parse("$\\boxed{gold}$"), parse("$\\boxed{pred}$"))``. A prediction is
correct when it matches the gold answer, any other boxed value of the gold solution (e.g.
"either form is accepted"; the local file's ``all_boxed``), or all of them joined by commas
("the solutions are -2 and 1"). So one of several required answers also counts: this is lenient on
about 10 of the 23 MATH problems with several distinct boxes (none of MATH-500).
"""

from __future__ import annotations

import random
import re
import threading
from abc import abstractmethod
from functools import lru_cache
from typing import Iterator

from .base import BaseTask, Example
from .gsm8k import wrong_number
from .sources import check_source, hub_rows, local_rows

__all__ = ["MATH", "MATH500", "boxed_contents", "last_boxed"]

MAX_SHOT_CHARS = 700
_TRIES = 20
_HENDRYCKS_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


def _box_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every complete top-level box, in order."""
    spans, pos = [], 0
    while found := _BOX.search(text, pos):
        start, depth = found.end(), 1
        for i in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                spans.append((start, i))
                pos = i + 1
                break
        else:
            pos = found.end()
    return spans


def boxed_contents(text: str) -> list[str]:
    """The content of every ``\\boxed{}`` with balanced braces, in order (nested boxes skipped)."""
    return [text[a:b] for a, b in _box_spans(text)]


def last_boxed(text: str) -> str | None:
    """The stripped content of the last complete ``\\boxed{}``, or None."""
    boxes = boxed_contents(text)
    return boxes[-1].strip() if boxes else None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@lru_cache(maxsize=8192)
def _parse_boxed(answer: str) -> tuple:
    from math_verify import parse

    # math-verify's timeouts use signal.alarm, which only works in the main thread.
    return tuple(parse(f"$\\boxed{{{answer}}}$", parsing_timeout=5 if _main_thread() else None))


def _equivalent(gold: str, prediction: str) -> bool:
    from math_verify import verify

    gold_parsed, pred_parsed = _parse_boxed(gold), _parse_boxed(prediction)
    if not gold_parsed or not pred_parsed:
        return False
    timeout = 5 if _main_thread() else None
    return verify(list(gold_parsed), list(pred_parsed), timeout_seconds=timeout)


def _level(value) -> int | None:
    try:
        return int(str(value).split()[-1])
    except (ValueError, IndexError):
        return None


def _math_example(row: dict, ident: str) -> Example:
    solution = row["solution"]
    boxes = row.get("all_boxed") or boxed_contents(solution)
    return Example(
        id=ident,
        question=row["problem"].strip(),
        answer=(row.get("answer") or last_boxed(solution) or "").strip(),
        solution=solution,
        meta={
            "subject": row.get("subject") or row.get("type"),
            "level": _level(row.get("level")),
            "accepted": tuple(dict.fromkeys(b.strip() for b in boxes)),
        },
    )


def _math_rows(source: str, data_dir) -> list[dict]:
    if source == "local":
        return local_rows(data_dir, "math/test_prm800k_style.jsonl")
    rows = []
    for subject in _HENDRYCKS_SUBJECTS:
        rows += hub_rows("EleutherAI/hendrycks_math", subject, "test")
    return rows


class _MathTask(BaseTask):
    """Shared prompt format and scoring of MATH and MATH-500."""

    question_label = "Problem"
    answer_label = "Solution"
    instruction = "Solve the problem step by step. Write the final answer inside \\boxed{}."
    max_new_tokens = 512

    def __init__(
        self,
        *,
        data_dir=None,
        source: str = "local",
        k_shot: int = 5,
        seed: int = 0,
        mode: str | None = None,
        n_fewshot: int = 5,
        n_validation: int = 200,
    ) -> None:
        check_source(source)
        pool, test = self._load(source, data_dir)
        rng = random.Random(f"{self.name}:split:{seed}")
        short = [
            i
            for i, e in enumerate(pool)
            if len(e.question) + len(e.solution or "") <= MAX_SHOT_CHARS
        ]
        if not 0 <= n_fewshot <= len(short):
            raise ValueError(
                f"n_fewshot={n_fewshot} is not possible: {self.name} has {len(short)} problems "
                f"short enough for shots; pass 0 <= n_fewshot <= {len(short)}."
            )
        shots = rng.sample(short, n_fewshot)
        held = set(shots)
        rest = [i for i in range(len(pool)) if i not in held]
        if not 0 <= n_validation <= len(rest):
            raise ValueError(
                f"n_validation={n_validation} is not possible: {len(rest)} {self.name} problems "
                f"are left after the shots; pass 0 <= n_validation <= {len(rest)}."
            )
        validation = set(rng.sample(rest, n_validation))
        splits = {
            "train": [pool[i] for i in shots],
            "validation": [pool[i] for i in sorted(validation)],
            "test": test if test is not None else [pool[i] for i in rest if i not in validation],
        }
        self._answers = sorted({e.answer for s in splits.values() for e in s})
        super().__init__(splits, k_shot=k_shot, seed=seed, mode=mode)

    @abstractmethod
    def _load(self, source: str, data_dir) -> tuple[list[Example], list[Example] | None]:
        """(pool for shots and validation, the test split or None for "the rest of the pool")."""

    def _pool_hint(self) -> str:
        return " (or raise n_fewshot: the few-shot items are held out of the MATH test file)"

    def question_text(self, example: Example) -> str:
        return example.question

    def extract(self, output: str) -> str | None:
        return last_boxed(output)

    def is_correct(self, prediction: str | None, example: Example) -> bool:
        if prediction is None:
            return False
        accepted = tuple(example.meta.get("accepted", ()))
        golds = list(dict.fromkeys((example.answer, *accepted)))
        if len(accepted) > 1:
            golds.append(", ".join(accepted))
        prediction = prediction.strip()
        return prediction in golds or any(_equivalent(g, prediction) for g in golds)

    def corrupt(self, example: Example, rng: random.Random) -> str:
        """The solution with its last boxed answer replaced by a wrong one.

        One number in the answer is shifted by a random nonzero amount ("\\frac{9}{7}" ->
        "\\frac{11}{7}"), keeping the answer's form; an answer without digits is replaced by the
        digit-free answer of another problem. Candidates math-verify finds equivalent are skipped.
        """
        solution = self.target(example)
        spans = _box_spans(solution)
        if not spans:
            raise ValueError(
                f"The solution of {example.id} has no \\boxed{{}} answer to corrupt."
            )
        for wrong in self._wrong_answers(example.answer, rng):
            if not self.is_correct(wrong, example):
                start, end = spans[-1]
                return solution[:start] + wrong + solution[end:]
        raise ValueError(
            f"Found no wrong answer for {example.id}; it cannot form a contrast pair."
        )

    def _wrong_answers(self, answer: str, rng: random.Random) -> Iterator[str]:
        runs = list(re.finditer(r"\d+", answer))
        if not runs:
            pool = [a for a in self._answers if a != answer and not re.search(r"\d", a)]
            yield from rng.sample(pool, min(len(pool), _TRIES))
            return
        for _ in range(_TRIES):
            run = rng.choice(runs)
            yield answer[: run.start()] + wrong_number(run.group(), rng) + answer[run.end() :]


class MATH(_MathTask):
    """The 5000-problem MATH test set, few-shot and validation items held out of it."""

    name = "math"

    def _load(self, source: str, data_dir) -> tuple[list[Example], None]:
        rows = _math_rows(source, data_dir)
        return [_math_example(r, f"math/{r.get('idx', i)}") for i, r in enumerate(rows)], None


class MATH500(_MathTask):
    """MATH-500 (PRM800K's test subset); shots and validation come from the other MATH problems."""

    name = "math500"

    def _load(self, source: str, data_dir) -> tuple[list[Example], list[Example]]:
        if source == "local":
            rows500 = local_rows(data_dir, "math/math500_test.jsonl")
        else:
            rows500 = hub_rows("HuggingFaceH4/MATH-500", None, "test")
        test = [
            _math_example(r, r.get("unique_id") or f"math500/{i}") for i, r in enumerate(rows500)
        ]
        in500 = {e.question for e in test}
        pool = [
            _math_example(r, f"math/{r.get('idx', i)}")
            for i, r in enumerate(_math_rows(source, data_dir))
            if r["problem"].strip() not in in500
        ]
        return pool, test
