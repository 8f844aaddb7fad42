"""Fault injection: kills and signals at random moments never lose the last good checkpoint.

Each run trains CartPole-v1 through the real command line in a child process, saving a checkpoint
every iteration. After a SIGKILL at a random moment, ``scoregrad eval`` and ``train --resume`` must
work, and the resumed run must end with exactly the weights of an uninterrupted run (CartPole's
vector env state is saved, so resume is bitwise on CPU). SIGTERM and a double Ctrl-C must save and
exit 143 / 130; Ctrl-C while the program is still starting exits 130 without a traceback.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from scoregrad import rl
from scoregrad.cli import main
from scoregrad.rl.checkpoint import checkpoint_versions

SRC = Path(__file__).resolve().parents[2] / "src"
STEPS = 8192
CONFIG = dict(num_envs=4, num_steps=32, update_epochs=1, num_minibatches=1)
ARGS = [
    "train", "CartPole-v1", "--steps", str(STEPS), "--checkpoint-every", "1", "--no-progress", "--no-preset",
    "--num-envs", "4", "--num-steps", "32", "--update-epochs", "1", "--num-minibatches", "1",
]  # fmt: skip


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def _default_sigint() -> None:
    # A child started from a background job inherits SIGINT ignored; Ctrl-C must reach it as in a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scoregrad", *ARGS, "--out", str(out)],
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _wait_for_first_checkpoint(process: subprocess.Popen, out: Path) -> None:
    deadline = time.monotonic() + 120
    while not checkpoint_versions(out):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)


def _weights(agent: rl.Agent) -> list[torch.Tensor]:
    return [p.detach().clone() for p in agent.policy.parameters()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[torch.Tensor]:
    out = tmp_path_factory.mktemp("reference")
    agent = rl.train(
        "CartPole-v1",
        total_steps=STEPS,
        seed=0,
        preset=False,
        out=out,
        checkpoint_every=1,
        progress=False,
        **CONFIG,
    )
    return _weights(agent)


def _check_logs(out: Path) -> None:
    for name in ("updates.csv", "episodes.csv"):
        with (out / name).open(newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][0] == "step", f"{name} lost its header"
        steps = [int(r[0]) for r in rows[1:]]
        times = [float(r[1]) for r in rows[1:]]
        assert steps == sorted(steps) and times == sorted(times), f"{name}: steps or wall time go backwards"
        if name == "updates.csv":  # one row per iteration, none repeated after the resume
            assert steps == list(range(128, STEPS + 1, 128)), f"{name} has missing or duplicated rows"


def _resume_and_compare(out: Path, reference: list[torch.Tensor], capsys) -> None:
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2"]) == 0, capsys.readouterr().err
    assert main(["train", "CartPole-v1", "--out", str(out), "--resume", "--no-progress"]) == 0
    resumed = _weights(rl.load(out))
    assert all(torch.equal(a, b) for a, b in zip(resumed, reference, strict=True))
    assert not list((out / "checkpoints").glob(".tmp-*")), "stale temporary directories were not cleaned"
    _check_logs(out)


def _kill_at_random_moments(tmp_path, reference, capsys, kills: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    landed = 0
    for attempt in range(3 * kills):
        out = tmp_path / f"run{attempt}"
        process = _start(out)
        _wait_for_first_checkpoint(process, out)
        time.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if process.returncode == 0:
            continue  # finished before the kill: nothing was tested, try another moment
        assert process.returncode == -signal.SIGKILL
        _resume_and_compare(out, reference, capsys)
        landed += 1
        if landed == kills:
            return
    pytest.fail(f"only {landed} of {kills} kills landed while the run was training")


def test_sigkill_at_random_moments_never_loses_the_run(tmp_path, reference, capsys):
    _kill_at_random_moments(tmp_path, reference, capsys, kills=3, seed=0)


@pytest.mark.slow
def test_sigkill_twenty_times_never_loses_the_run(tmp_path, reference, capsys):
    _kill_at_random_moments(tmp_path, reference, capsys, kills=20, seed=1)


@pytest.mark.parametrize(
    "signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT]], ids=["sigterm", "double-ctrl-c"]
)
def test_sigterm_and_double_ctrl_c_save_and_exit_with_the_conventional_status(
    tmp_path, reference, capsys, signals
):
    out = tmp_path / "run"
    process = _start(out)
    _wait_for_first_checkpoint(process, out)
    time.sleep(0.2)
    for sig in signals:
        process.send_signal(sig)
        time.sleep(0.002)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signals[0], err
    assert "Traceback" not in err
    _resume_and_compare(out, reference, capsys)


def test_ctrl_c_during_start_up_exits_130_without_a_traceback(tmp_path):
    process = _start(tmp_path / "run")
    time.sleep(0.3)  # still importing torch and gymnasium
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
