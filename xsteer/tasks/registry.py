"""The task registry and ``load_task``."""

from __future__ import annotations

import os

from .arc import ARCChallenge, ARCEasy
from .arith import Arith
from .base import BaseTask
from .competition_math import MATH, MATH500
from .gsm8k import GSM8K
from .sources import Source

__all__ = ["TASKS", "load_task"]

TASKS: dict[str, type[BaseTask]] = {
    cls.name: cls for cls in (GSM8K, MATH, MATH500, ARCChallenge, ARCEasy, Arith)
}


def load_task(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    source: Source = "local",
    k_shot: int = 5,
    seed: int = 0,
    mode: str | None = None,
    **kw,
) -> BaseTask:
    """Build a registered task by name.

    ``data_dir`` (default ``$XSTEER_DATA_DIR``) is the local data folder used when
    ``source="local"``; ``source="hub"`` downloads through ``datasets``. ``k_shot`` shots are drawn
    with ``seed`` from the task's training split; ``mode`` picks "generate" or "loglik" where the
    task offers both. Extra keywords go to the task (e.g. ``n_validation``, ``n_fewshot``,
    ``n_train``/``n_test`` for arith). The procedural ``arith`` ignores ``data_dir`` and ``source``.
    """
    key = name.strip().lower().replace("_", "-")
    if key not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")
    cls = TASKS[key]
    if cls.uses_data:
        kw = {"data_dir": data_dir, "source": source, **kw}
    return cls(k_shot=k_shot, seed=seed, mode=mode, **kw)
