"""Sequence training data-parallel over prompts: 2 processes train, and hold the same weights."""

from __future__ import annotations

import json
import math

import torch
from safetensors.torch import load_file

from tests.distributed.launch import torchrun


def test_two_processes_train_a_tiny_sequence_task(tmp_path):
    result = torchrun("tests/distributed/seq_train.py", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 40 and all(math.isfinite(h["loss"]) for h in history)
    first = sum(h["reward"] for h in history[:3]) / 3
    last = sum(h["reward"] for h in history[-10:]) / 10
    assert first < 0.5 and last > 0.9, (first, last)  # at random, 1/3 of the tokens are 2s
    a, b = (
        load_file(str(tmp_path / "params-0.safetensors")),
        load_file(str(tmp_path / "params-1.safetensors")),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)  # the averaged gradients kept the replicas identical
    assert (tmp_path / "run" / "checkpoint").exists()
