"""Run a script (or ``-m scoregrad ...``) under torchrun with 2 local gloo processes, from the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def torchrun(*args: str, nproc: int = 2, timeout: float = 240, env: dict[str, str] | None = None):
    """``torchrun --standalone --nproc_per_node=nproc *args``; returns the CompletedProcess (text)."""
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    environ.update(env or {})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ, cwd=ROOT)
