"""The README's core examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS_THAT_RUN = (
    "Quick start",
    "Estimators",
    "Diagnostics",
    "Quick start: Python",
    "Quick start: search gradients",
    "Quick start: sequence rewards",
)


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


def _first_command_after(heading: str) -> str:
    section = README.read_text().split(f"## {heading}\n", 1)[1]
    return re.search(r"```bash\n(.*?)\n", section).group(1).strip()


def test_ci_runs_the_readme_install_and_test_commands_character_for_character():
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    install, test = _first_command_after("Install"), _first_command_after("Tests")
    assert install == 'pip install -e ".[dev]"' and test == "pytest"
    commands = [line for line in ci if line and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["pip install torch==2.13.0", install, test]
