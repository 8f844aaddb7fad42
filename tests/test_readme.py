"""The README's core examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS_THAT_RUN = ("Quick start", "Diagnostics", "Quick start: Python", "Quick start: sequence rewards")


def python_blocks_by_section() -> list[tuple[str, str]]:
    blocks, heading = [], ""
    for part in re.split(r"(^#+ [^\n]*$|```python\n.*?```)", README.read_text(), flags=re.M | re.S):
        if part.startswith("#"):
            heading = part.lstrip("#").strip()
        elif part.startswith("```python"):
            blocks.append((heading, part[len("```python\n") : -3]))
    return blocks


RUNNABLE = [(h, code) for h, code in python_blocks_by_section() if h in SECTIONS_THAT_RUN]


def test_the_readme_has_the_sections_that_must_run():
    assert {h for h, _ in RUNNABLE} == set(SECTIONS_THAT_RUN)


@pytest.mark.parametrize(("heading", "code"), RUNNABLE, ids=[h for h, _ in RUNNABLE])
def test_readme_block_runs(heading, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # blocks may write run directories
    namespace: dict = {}
    exec("import torch\nfrom torch.distributions import Normal\n" + code, namespace)  # noqa: S102
