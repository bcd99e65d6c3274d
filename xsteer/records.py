"""Resumable per-(example, condition) records in JSON Lines."""

from __future__ import annotations

import hashlib
import json
import math
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

    def __post_init__(self) -> None:
        if isinstance(self.lam, bool) or not isinstance(self.lam, (int, float)) or not math.isfinite(self.lam):
            raise ValueError(f"A record's λ must be a finite number, not {self.lam!r}; it keys the record.")

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
        if self.path is not None and self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; a RecordStore needs a file path such as {self.path / 'records.jsonl'}.")
        self._records: dict[tuple, Record] = {}
        self._settings: dict[str, str] = {}
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

    def claim(self, condition: str, setting: str) -> None:
        """Bind ``condition`` to ``setting`` (what its records answer: the model, the vectors and how
        they steer, the scoring) for the life of this store; another setting under the same name is
        refused, since the records kept for the first would be returned for it."""
        held = self._settings.setdefault(condition, setting)
        if held != setting:
            raise ValueError(
                f"Condition {condition!r} already holds records of another setting in this store (other "
                "vectors, model, scale, operator, positions, schedule or scoring); reusing its name would "
                "return those records. Fix: give this sweep its own condition name, or use a new RecordStore."
            )

    def _load(self) -> None:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # partial last line from an interrupted write
            raw = raw[: raw.rfind(b"\n") + 1]
            self.path.write_bytes(raw)
        for number, line in enumerate(raw.decode(errors="replace").splitlines(), 1):
            if line.strip():
                try:
                    rec = Record(**json.loads(line))
                except (ValueError, TypeError) as err:
                    raise ValueError(
                        f"{self.path}:{number} is not a record ({type(err).__name__}: {str(err)[:80]}); the file "
                        "is not an xsteer records file or was edited. Fix: use another records file, or delete it."
                    ) from None
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
        if isinstance(records, Record):
            raise TypeError("RecordStore.add takes a list of records; pass [record].")
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
