"""Input checks, each raising one line that names the problem and the fix: the option checks that run
before any model loads (``check_*``: ValueError), and the argument checks of the Python API (``as_*``:
TypeError for a value of the wrong kind, ValueError for a wrong value; each returns the value in its
canonical form)."""

from __future__ import annotations

import math
from collections.abc import Iterable as IterableABC
from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np
import torch

from xsteer.tasks import TASKS

__all__ = [
    "FLOAT32_MAX", "as_count", "as_int_list", "as_real", "as_texts", "check_choice", "check_device",
    "check_finite", "check_int", "check_lambda_values", "check_task_name",
]

#: The largest float32: a strength beyond it overflows to inf inside the model.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    """``value`` is an int >= ``minimum`` (or None when ``optional``)."""
    if value is None and optional:
        return
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}. Fix: pass {name}={max(minimum, 1)} or more.")


def check_finite(name: str, value: Any, *, positive: bool = False) -> None:
    """``value`` is a finite number (and > 0 when ``positive``)."""
    ok = _is_real(value) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite {'positive ' if positive else ''}number, not {value!r}.")


def as_real(name: str, value: Any, fix: str, *, positive: bool = False) -> float:
    """``value`` as a finite float (within float32's range; > 0 when ``positive``). A string, a bool
    or a tensor of several values is a TypeError; NaN, ±inf or an overflowing value a ValueError."""
    if hasattr(value, "ndim") and getattr(value, "ndim") == 0 and hasattr(value, "item"):
        value = (value.detach() if hasattr(value, "detach") else value).item()  # a 0-d tensor or array
    if not _is_real(value):
        raise TypeError(f"{name} must be a number, not {type(value).__name__} {value!r}. Fix: {fix}")
    value = float(value)
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        raise ValueError(f"{name} must be a finite number (within float32), not {value!r}. Fix: {fix}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, not {value!r}. Fix: {fix}")
    return value


def as_count(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: TypeError for a non-integer, ValueError below the minimum."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__} {value!r}. Fix: pass e.g. {name}={max(minimum, 1)}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}. Fix: pass e.g. {name}={max(minimum, 1)}.")
    return int(value)


def as_int_list(name: str, values: Any, *, distinct: bool = True) -> list[int]:
    """``values`` (a list, tuple, range, array or tensor of integers) as a list of ints: a string or
    a lone number is a TypeError, a repeated entry a ValueError when ``distinct``."""
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, IterableABC) or isinstance(values, dict):
        raise TypeError(f"{name} must be a list of integers such as [1, 2], not {type(values).__name__} {values!r}.")
    values = list(values)
    bad = [v for v in values if not _is_int(v)]
    if bad:
        raise TypeError(f"{name} must hold integers, not {bad[:3]!r}. Fix: pass e.g. {name}=[1, 2].")
    out = [int(v) for v in values]
    if distinct and len(set(out)) != len(out):
        twice = sorted({v for v in out if out.count(v) > 1})
        raise ValueError(f"{name} names {twice} more than once; each would count twice. Fix: list each once.")
    return out


def as_texts(name: str, texts: Any) -> list[str]:
    """``texts`` (a list or tuple of strings) as a list: a lone string (which would be read letter by
    letter) or a non-string entry is a TypeError."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not one string {texts[:40]!r}. Fix: pass [{texts[:20]!r}].")
    if not isinstance(texts, IterableABC) or isinstance(texts, dict):
        raise TypeError(f"{name} must be a list of strings, not {type(texts).__name__}.")
    texts = list(texts)
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must hold strings only, not {type(bad[0]).__name__} {bad[0]!r}.")
    return texts


def check_lambda_values(lambdas: Iterable[Any]) -> None:
    """Every λ is a finite number (NaN and ±inf are refused)."""
    if isinstance(lambdas, (str, bytes)) or not isinstance(lambdas, IterableABC):
        raise ValueError(f"λ values must be a list of numbers such as [0.01, 0.1, 1], not {lambdas!r}.")
    bad = [x for x in lambdas if not _is_real(x) or not math.isfinite(x) or abs(x) > FLOAT32_MAX]
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
    if not isinstance(name, str) or name.strip().lower().replace("_", "-") not in TASKS:
        raise ValueError(f"Unknown task {name!r}; choose one of {sorted(TASKS)}.")


def check_device(device: str | None) -> None:
    """``device`` is None (auto), "cpu", or an accelerator this torch build can reach."""
    if device is None:
        return
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
