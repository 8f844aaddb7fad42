"""The discrete-VAE benchmark runs end to end (a few steps, digits only, no Storchastic)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_discrete_vae_benchmark_runs_and_writes_results(tmp_path):
    root = Path(__file__).resolve().parents[2]
    command = [
        sys.executable,
        str(root / "benchmarks" / "discrete_vae.py"),
        "--steps", "20", "--checkpoints", "2", "--variance-repeats", "3", "--test-size", "50",
        "--datasets", "digits", "--models", "linear", "nonlinear", "--storchastic", "false",
        "--out", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={"PYTHONPATH": str(root / "src")}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "discrete_vae.json").read_text())
    runs = data["results"]["digits"]["linear"]
    assert set(runs) == {
        "reinforce_ma",
        "nvil",
        "rloo4",
        "vimco4",
        "arm",
        "disarm",
        "relax",
        "rebar",
        "gumbel_st",
    }
    for name, run in runs.items():
        assert "history" in run, (name, run)
        assert len(run["history"]) == 2 and run["history"][-1]["step"] == 20
    assert (tmp_path / "discrete_vae.png").stat().st_size > 0
    assert "| rloo4 |" in (tmp_path / "discrete_vae.md").read_text()
