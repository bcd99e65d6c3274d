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


def data_root(data_dir: str | os.PathLike | None) -> Path:
    """The local benchmark data folder: ``data_dir`` if given, else ``$XSTEER_DATA_DIR``."""
    if data_dir is not None:
        raw, origin = str(data_dir), "data_dir="
    else:
        raw, origin = os.environ.get(ENV_VAR, ""), f"${ENV_VAR}"
    if not raw:
        raise FileNotFoundError(
            f"No benchmark data folder: data_dir is None and ${ENV_VAR} is not set. {_HOW} "
            "(a folder holding gsm8k/, arc/, math/), or pass source='hub'."
        )
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"Benchmark data folder {root} (from {origin}) does not exist. {_HOW} pointing at the "
            "folder that holds gsm8k/, arc/, math/, or pass source='hub'."
        )
    return root


def local_rows(data_dir: str | os.PathLike | None, relpath: str) -> list[dict[str, Any]]:
    """The records of one JSONL file of the local data folder."""
    root = data_root(data_dir)
    path = root / relpath
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the benchmark data folder {root} has no {relpath}. {_HOW} pointing "
            "at a folder with the gsm8k/, arc/, math/ layout, or pass source='hub'."
        )
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


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
