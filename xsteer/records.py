"""Resumable per-(example, condition) records in JSON Lines."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Mapping

__all__ = ["Record", "RecordStore", "prompt_hash"]


def prompt_hash(text: str) -> str:
    """Short content hash of a prompt."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Record:
    """One evaluated (example, condition, λ, sample): raw output, extracted answer, gold, correctness."""

    split: str
    condition: str
    example_id: str
    lam: float
    prompt_hash: str
    output: str
    prediction: str | None
    gold: str
    correct: bool
    sample: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, float, int]:
        return (self.split, self.condition, self.example_id, float(self.lam), self.sample)


class RecordStore:
    """Records kept in memory and, when ``path`` is given, appended to a JSONL file as they come.

    Opening an existing file resumes: its records are loaded and a line cut short by a crash is dropped.
    ``fingerprint`` (e.g. a hash of the run's config) is kept beside the file in ``<file>.key``; a
    store opened with a different fingerprint refuses, so records of one setting never serve another.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, fingerprint: str | None = None):
        self.path = Path(path) if path is not None else None
        self._records: dict[tuple, Record] = {}
        if self.path is not None and fingerprint is not None:
            self._check_fingerprint(fingerprint)
        if self.path is not None and self.path.exists():
            self._load()

    def _check_fingerprint(self, fingerprint: str) -> None:
        key_file = self.path.with_name(self.path.name + ".key")
        if key_file.exists():
            saved = key_file.read_text().strip()
            if saved != fingerprint:
                raise ValueError(
                    f"The records in {self.path} were made with another setting (key {saved[:12]}, "
                    f"now {fingerprint[:12]}). Fix: use another records file / --out, or delete this one."
                )
        else:  # a new file, or one from before keys were kept: it takes this key
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(fingerprint + "\n")

    def check_prompts(self, split: str, expected: Mapping[str, tuple[Collection[str], str]]) -> None:
        """Refuse stored records of ``split`` whose prompt hash or gold differ from today's items:
        ``expected`` maps example id → (acceptable prompt hashes, gold answer)."""
        stale = [
            r for r in self._records.values()
            if r.split == split and r.example_id in expected
            and (r.prompt_hash not in expected[r.example_id][0] or r.gold != expected[r.example_id][1])
        ]
        if stale:
            r = stale[0]
            raise ValueError(
                f"{len(stale)} stored records of {split!r} in {self.path} were made from other prompts "
                f"or gold answers than today's items (e.g. item {r.example_id!r}, condition "
                f"{r.condition!r}). Fix: start over with --force (or a new --out)."
            )

    def _load(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # partial last line from an interrupted write
            raw = raw[: raw.rfind(b"\n") + 1]
            self.path.write_bytes(raw)
        for line in raw.decode().splitlines():
            if line.strip():
                rec = Record(**json.loads(line))
                self._records[rec.key] = rec

    def __contains__(self, key: tuple) -> bool:
        return key in self._records

    def __getitem__(self, key: tuple) -> Record:
        return self._records[key]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records.values())

    def add(self, records: Iterable[Record]) -> None:
        """Keep records and append them to the file, flushed to disk."""
        new = [r for r in records if r.key not in self._records]
        for r in new:
            self._records[r.key] = r
        if self.path is None or not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in new))
            fh.flush()
            os.fsync(fh.fileno())
