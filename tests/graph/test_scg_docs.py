"""The code block of docs/graph.md runs and shows the credit assignment it claims."""

from __future__ import annotations

import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "graph.md"


def test_docs_code_block_runs_and_finds_the_dependencies():
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
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
