"""Shared fixtures: the benchmark data folder (a path setting) and cached models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Benchmark data: $XSTEER_DATA_DIR, else ../shared/data beside the repository."""
    path = Path(os.environ.get("XSTEER_DATA_DIR") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path}; set XSTEER_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def smollm2():
    from xsteer.models import load_model

    return load_model("smollm2-135m")


@pytest.fixture(scope="session")
def gemma():
    from xsteer.models import load_model

    return load_model("gemma-3-270m")


@pytest.fixture(scope="session")
def tiny_llama():
    from xsteer.models import tiny_model

    return tiny_model("llama", n_layers=3, d_model=64, seed=0)


@pytest.fixture
def loads(monkeypatch):
    """Every model load attempted during the test (none may happen for bad input)."""
    import xsteer.models

    calls = []

    def refuse(spec, *a, **k):
        calls.append(str(spec))
        raise AssertionError(f"a model was loaded: {spec}")

    monkeypatch.setattr(xsteer.models, "load_model", refuse)
    return calls
