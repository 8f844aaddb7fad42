"""``Faulty-v0``: CartPole whose process ``RANK`` fails after ``STEP`` env steps, as asked by the
environment variable ``SCOREGRAD_TEST_FAULT="raise:RANK:STEP"`` or ``"kill:RANK:STEP"`` (SIGKILL)."""

from __future__ import annotations

import os
import signal

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

_steps = 0  # env steps taken by this process (all its envs)


class FaultyCartPole(CartPoleEnv):
    def step(self, action):
        global _steps
        _steps += 1
        fault = os.environ.get("SCOREGRAD_TEST_FAULT")
        if fault:
            kind, rank, step = fault.split(":")
            if os.environ.get("RANK") == rank and _steps == int(step):
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError(f"injected failure on rank {rank} at its env step {step}")
        return super().step(action)


gym.register("Faulty-v0", entry_point=FaultyCartPole, max_episode_steps=500)
