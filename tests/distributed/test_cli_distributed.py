"""The command line under torchrun and with --nproc: a run, its resume on another process count, faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from scoregrad import rl
from scoregrad.cli import main
from scoregrad.rl.checkpoint import load_checkpoint
from tests.distributed.launch import ROOT, torchrun

TRAIN = [
    "train",
    "tests.distributed.faulty:Faulty-v0",
    "--algo",
    "ppo",
    "--num-envs",
    "4",
    "--num-steps",
    "32",
]
TRAIN += ["--num-minibatches", "2", "--update-epochs", "2", "--checkpoint-every", "1", "--no-progress"]


def scoregrad(*args: str, env: dict[str, str] | None = None, timeout: float = 240):
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    environ.update(env or {})
    cmd = [sys.executable, "-m", "scoregrad", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ, cwd=ROOT)


def saved_step(run) -> int:
    return load_checkpoint(run)[1]["training"]["global_step"]


def test_a_process_that_raises_ends_the_job_with_its_message_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    start = time.monotonic()
    fault = {"SCOREGRAD_TEST_FAULT": "raise:1:300"}  # rank 1, its 300th step: iteration 5 (64 per iteration)
    result = torchrun(
        "-m", "scoregrad", *TRAIN, "--steps", "100000", "--out", str(run), "--timeout", "30", env=fault
    )
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert "injected failure on rank 1 at its env step 300" in result.stderr
    assert elapsed < 90, elapsed  # torchrun start-up (~10 s) + the run until the fault, then no hang
    step = saved_step(run)  # the last checkpoint loads, and is one of the iterations before the fault
    assert 0 < step <= 128 * 5
    rl.load(run)
    resumed = scoregrad(*TRAIN, "--steps", str(step + 256), "--out", str(run), "--resume")  # one process now
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert saved_step(run) == step + 256


def test_a_killed_process_ends_the_job_within_the_timeout_and_nproc_launches_torchrun(tmp_path):
    run = tmp_path / "run"
    start = time.monotonic()
    fault = {"SCOREGRAD_TEST_FAULT": "kill:1:300"}
    result = scoregrad(
        *TRAIN, "--steps", "100000", "--out", str(run), "--nproc", "2", "--timeout", "20", env=fault
    )
    elapsed = time.monotonic() - start
    assert result.returncode != 0
    assert "the 2-process job failed" in result.stderr.splitlines()[-1]
    assert elapsed < 20 + 60, elapsed
    step = saved_step(run)
    assert 0 < step <= 128 * 5
    rl.load(run)
    resumed = torchrun("-m", "scoregrad", *TRAIN, "--steps", str(step + 256), "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert saved_step(run) == step + 256
    evaluated = scoregrad("eval", str(run), "--episodes", "2")
    assert evaluated.returncode == 0 and "mean_return" in evaluated.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nproc", "0"], "--nproc must be >= 1; got 0"),
        (["--nproc", "3"], "--num-envs 32 must be divisible by --nproc 3"),
        (["--timeout", "0"], "--timeout must be > 0 seconds; got 0.0"),
        (["--algo", "es", "--popsize", "7", "--nproc", "2"], "--popsize 7 must be divisible by --nproc 2"),
    ],
)
def test_scale_out_options_are_checked_before_any_process_starts(args, message, capsys):
    assert main(["train", "CartPole-v1", "--steps", "100", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == f"scoregrad train: error: {message} (see --help)"
        or err == f"scoregrad train: error: {message}"
    )


def test_nproc_must_match_the_processes_torchrun_started(monkeypatch, capsys):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert main(["train", "CartPole-v1", "--steps", "100", "--nproc", "2"]) == 2
    assert "--nproc 2, but torchrun started 4 processes" in capsys.readouterr().err
