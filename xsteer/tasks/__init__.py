"""Benchmarks as ``Task`` objects: splits, prompts, answer extraction, scoring, contrast pairs.

``load_task(name)`` builds one of ``TASKS``: "gsm8k", "math", "math500", "arc-challenge",
"arc-easy" (local JSONL data folder or the Hugging Face hub) and the procedural "arith".
"""

from .arc import ARC, ARCChallenge, ARCEasy
from .arith import Arith
from .base import BaseTask, Example, Mode, Prompt, SplitName, Task
from .competition_math import MATH, MATH500
from .gsm8k import GSM8K, NumericTask
from .registry import TASKS, load_task
from .sources import ENV_VAR

__all__ = [
    "ARC",
    "ARCChallenge",
    "ARCEasy",
    "Arith",
    "BaseTask",
    "ENV_VAR",
    "Example",
    "GSM8K",
    "MATH",
    "MATH500",
    "Mode",
    "NumericTask",
    "Prompt",
    "SplitName",
    "TASKS",
    "Task",
    "load_task",
]
