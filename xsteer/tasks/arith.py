"""``arith``: procedurally generated arithmetic problems (no download).

Problems are one-step sums, differences and small products ("What is 37 + 45?") and one- or
two-step word problems with small numbers, easy enough that a ~100M-parameter instruct model solves
some of them. A seeded stream of distinct questions fills ``train``, then ``validation``, then
``test``, so the splits are disjoint and fixed by the seed.

By default (``mode="loglik"``) each problem is a four-way multiple choice (the answer and three seeded
near-miss numbers), scored by continuation log-likelihood: the cheap offline demo task.
``mode="generate"`` asks for a worked solution ending in the GSM8K answer line.
"""

from __future__ import annotations

import random
from typing import Callable

from .base import Example
from .gsm8k import NumericTask, answer_line, wrong_number

__all__ = ["Arith"]

_NAMES = ("Ava", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Kai", "Lena")
_ITEMS = ("apples", "pencils", "marbles", "stickers", "cookies", "books", "stamps", "shells")

Problem = tuple[str, str, int]  # question, worked steps, answer


def _add(r: random.Random) -> Problem:
    a, b = r.randint(10, 99), r.randint(10, 99)
    return f"What is {a} + {b}?", f"{a} + {b} = {a + b}.", a + b


def _subtract(r: random.Random) -> Problem:
    a = r.randint(20, 99)
    b = r.randint(10, a - 1)
    return f"What is {a} - {b}?", f"{a} - {b} = {a - b}.", a - b


def _multiply(r: random.Random) -> Problem:
    a, b = r.randint(2, 12), r.randint(2, 12)
    return f"What is {a} times {b}?", f"{a} * {b} = {a * b}.", a * b


def _buy_and_give(r: random.Random) -> Problem:
    name, items = r.choice(_NAMES), r.choice(_ITEMS)
    a, b = r.randint(5, 30), r.randint(2, 20)
    c = r.randint(1, a + b - 1)
    question = (
        f"{name} has {a} {items}. {name} buys {b} more and then gives {c} away. "
        f"How many {items} does {name} have now?"
    )
    steps = (
        f"After buying, {name} has {a} + {b} = {a + b} {items}.\n"
        f"After giving {c} away, {name} has {a + b} - {c} = {a + b - c} {items}."
    )
    return question, steps, a + b - c


def _boxes(r: random.Random) -> Problem:
    items = r.choice(_ITEMS)
    a, b = r.randint(2, 12), r.randint(2, 9)
    question = f"A box holds {a} {items}. How many {items} are in {b} boxes?"
    return question, f"{b} boxes hold {b} * {a} = {a * b} {items}.", a * b


def _spend(r: random.Random) -> Problem:
    name = r.choice(_NAMES)
    a = r.randint(10, 99)
    b = r.randint(1, a - 1)
    question = (
        f"{name} had {a} dollars and spent {b} dollars. How many dollars does {name} have left?"
    )
    return question, f"{name} has {a} - {b} = {a - b} dollars left.", a - b


_TEMPLATES: tuple[Callable[[random.Random], Problem], ...] = (
    _add,
    _subtract,
    _multiply,
    _buy_and_give,
    _boxes,
    _spend,
)


class Arith(NumericTask):
    """Seeded arithmetic word problems with GSM8K-style answers."""

    name = "arith"
    uses_data = False
    max_new_tokens = 128
    modes = ("loglik", "generate")

    def __init__(
        self,
        *,
        k_shot: int = 5,
        seed: int = 0,
        mode: str | None = None,
        n_train: int = 1000,
        n_validation: int = 200,
        n_test: int = 500,
    ) -> None:
        sizes = {"train": n_train, "validation": n_validation, "test": n_test}
        if min(sizes.values()) < 0:
            raise ValueError(f"arith split sizes must be >= 0, got {sizes}.")
        total = sum(sizes.values())
        rng = random.Random(f"arith:problems:{seed}")
        seen: set[str] = set()
        examples: list[Example] = []
        for _ in range(50 * total):
            if len(examples) == total:
                break
            question, steps, answer = rng.choice(_TEMPLATES)(rng)
            if question in seen:
                continue
            seen.add(question)
            examples.append(
                Example(
                    id=f"arith/{len(examples)}",
                    question=question,
                    answer=str(answer),
                    solution=f"{steps}\n{answer_line(str(answer))}",
                )
            )
        if len(examples) < total:
            raise ValueError(
                f"Could not generate {total} distinct arith problems; ask for smaller splits."
            )
        if (mode or self.modes[0]) == "loglik":
            examples = [_as_choice(ex, rng) for ex in examples]
        splits, start = {}, 0
        for split, size in sizes.items():
            splits[split] = examples[start : start + size]
            start += size
        super().__init__(splits, k_shot=k_shot, seed=seed, mode=mode)
        if self.mode == "loglik":
            self.instruction, self.max_new_tokens = "", 0

    def question_text(self, example: Example) -> str:
        return example.question

    def target(self, example: Example) -> str:
        if self.mode == "loglik":
            return dict(example.choices)[example.answer]
        return super().target(example)

    def corrupt(self, example: Example, rng: random.Random) -> str:
        if self.mode == "loglik":
            return rng.choice([text for label, text in example.choices if label != example.answer])
        return super().corrupt(example, rng)

    def is_correct(self, prediction: str | None, example: Example) -> bool:
        if self.mode == "loglik":
            return prediction == example.answer
        return super().is_correct(prediction, example)


def _as_choice(example: Example, rng: random.Random) -> Example:
    """The example as a four-way choice: its answer and three distinct wrong numbers, shuffled."""
    options = {example.answer}
    while len(options) < 4:
        options.add(wrong_number(example.answer, rng))
    texts = sorted(options)
    rng.shuffle(texts)
    labels = "ABCD"
    return Example(
        id=example.id,
        question=example.question,
        answer=labels[texts.index(example.answer)],
        solution=example.solution,
        choices=tuple(zip(labels, texts)),
        meta={"number": example.answer},
    )
