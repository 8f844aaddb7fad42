"""examples/policy_gradient_variance.py: sg.diagnostics measures a policy's gradient variance."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy_gradient_variance.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("policy_gradient_variance", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_policy_gradient_estimates_are_unbiased_and_exact_has_no_variance(capsys):
    reinforce, rloo, exact = _load_example().main(repeats=30)
    assert "REINFORCE + leave-one-out" in capsys.readouterr().out
    for stats in (reinforce, rloo):
        assert stats.variance.sum() > 0
        assert torch.isfinite(stats.z_score).all() and stats.z_score.abs().max() < 6  # unbiased
    assert exact.variance.sum() == 0
