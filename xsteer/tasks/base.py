"""The task contract (``Example``, ``Prompt``, ``Task``) and ``BaseTask``, which holds what every
benchmark shares: seeded splits, the k-shot block, plain and chat-template prompts, contrast pairs.

Prompt layout (plain format; ``Q``/``A`` are the task's labels, e.g. "Question"/"Answer")::

    <instruction>\\n\\n                      <- omitted when the task has none
    Q: <shot 1>\\nA: <shot 1 target>\\n\\n   <- k shots, drawn once per task instance from "train"
    ...
    Q: <question>\\nA:                     <- Prompt.suffix; everything above is Prompt.prefix

With a tokenizer that has a chat template, the instruction opens the first user turn, each shot is a
user/assistant pair, and the question is the last user turn (rendered with
``add_generation_prompt=True``); ``Prompt.prefix`` is the rendered text up to the question.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Mapping, Protocol, runtime_checkable

__all__ = ["BaseTask", "Example", "Mode", "Prompt", "SplitName", "Task"]

Mode = Literal["generate", "loglik"]
SplitName = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Example:
    """One benchmark item with its gold answer."""

    id: str
    question: str
    answer: str
    """Gold final answer: number string (GSM8K, arith), choice label (ARC), boxed content (MATH)."""
    solution: str | None = None
    """Worked solution in the task's answer format (few-shot targets and contrast pairs)."""
    choices: tuple[tuple[str, str], ...] | None = None
    """(label, text) per choice, for multiple choice."""
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Prompt:
    """A prompt split into the part shared by every example of a task instance and the rest."""

    prefix: str
    suffix: str
    chat: bool = False
    """True when rendered by a chat template: the text already holds the template's special tokens
    (tokenize it with ``add_special_tokens=False``)."""

    @property
    def text(self) -> str:
        """The full prompt, ``prefix + suffix``."""
        return self.prefix + self.suffix


@runtime_checkable
class Task(Protocol):
    """What the rest of xsteer needs from a benchmark."""

    name: str
    mode: Mode
    max_new_tokens: int

    def split(self, name: SplitName) -> list[Example]: ...
    def prompt(self, example: Example, tokenizer=None) -> Prompt: ...
    def continuations(self, example: Example) -> list[str]: ...
    def extract(self, output: str) -> str | None: ...
    def is_correct(self, prediction: str | None, example: Example) -> bool: ...
    def stop_strings(self) -> list[str]: ...
    def pair_texts(self, example: Example, rng: random.Random) -> tuple[str, str]: ...


