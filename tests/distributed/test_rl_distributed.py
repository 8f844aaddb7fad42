"""Data-parallel RL: W processes x N/W envs run the same update as one process with N envs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.distributed import rl_one_iteration
from tests.distributed.launch import torchrun


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The runs of rl_one_iteration.py by one process and by 2 processes under torchrun."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    rl_one_iteration.main(one)
    result = torchrun("tests/distributed/rl_one_iteration.py", str(two))
    assert result.returncode == 0, result.stderr[-3000:]
    return one, two


def test_two_processes_give_the_parameters_of_one_process_with_all_the_envs(runs):
    # Same seed, 4 envs: one process, and 2 processes x 2 envs (env i seeded seed + i in both; each
    # process samples its rows of one draw for all envs). Rollouts are then identical, every process
    # holds the union batch, and each optimiser step sums the gradients of the two halves of each
    # minibatch instead of taking one mean over it: only float32 rounding differs. One such rounding
    # (~1e-7 relative) per step, through at most a few dozen Adam steps of size <= lr = 3e-4, stays far
    # below 1e-6, while a wrong seed, share or weight moves the parameters by ~lr = 3e-4 or more.
    one, two = runs
    for name in rl_one_iteration.RUNS:
        a, b = load_file(str(one / f"{name}.safetensors")), load_file(str(two / f"{name}.safetensors"))
        after = [k for k in a if k.startswith("after.")]
        moved = max((a[k] - a[k.replace("after.", "before.")]).abs().max().item() for k in after)
        worst = max((a[k] - b[k]).abs().max().item() for k in after)
        print(name, "moved", moved, "differs", worst)
        assert moved > 1e-4, f"{name}: the update did not move the parameters"
        if name != "ppo_normalised":
            assert worst < 1e-6, (name, worst)


def _normalisers(directory):
    return json.loads((directory / "ppo_normalised.json").read_text())


def test_normalisation_statistics_are_those_of_all_processes_data(runs):
    # Within a rollout each process normalises with the statistics it had at the rollout's start plus
    # its own envs' data (no collective per env step); at the end of the iteration every process replays
    # the updates with all processes' data, so the statistics count every env's observations (68 =
    # 4 resets + 64 steps, where one process's own data would count 34) and match one process's up to
    # the small differences that this within-rollout drift makes in the continuous actions.
    one, two = runs
    a, b = _normalisers(one), _normalisers(two)
    for key in ("obs", "reward"):
        assert a[key]["count"] == b[key]["count"]
        np.testing.assert_allclose(b[key]["mean"], a[key]["mean"], rtol=1e-2)
        np.testing.assert_allclose(b[key]["var"], a[key]["var"], rtol=1e-2)
    assert a["obs"]["count"] == 68.0001
