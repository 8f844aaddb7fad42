"""ES across processes: each evaluates its share of the population, only losses cross; bit-identical."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from tests.distributed import es_runs
from tests.distributed.launch import torchrun


def test_two_processes_give_bit_identical_search_results_to_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    es_runs.main(one)
    result = torchrun("tests/distributed/es_runs.py", str(two))
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = load_file(str(one / "es.safetensors")), load_file(str(two / "es.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bitwise: the same candidates, losses and updates
    for noise in ("generator", "table"):
        assert not torch.equal(a[f"openes.{noise}.mean"], torch.linspace(-1, 1, 12, dtype=torch.float64))
    assert not torch.equal(a["openes.generator.mean"], a["openes.table.mean"])  # two noise sources
    assert torch.equal(b["no_generation.x"], torch.linspace(-1, 1, 12, dtype=torch.float64))


def test_the_log_depth_all_gather_and_the_losses_exchange_with_three_processes(tmp_path):
    result = torchrun("tests/distributed/gather_check.py", str(tmp_path), nproc=3)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ok").read_text() == "3"
