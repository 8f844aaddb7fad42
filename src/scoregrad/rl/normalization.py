"""Running observation and reward normalisation (state saved with checkpoints as JSON)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["RunningMeanStd", "ObservationNormalizer", "RewardNormalizer", "synchronize"]


class RunningMeanStd:
    """Running mean and variance over a batch axis (Chan et al.'s parallel update), float64."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4
        self.history: list[np.ndarray] | None = None  # the batches of each update, when recording

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        if self.history is not None:
            self.history.append(x)
        if x.shape[0] == 0:
            return
        batch_mean, batch_var, n = x.mean(0), x.var(0), x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var = m2 / total
        self.count = total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": self.count}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.mean = np.asarray(d["mean"], np.float64)
        self.var = np.asarray(d["var"], np.float64)
        self.count = float(d["count"])


def synchronize(stats: list[RunningMeanStd], starts: list[dict[str, Any]]) -> None:
    """Give every process the statistics one process would have computed from all processes' data.

    Between two calls each process updates ``stats`` with its own rows only (recorded in
    ``stats[i].history``); this gathers the records, restores the statistics of the last call
    (``starts``) and replays every update with the rows of all processes, concatenated in rank order:
    exactly what a single process holding every env would have done, bitwise. One collective.
    """
    from scoregrad import distributed

    gathered = distributed.all_gather_objects([s.history for s in stats])
    for i, (s, start) in enumerate(zip(stats, starts, strict=True)):
        s.load_state_dict(start)
        s.history = None
        for parts in zip(*(g[i] for g in gathered), strict=True):
            s.update(np.concatenate(parts))
        s.history = []


class ObservationNormalizer:
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` with running statistics."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, eps: float = 1e-8):
        self.stats = RunningMeanStd(shape)
        self.clip, self.eps = clip, eps

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update:
            self.stats.update(obs)
        out = (obs - self.stats.mean) / np.sqrt(self.stats.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.state_dict(), "clip": self.clip, "eps": self.eps}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.stats.load_state_dict(d["stats"])
        self.clip, self.eps = d["clip"], d["eps"]


class RewardNormalizer:
    """Scale rewards by the running std of the discounted return (as SB3's VecNormalize does).

    Only the scale changes (no shift), so the optimal policy is unchanged.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8):
        self.stats = RunningMeanStd(())
        self.returns = np.zeros(num_envs, np.float64)
        self.gamma, self.clip, self.eps = gamma, clip, eps

    def __call__(self, reward: np.ndarray, done: np.ndarray, valid: np.ndarray) -> np.ndarray:
        self.returns = np.where(valid, self.returns * self.gamma + reward, self.returns)
        self.stats.update(self.returns[valid] if valid.any() else self.returns[:0])
        self.returns[done] = 0.0
        out = reward / np.sqrt(self.stats.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"stats": self.stats.state_dict(), "returns": self.returns.tolist(), "gamma": self.gamma}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.stats.load_state_dict(d["stats"])
        self.returns = np.asarray(d["returns"], np.float64)
        self.gamma = d["gamma"]
