"""A fault injector for recovery tests: kill the worker process once, in the middle of a cell.

``XSTEER_GRID_FAULT="<flag file>:<cell name>:<n>"`` (read by the grid's driver and handed to the cell
task) makes the process running that cell ``os._exit(1)`` right after its ``n``-th batch of records
reaches disk, unless the flag file exists; the flag file is created first, so the fault fires once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from xsteer.records import RecordStore

__all__ = ["ENV", "kill_after_batches"]

ENV = "XSTEER_GRID_FAULT"


@contextlib.contextmanager
def kill_after_batches(fault: str | None, cell_name: str) -> Iterator[None]:
    """Arm the fault described by ``fault`` (the env var's value) while a cell runs."""
    if not fault:
        yield
        return
    flag, name, n = fault.rsplit(":", 2)
    if name != cell_name or Path(flag).exists():
        yield
        return
    original = RecordStore.add
    calls = {"n": 0}

    def add(self, records):
        original(self, records)
        calls["n"] += 1
        if calls["n"] >= int(n):
            Path(flag).touch()
            os._exit(1)

    RecordStore.add = add
    try:
        yield
    finally:
        RecordStore.add = original
