"""The README's notebook story runs as written: every ```python block, in order, in one namespace."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_has_its_notebook_story():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2 and "import xsteer as xs" in blocks[0]


@pytest.mark.real
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run folders land in a temporary directory
    namespace: dict = {}
    for block in python_blocks(README.read_text()):
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["result"].statistics is not None
    assert (tmp_path / "runs" / "readme" / "report.md").exists()
