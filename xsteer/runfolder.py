"""A run folder as a contract: one writer at a time, a request checked against what the folder holds,
and hashes of what it stores.

``config.json`` is written once, when a run has started successfully (options valid, data read,
models loaded); ``hashes.json`` holds the SHA-256 of the data and of every saved vectors / transfer
file, checked whenever they are reused. A request that differs from the saved config in a field that
changes results is refused with the fields named; ``force=True`` starts the folder over, but only
once the new run has started, so a failed start leaves the folder as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from xsteer.storage import atomic_write_bytes, file_sha256, pair_exists

__all__ = ["RESUMABLE_FIELDS", "RunFolder", "check_out_dir", "config_diff"]

#: Config fields a resume may change: they add controls or change how (not what) is computed.
RESUMABLE_FIELDS = frozenset({"n_random", "child_own", "self_consistency", "batch_size", "device", "fidelity"})

_LOCK = ".xsteer.lock"
_FIX = "Fix: pass a new --out (out_dir=) for this request, or --force (force=True) to start this folder over."


def check_out_dir(path: str | Path) -> Path:
    """Raise a one-line error unless ``path`` is (or can become) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"The run folder {path} is a file, not a folder. Fix: pass a folder path as --out.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, so {path} cannot be a folder. Fix: pass another --out.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{existing} is not writable, so {path} cannot hold a run. Fix: pass a writable --out.")
    return path


def config_diff(saved: Mapping[str, Any], request: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """Fields (outside ``RESUMABLE_FIELDS``) whose requested value differs from the saved one; a field
    missing from an older saved config counts as its default."""
    keys = (set(saved) | set(request)) - RESUMABLE_FIELDS
    missing = object()
    return sorted(
        k for k in keys
        if saved.get(k, defaults.get(k, missing)) != request.get(k, defaults.get(k, missing))
    )


class RunFolder:
    """One run's folder, locked for the lifetime of the object (use as a context manager).

    ``request`` is the run's config as a dict, ``defaults`` the config's default values.
    """

    def __init__(self, path: str | Path, request: Mapping[str, Any], defaults: Mapping[str, Any],
                 *, force: bool = False):
        self.path = check_out_dir(path)
        self.request = dict(request)
        self.force = force
        self._created = not self.path.exists()
        self._started = False
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire()
        try:
            self.saved = self._read_json("config.json")
            if self.saved is not None and not force:
                diff = config_diff(self.saved, self.request, defaults)
                if diff:
                    shown = ", ".join(f"{k}: {self.saved.get(k, defaults.get(k))!r} → {self.request.get(k)!r}" for k in diff)
                    raise ValueError(f"The run folder {self.path} holds a different run ({shown}). {_FIX}")
            self.hashes = (self._read_json("hashes.json") or {}) if self.reusing else {}
        except BaseException:
            self.close(failed=True)
            raise

    # ------------------------------------------------------------------ lifetime

    def _acquire(self):
        fh = open(self.path / _LOCK, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RuntimeError(
                f"The run folder {self.path} is in use by process {holder}. Fix: wait for that run "
                "to finish, or pass another --out."
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        return fh

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def close(self, failed: bool = False) -> None:
        """Release the lock; a folder this object created and never started is removed again."""
        if self._lock is None:
            return
        if failed and self._created and not self._started:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            (self.path / _LOCK).unlink(missing_ok=True)
        self._lock.close()  # closing the descriptor releases the flock (so does any process exit)
        self._lock = None

    @property
    def reusing(self) -> bool:
        """Whether this run continues what the folder holds (a saved config, no ``force``)."""
        return self.saved is not None and not self.force

    def start(self, data_hash: str) -> None:
        """The run has started: with ``force`` clear the folder, then write config.json (once) and
        the data hash; refuse data that differ from what a resumed run used."""
        if self.reusing:
            if self.hashes.get("data", data_hash) != data_hash:
                raise ValueError(
                    f"The task data differ from those the run in {self.path} used (hash "
                    f"{self.hashes['data'][:12]} → {data_hash[:12]}). {_FIX}"
                )
        else:
            for child in self.path.iterdir():
                if child.name != _LOCK:
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            self.saved = self.request
            self.hashes = {}
            self._write_json("config.json", self.request)
        self._started = True
        self.hashes["data"] = data_hash
        self._write_json("hashes.json", self.hashes)

    # ------------------------------------------------------------------ stored artifacts

    def has(self, name: str) -> bool:
        """Whether the pair ``name`` (e.g. "vectors/parent", "transfer") is stored complete and may be reused."""
        return self.reusing and pair_exists(self.path / name) and self._hash_ok(name)

    def _hash_ok(self, name: str) -> bool:
        expected = self.hashes.get(name)
        actual = file_sha256(self._tensor_file(name))
        if expected is not None and expected != actual:
            raise ValueError(
                f"{self._tensor_file(name)} changed since this run saved it (hash {expected[:12]} → "
                f"{actual[:12]}); its results would not match. {_FIX}"
            )
        return True

    def saved_artifact(self, name: str) -> None:
        """Record the hash of the pair ``name`` just written."""
        self.hashes[name] = file_sha256(self._tensor_file(name))
        self._write_json("hashes.json", self.hashes)

    def saved_json(self, name: str) -> dict[str, Any] | None:
        """A JSON artifact (e.g. "schedule.json") this run wrote before, hash-checked; None when the
        folder holds none to reuse."""
        file = self.path / name
        if not self.reusing or not file.exists():
            return None
        expected, actual = self.hashes.get(name), file_sha256(file)
        if expected is not None and expected != actual:
            raise ValueError(
                f"{file} changed since this run saved it (hash {expected[:12]} → {actual[:12]}); its results "
                f"would not match. {_FIX}"
            )
        return self._read_json(name)

    def save_json(self, name: str, data: Mapping[str, Any]) -> None:
        """Write a JSON artifact and record its hash (checked by ``saved_json`` on resume)."""
        self._write_json(name, data)
        self.hashes[name] = file_sha256(self.path / name)
        self._write_json("hashes.json", self.hashes)

    def _tensor_file(self, name: str) -> Path:
        return self.path / f"{name}.safetensors"

    def _read_json(self, name: str) -> dict[str, Any] | None:
        file = self.path / name
        if not file.exists():
            return None
        try:
            data = json.loads(file.read_text())
        except ValueError as err:
            raise ValueError(f"{file} is not valid JSON ({err}). {_FIX}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{file} is not a JSON object. {_FIX}")
        return data

    def _write_json(self, name: str, data: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.path / name, json.dumps(data, indent=1, sort_keys=True).encode())
