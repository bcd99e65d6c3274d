"""Paired files without pickle: tensors in ``<stem>.safetensors``, everything else in ``<stem>.json``.

Both files are written atomically (temporary file + rename), tensors first and the sidecar last; the
sidecar carries the SHA-256 of the tensor file. A pair is complete exactly when its sidecar exists and
the hash matches, so a kill between the two writes leaves an incomplete pair that ``pair_exists``
reports as absent (and a resumed run recomputes it).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_write_bytes", "file_sha256", "pair_exists", "read_pair", "write_pair"]

_SUFFIXES = (".safetensors", ".json")
_HASH_KEY = "tensors_sha256"


def _files(path: str | Path) -> tuple[Path, Path]:
    """The ``.safetensors`` and ``.json`` files of ``path`` (given with or without either suffix)."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in _SUFFIXES else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_pair(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write both files atomically, the sidecar (with the tensor file's hash) last; return the
    ``.safetensors`` path."""
    from safetensors.torch import save

    tensor_file, json_file = _files(path)
    blob = save({k: v.contiguous() for k, v in tensors.items()})
    atomic_write_bytes(tensor_file, blob)
    sidecar = {**meta, _HASH_KEY: hashlib.sha256(blob).hexdigest()}
    atomic_write_bytes(json_file, json.dumps(sidecar, indent=2, sort_keys=True).encode())
    return tensor_file


def pair_exists(path: str | Path) -> bool:
    """Whether a complete pair is stored at ``path`` (sidecar present and matching the tensors)."""
    tensor_file, json_file = _files(path)
    if not (tensor_file.is_file() and json_file.is_file()):
        return False
    try:
        meta = json.loads(json_file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get(_HASH_KEY, file_sha256(tensor_file)) == file_sha256(tensor_file)


def read_pair(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read both files; ``what`` names the object and its writer for the errors.

    A missing file, a sidecar that is not a JSON object, a tensor file that does not match the
    sidecar's hash, or one that safetensors cannot parse raises a one-line error naming the file.
    """
    from safetensors.torch import load_file

    tensor_file, json_file = _files(path)
    for file in (tensor_file, json_file):
        if not file.is_file():
            raise FileNotFoundError(
                f"{file} does not exist; {what} is stored as {tensor_file.name} + {json_file.name}. "
                "Check the path, or re-create the pair."
            )
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{json_file} is not valid JSON ({err}); re-create {what}.") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{json_file} holds a JSON {type(meta).__name__}, not an object; re-create {what}.")
    expected = meta.pop(_HASH_KEY, None)
    if expected is not None and expected != file_sha256(tensor_file):
        raise ValueError(
            f"{tensor_file} does not match its sidecar {json_file.name} (truncated or replaced "
            f"after saving); re-create {what}."
        )
    try:
        tensors = load_file(str(tensor_file))
    except Exception as err:  # safetensors raises its own SafetensorError for corrupt files
        raise ValueError(
            f"{tensor_file} is not a readable safetensors file ({err}); re-create {what}."
        ) from None
    return tensors, meta
