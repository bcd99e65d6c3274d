"""The house's rooms (README, "Layout"): a module of xsteer/ imports only modules of its own room or
of rooms listed before it — function-level imports included — and never a front end."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xsteer"

#: Lowest first. stats and figures compute and draw from plain numbers and duck-typed results.
ROOMS = [
    ["stats"],
    ["figures"],
    ["models", "plain", "tasks", "concepts", "contrast", "splits", "checks", "storage", "choices", "data"],
    ["activations", "extract", "vectors", "steer", "operators", "positions", "schedules", "kv_steer", "decode"],
    ["transfer"],
    ["evaluate", "fidelity", "results", "records"],
    ["report", "interop", "runfolder"],
    ["pipeline", "grid"],
    ["cli", "__init__", "__main__"],
]
ROOM = {name: i for i, names in enumerate(ROOMS) for name in names}
FRONT_ENDS = {"analysis", "benchmarks", "examples", "tests"}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            if node.module == "xsteer":
                out += [f"xsteer.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_room():
    assert {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES} <= set(ROOM)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_or_across_never_up(path):
    here = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    up = []
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] in FRONT_ENDS and ROOM[here] < len(ROOMS) - 1:  # the CLI is a front end itself
            up.append(name)
        elif parts[0] == "xsteer" and len(parts) > 1 and parts[1] in ROOM and ROOM[parts[1]] > ROOM[here]:
            up.append(name)
    assert not up, f"{path.relative_to(PACKAGE)} reaches up to {sorted(set(up))}"
