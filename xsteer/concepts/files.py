"""User concepts from JSONL files: one ``{"positive": ..., "negative": ...}`` object per line."""

from __future__ import annotations

import json
from pathlib import Path

from xsteer.contrast import ContrastPair

__all__ = ["read_pairs_jsonl"]


def read_pairs_jsonl(path: str | Path) -> list[ContrastPair]:
    """Pairs from a JSONL file; blank lines are skipped, extra keys go to ``meta``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No concept file at {path}; give a JSONL file of {{'positive', 'negative'}} lines.")
    pairs = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg}); write one JSON object per line.") from None
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object with 'positive' and 'negative', got {type(row).__name__}.")
            missing = [k for k in ("positive", "negative") if not isinstance(row.get(k), str)]
            if missing:
                raise ValueError(f"{where}: missing or non-string {missing}; each line needs string 'positive' and 'negative'.")
            meta = {k: v for k, v in row.items() if k not in ("positive", "negative")}
            try:
                pairs.append(ContrastPair(row["positive"], row["negative"], meta))
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
    return pairs
