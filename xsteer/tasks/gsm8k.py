"""Numeric-answer tasks (final line ``#### The final answer is: <number>``) and GSM8K.

Answer extraction (``extract_number``), in order:

1. the first ``The final answer is`` or ``####`` marker (case-insensitive): the first number on the
   rest of that line;
2. otherwise (no marker, or no number after it on its line) the last number anywhere in the output.

Numbers may carry a sign, a ``$``, thousands commas and decimals; they are normalised by dropping
``$`` and commas and writing integral values without decimals ("$1,000." -> "1000", "18.0" -> "18").

GSM8K splits: ``test`` is the official test file; ``validation`` is ``n_validation`` (default 200)
items drawn from the official train file with the task's seed; ``train`` is the rest of it.
"""

from __future__ import annotations

import random
import re
from decimal import Decimal, InvalidOperation

from .base import BaseTask, Example
from .sources import check_source, hub_rows, local_rows

__all__ = [
    "GSM8K",
    "NumericTask",
    "answer_line",
    "extract_number",
    "normalize_number",
    "wrong_number",
]

_MARKER = re.compile(r"the final answer is|####", re.IGNORECASE)
_NUMBER = re.compile(r"(?:(?<![\w.])-)?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_CALCULATOR = re.compile(r"<<[^>]*>>")


def normalize_number(text: str) -> str:
    """Canonical string of a number ("$1,000." -> "1000", "18.0" -> "18", "-2.50" -> "-2.5")."""
    cleaned = text.replace("\u2212", "-").replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as err:
        raise ValueError(f"{text!r} is not a number.") from err
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number.")
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def extract_number(output: str) -> str | None:
    """The numeric answer of an output (see the module docstring for the rules), or None."""
    text = output.replace("\u2212", "-")
    marker = _MARKER.search(text)
    if marker:
        found = _NUMBER.search(text[marker.end() :].split("\n", 1)[0])
        if found:
            return normalize_number(found.group())
    numbers = _NUMBER.findall(text)
    return normalize_number(numbers[-1]) if numbers else None


def answer_line(number: str) -> str:
    """The final line of a numeric-task reply."""
    return f"#### The final answer is: {number}"


def wrong_number(gold: str, rng: random.Random) -> str:
    """A number different from ``gold``, shifted by a random amount; it keeps gold's sign
    (a positive gold stays positive, zero becomes positive)."""
    value = Decimal(gold)
    delta = rng.randint(1, max(3, int(abs(value)) // 4)) * rng.choice((-1, 1))
    if value == 0 or (value + delta) * value <= 0:
        delta = abs(delta) if value >= 0 else -abs(delta)
    return normalize_number(str(value + delta))


class NumericTask(BaseTask):
    """A generate-mode task whose reply ends with ``#### The final answer is: <number>``."""

    instruction = (
        "Solve the problem step by step. End your reply with a line of the form\n"
        "#### The final answer is: <number>"
    )

    def question_text(self, example: Example) -> str:
        return example.question

    def extract(self, output: str) -> str | None:
        return extract_number(output)

    def is_correct(self, prediction: str | None, example: Example) -> bool:
        if prediction is None:
            return False
        try:
            return normalize_number(prediction) == normalize_number(example.answer)
        except ValueError:
            return False

    def corrupt(self, example: Example, rng: random.Random) -> str:
        """The solution with a wrong final answer, also swapped in for gold in its last step."""
        wrong = wrong_number(example.answer, rng)
        steps = self.target(example).split("\n")[:-1]
        if steps:
            gold = re.compile(rf"(?<![\d.]){re.escape(example.answer)}(?!\d|\.\d)")
            steps[-1] = gold.sub(wrong, steps[-1])
        return "\n".join([*steps, answer_line(wrong)])


def _gsm8k_example(row: dict, ident: str) -> Example:
    body, _, final = row["answer"].rpartition("####")
    answer = normalize_number(final)
    solution = _CALCULATOR.sub("", body.strip()) + "\n" + answer_line(answer)
    return Example(id=ident, question=row["question"].strip(), answer=answer, solution=solution)


class GSM8K(NumericTask):
    """Grade-school math word problems (Cobbe et al. 2021)."""

    name = "gsm8k"
    max_new_tokens = 256

    def __init__(
        self,
        *,
        data_dir=None,
        source: str = "local",
        k_shot: int = 5,
        seed: int = 0,
        mode: str | None = None,
        n_validation: int = 200,
    ) -> None:
        check_source(source)
        rows = {}
        for split in ("train", "test"):
            if source == "local":
                rows[split] = local_rows(data_dir, f"gsm8k/{split}.jsonl")
            else:
                rows[split] = hub_rows("openai/gsm8k", "main", split)
        train = [_gsm8k_example(r, f"gsm8k/train/{i}") for i, r in enumerate(rows["train"])]
        test = [_gsm8k_example(r, f"gsm8k/test/{i}") for i, r in enumerate(rows["test"])]
        if not 0 <= n_validation <= len(train):
            raise ValueError(
                f"n_validation={n_validation} is not possible: GSM8K train has {len(train)} items; "
                f"pass 0 <= n_validation <= {len(train)}."
            )
        rng = random.Random(f"gsm8k:validation:{seed}")
        held = set(rng.sample(range(len(train)), n_validation))
        splits = {
            "train": [e for i, e in enumerate(train) if i not in held],
            "validation": [train[i] for i in sorted(held)],
            "test": test,
        }
        super().__init__(splits, k_shot=k_shot, seed=seed, mode=mode)
