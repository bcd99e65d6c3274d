"""Where benchmark records come from: a local data folder of JSONL files, or the Hugging Face hub.

The local folder has the layout of the shared benchmark data: ``gsm8k/{train,test}.jsonl``,
``arc/ARC-{Challenge,Easy}-{Train,Dev,Test}.jsonl``, ``math/test_prm800k_style.jsonl`` and
``math/math500_test.jsonl``. It is given by ``data_dir=`` or the environment variable
``XSTEER_DATA_DIR`` (the CLI's ``--data-dir``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

__all__ = ["ENV_VAR", "Source", "check_source", "data_root", "hub_rows", "local_rows"]

ENV_VAR = "XSTEER_DATA_DIR"
Source = Literal["local", "hub"]
_HOW = f"Pass data_dir=... to load_task, set ${ENV_VAR}, or use --data-dir on the command line"
_HUB = "or pass source='hub' (--source hub on the command line) to download it"


def data_root(data_dir: str | os.PathLike | None) -> Path:
    """The local benchmark data folder: ``data_dir`` if given, else ``$XSTEER_DATA_DIR``."""
    if data_dir is not None:
        raw, origin = str(data_dir), "data_dir="
    else:
        raw, origin = os.environ.get(ENV_VAR, ""), f"${ENV_VAR}"
    if not raw:
        raise FileNotFoundError(
            f"No benchmark data folder: data_dir is None and ${ENV_VAR} is not set. {_HOW} "
            f"(a folder holding gsm8k/, arc/, math/), {_HUB}."
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Benchmark data folder {root} (from {origin}) does not exist. {_HOW} pointing at the "
            f"folder that holds gsm8k/, arc/, math/, {_HUB}."
        )
    return root


def local_rows(data_dir: str | os.PathLike | None, relpath: str) -> list[dict[str, Any]]:
    """The records of one JSONL file of the local data folder."""
    root = data_root(data_dir)
    path = root / relpath
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the benchmark data folder {root} has no {relpath}. {_HOW} pointing "
            f"at a folder with the gsm8k/, arc/, math/ layout, {_HUB}."
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start}). Fix: re-save the "
            "file as UTF-8 JSON Lines."
        ) from None
    rows = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}:{lineno}: not valid JSON ({err.msg}, column {err.colno}). Fix that line: "
                "each line must be one JSON object."
            ) from None
        problem = _row_problem(relpath, row)
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}. Fix that line or remove it.")
        rows.append(row)
    return rows


def _row_problem(relpath: str, row: Any) -> str | None:
    """What is wrong with one row of a local data file (``None`` when it has what its task reads)."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    family = relpath.split("/", 1)[0]
    need = {"gsm8k": ("question", "answer"), "arc": ("id", "question", "answerKey"),
            "math": ("problem", "solution")}.get(family, ())
    missing = [k for k in need if k not in row]
    if missing:
        return f"the row has no field {missing[0]!r} (a {family} row needs {list(need)})"
    if family == "arc" and isinstance(row["question"], dict):
        try:
            labels = [c["label"] for c in row["question"]["choices"]]
            [c["text"] for c in row["question"]["choices"]]
            row["question"]["stem"]
        except (KeyError, TypeError):
            return "'question' needs 'stem' and 'choices' (a list of {'text', 'label'})"
        if row["answerKey"] not in labels:
            return f"answerKey {row['answerKey']!r} is not one of the choice labels {labels}"
    return None


def hub_rows(path: str, config: str | None, split: str) -> list[dict[str, Any]]:
    """The records of one split of a Hugging Face hub dataset (needs network or the HF cache)."""
    try:
        from datasets import load_dataset
    except ImportError as err:  # pragma: no cover - datasets is a declared dependency
        raise ModuleNotFoundError(
            "source='hub' needs the 'datasets' package. Fix: pip install datasets, or use "
            "source='local' with a data folder."
        ) from err
    return [dict(row) for row in load_dataset(path, config, split=split)]


def check_source(source: str) -> None:
    """Reject an unknown ``source``."""
    if source not in ("local", "hub"):
        raise ValueError(f"Unknown source {source!r}; use 'local' (a data folder) or 'hub'.")