class BaseTask(ABC):
    """Shared machinery of the benchmarks; subclasses build the splits and define the answer format.

    Subclasses set ``name``, ``instruction``, ``max_new_tokens`` and implement ``question_text``,
    ``extract``, ``is_correct`` and ``corrupt``; ``target`` defaults to ``example.solution``.
    """

    name: ClassVar[str]
    modes: ClassVar[tuple[str, ...]] = ("generate",)
    uses_data: ClassVar[bool] = True
    question_label: ClassVar[str] = "Question"
    answer_label: ClassVar[str] = "Answer"
    instruction: str = ""
    max_new_tokens: int

    def __init__(
        self, splits: Mapping[str, list[Example]], *, k_shot: int, seed: int, mode: str | None
    ) -> None:
        if mode is None:
            mode = self.modes[0]
        if mode not in self.modes:
            raise ValueError(
                f"{self.name} does not support mode={mode!r}; use one of {self.modes}."
            )
        self.mode: Mode = mode  # type: ignore[assignment]
        self.seed = seed
        self.k_shot = k_shot
        self._splits = {s: list(splits.get(s, [])) for s in SPLITS}
        train = self._splits["train"]
        if k_shot < 0 or k_shot > len(train):
            raise ValueError(
                f"k_shot={k_shot} is not possible for {self.name}: its training split (the "
                f"few-shot pool) has {len(train)} examples. Pass 0 <= k_shot <= {len(train)}"
                + self._pool_hint()
                + "."
            )
        rng = random.Random(f"{self.name}:fewshot:{seed}")
        self.shots: list[Example] = rng.sample(train, k_shot)
        self._chat_prefixes: dict[tuple[int, str], str] = {}

    def _pool_hint(self) -> str:
        """Extra advice for a k_shot error (e.g. the option that enlarges the few-shot pool)."""
        return ""

    # ------------------------------------------------------------------ splits

    def split(self, name: SplitName) -> list[Example]:
        """The examples of one split, in a fixed order given the seed."""
        if name not in SPLITS:
            raise ValueError(f"Unknown split {name!r}; use one of {SPLITS}.")
        examples = self._splits[name]
        if not examples:
            raise ValueError(
                f"The {name!r} split of {self.name} is empty; check the data folder and the "
                "split-size options passed to load_task."
            )
        return list(examples)

    # ------------------------------------------------------------------ formatting

    @abstractmethod
    def question_text(self, example: Example) -> str:
        """The example as shown to the model (question, and choices where the mode lists them)."""

    def target(self, example: Example) -> str:
        """The gold reply to ``example`` in the task's answer format (shots, contrast pairs)."""
        if example.solution is None:
            raise ValueError(f"Example {example.id} of {self.name} has no worked solution.")
        return example.solution

    def _plain_question(self, example: Example) -> str:
        return f"{self.question_label}: {self.question_text(example)}\n{self.answer_label}:"

    def _plain_prefix(self) -> str:
        head = f"{self.instruction}\n\n" if self.instruction else ""
        return head + "".join(
            f"{self._plain_question(s)} {self.target(s)}\n\n" for s in self.shots
        )

    def prompt(self, example: Example, tokenizer=None) -> Prompt:
        """The prompt for ``example``: chat-templated when ``tokenizer`` has a chat template."""
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return self._chat_prompt(example, tokenizer)
        return Prompt(self._plain_prefix(), self._plain_question(example))

    def _chat_prompt(self, example: Example, tokenizer) -> Prompt:
        head = f"{self.instruction}\n\n" if self.instruction else ""
        messages: list[dict[str, str]] = []
        for shot in self.shots:
            messages.append({"role": "user", "content": head + self.question_text(shot)})
            messages.append({"role": "assistant", "content": self.target(shot)})
            head = ""
        question = self.question_text(example)
        messages.append({"role": "user", "content": head + question})
        full = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        cut = full.rfind(question)
        if cut < 0:
            raise ValueError(
                f"The chat template of {type(tokenizer).__name__} altered the question text of "
                f"{example.id}, so the prompt cannot be split into a shared prefix and a suffix; "
                "use a template that inserts message content verbatim, or pass tokenizer=None."
            )
        prefix, suffix = full[:cut], full[cut:]
        known = self._chat_prefixes.setdefault((id(tokenizer), tokenizer.chat_template), prefix)
        if known != prefix:
            raise ValueError(
                f"The chat template of {type(tokenizer).__name__} renders the shared part of the "
                f"prompt differently for {example.id}; its prefix would not be common to all "
                "examples. Use a template that does not depend on the last message, or "
                "tokenizer=None."
            )
        return Prompt(prefix, suffix, chat=True)

    def continuations(self, example: Example) -> list[str]:
        """Log-likelihood mode: one continuation per choice, in choice order."""
        if not example.choices:
            raise ValueError(
                f"Example {example.id} of {self.name} has no choices; continuations() is for "
                "multiple-choice (loglik) tasks."
            )
        return [f" {text}" for _, text in example.choices]

    def stop_strings(self) -> list[str]:
        """Strings after which generation can stop: the start of a new question block."""
        return [f"\n{self.question_label}:"]

    # ------------------------------------------------------------------ scoring and pairs

    @abstractmethod
    def extract(self, output: str) -> str | None:
        """The answer in a model's output, or None when it has none."""

    @abstractmethod
    def is_correct(self, prediction: str | None, example: Example) -> bool:
        """Whether an extracted prediction matches the gold answer of ``example``."""

    @abstractmethod
    def corrupt(self, example: Example, rng: random.Random) -> str:
        """A reply like ``target(example)`` whose final answer is wrong."""

    def pair_texts(self, example: Example, rng: random.Random) -> tuple[str, str]:
        """Contrast pair: (question + gold reply, same question + reply with a wrong answer)."""
        question = self._plain_question(example)
        return f"{question} {self.target(example)}", f"{question} {self.corrupt(example, rng)}"
