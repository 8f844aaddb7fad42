"""Policy-gradient algorithms, one file each, behind one protocol (:class:`~.base.Algorithm`).

A new algorithm is a class with ``update(policy, buffer, step, generator) -> stats`` and an entry in
:data:`ALGORITHMS` (and its config in :data:`scoregrad.rl.config.CONFIGS`).
"""

from __future__ import annotations

from scoregrad.rl.algorithms.a2c import A2C
from scoregrad.rl.algorithms.base import Algorithm, Batch
from scoregrad.rl.algorithms.ppo import PPO
from scoregrad.rl.algorithms.reinforce import Reinforce

__all__ = ["ALGORITHMS", "Algorithm", "Batch", "PPO", "A2C", "Reinforce"]

#: Algorithm name (``rl.train(algo=...)``) -> its class.
ALGORITHMS: dict[str, type[Algorithm]] = {"reinforce": Reinforce, "a2c": A2C, "ppo": PPO}
