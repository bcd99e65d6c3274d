"""Paired files without pickle: tensors in ``<stem>.safetensors``, everything else in ``<stem>.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["read_pair", "write_pair"]

_SUFFIXES = (".safetensors", ".json")


def _files(path: str | Path) -> tuple[Path, Path]:
    """The ``.safetensors`` and ``.json`` files of ``path`` (given with or without either suffix)."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in _SUFFIXES else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def write_pair(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write both files; return the ``.safetensors`` path."""
    from safetensors.torch import save_file

    tensor_file, json_file = _files(path)
    tensor_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tensor_file))
    json_file.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return tensor_file


def read_pair(path: str | Path, what: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read both files; ``what`` names the object and its writer for the missing-file error."""
    from safetensors.torch import load_file

    tensor_file, json_file = _files(path)
    for file in (tensor_file, json_file):
        if not file.is_file():
            raise FileNotFoundError(
                f"{file} does not exist; {what} is stored as {tensor_file.name} + {json_file.name}. "
                "Check the path."
            )
    return load_file(str(tensor_file)), json.loads(json_file.read_text())
