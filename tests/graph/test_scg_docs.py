"""The README's stochastic-graph code block runs and shows the credit assignment it claims."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def test_docs_code_block_runs_and_finds_the_dependencies():
    section = README.read_text().split("## Stochastic computation graphs", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    x = torch.bernoulli(torch.full((6, 10), 0.4))
    namespace = {
        "encoder": torch.nn.Linear(10, 8),
        "decoder": torch.nn.Linear(8, 10),
        "x": x,
        "prior": torch.distributions.Independent(torch.distributions.Bernoulli(logits=torch.zeros(6, 8)), 1),
    }
    exec(code, namespace)
    assert namespace["g"].dependencies() == {"reconstruction": ["z"], "kl": []}
    assert namespace["loss"].shape == ()
    assert namespace["encoder"].weight.grad is not None
