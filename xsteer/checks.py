"""Option checks that run before any model loads: each returns nothing or raises one line naming the fix."""

from __future__ import annotations

import math
from typing import Any, Iterable

__all__ = ["check_choice", "check_device", "check_finite", "check_int", "check_lambda_values", "check_task_name"]


def check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    """``value`` is an int >= ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}. Fix: pass {name}={max(minimum, 1)} or more.")


def check_finite(name: str, value: Any, *, positive: bool = False) -> None:
    """``value`` is a finite number (and > 0 when ``positive``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite {'positive ' if positive else ''}number, not {value!r}.")


def check_lambda_values(lambdas: Iterable[Any]) -> None:
    """Every λ is a finite number (NaN and ±inf are refused)."""
    bad = [x for x in lambdas if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)]
    if bad:
        raise ValueError(
            f"λ values must be finite numbers, got {bad}. Fix: pass e.g. --lambdas 0.01,0.1,1 (or 'paper')."
        )


def check_choice(name: str, value: Any, options: Iterable[str]) -> None:
    """``value`` is one of ``options``."""
    options = sorted(options)
    if value not in options:
        raise ValueError(f"Unknown {name} {value!r}; choose one of {options}.")


def check_task_name(name: str) -> None:
    """``name`` is a registered task (the spelling load_task accepts)."""
    from xsteer.tasks import TASKS

    if not isinstance(name, str) or name.strip().lower().replace("_", "-") not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")


def check_device(device: str | None) -> None:
    """``device`` is None (auto), "cpu", or an accelerator this torch build can reach."""
    if device is None:
        return
    import torch

    kind, _, index = str(device).partition(":")
    if kind == "cpu" and not index:
        return
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"--device {device}: this torch build sees no CUDA GPU ({torch.__version__}). "
                "Fix: use --device cpu (or leave it unset), or install a CUDA build of torch."
            )
        if index and (not index.isdigit() or int(index) >= count):
            raise ValueError(f"--device {device}: only cuda:0..cuda:{count - 1} exist. Fix: pick one of those.")
        return
    if kind == "mps" and not index:
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {device}: MPS is not available here. Fix: use --device cpu.")
        return
    raise ValueError(f"Unknown device {device!r}. Fix: use cpu, cuda, cuda:<n> or mps.")
