"""Actor-critic policies for Gymnasium spaces.

A policy maps a batch of flat observations ``(B, obs_dim)`` to an action distribution and a value
``(B,)``. The distribution comes from the action space's head (:mod:`scoregrad.rl.action_heads`):
a ``torch.distributions`` object with batch shape ``(B,)`` and event shape ``()`` (Discrete),
``(d,)`` (Box) or ``(k,)`` (MultiDiscrete/MultiBinary), wrapped with a generator-driven ``sample``.

The buffer stores the *raw* action (the Gaussian sample before squashing or clipping);
:meth:`ActorCritic.to_env_action` maps it into the env's action space.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from scoregrad.rl.action_heads import (
    ActionDistribution,
    ActionHead,
    ClipBoxHead,
    TanhBoxHead,
    UnsupportedSpaceError,
    action_head,
    lookup,
    normal,
    space_from_json,
    space_to_json,
    unsupported_message,
)

__all__ = [
    "PolicyConfig",
    "ActorCritic",
    "ActionDistribution",
    "GaussianDist",
    "UnsupportedSpaceError",
    "space_to_json",
    "space_from_json",
    "flat_obs_dim",
]


def GaussianDist(  # noqa: N802 - the name of the class this replaced
    mean: Tensor, log_std: Tensor, squash: bool = False, log_scale: Tensor | None = None
) -> ActionDistribution:
    """A Box head's distribution from explicit ``mean``/``log_std`` ``(B, d)`` (kept for old callers).

    With ``squash`` the bounds are ``+-exp(log_scale)`` (log of half the range; default 0), which is
    all the tanh head's log-density needs. New code uses :func:`scoregrad.rl.action_heads.action_head`.
    """
    half = torch.zeros(mean.shape[-1]) if log_scale is None else log_scale.detach().reshape(-1)
    space = gym.spaces.Box(-half.exp().numpy(), half.exp().numpy(), dtype=np.float32)
    head = (TanhBoxHead if squash else ClipBoxHead)(space, None)
    return ActionDistribution(normal(mean, log_std), head)


def _flatten(obs: Tensor) -> Tensor:
    return obs.reshape(obs.shape[0], -1).float()


def _one_hot(obs: Tensor, sizes: tuple[int, ...], starts: tuple[int, ...]) -> Tensor:
    """``(B,)`` or ``(B, k)`` integer observations -> concatenated one-hots ``(B, sum(sizes))``."""
    obs = obs.long().reshape(obs.shape[0], -1)
    parts = [
        nn.functional.one_hot(obs[:, i] - s, n) for i, (n, s) in enumerate(zip(sizes, starts, strict=True))
    ]
    return torch.cat(parts, dim=-1).float()


#: Per observation-space type: ``space -> (flat size, encode (B, *shape) -> (B, size))``.
OBSERVATIONS: dict[type[gym.Space], Callable[[Any], tuple[int, Callable[[Tensor], Tensor]]]] = {
    gym.spaces.Box: lambda s: (int(np.prod(s.shape)), _flatten),
    gym.spaces.MultiBinary: lambda s: (int(np.prod(s.shape)), _flatten),
    gym.spaces.Discrete: lambda s: (int(s.n), partial(_one_hot, sizes=(int(s.n),), starts=(int(s.start),))),
    gym.spaces.MultiDiscrete: lambda s: (
        int(s.nvec.sum()),
        partial(_one_hot, sizes=tuple(int(n) for n in s.nvec), starts=(0,) * len(s.nvec)),
    ),
}


def observation_encoder(space: gym.Space) -> tuple[int, Callable[[Tensor], Tensor]]:
    """The flat size of ``space``'s observations and the function that flattens a batch of them."""
    make = lookup(OBSERVATIONS, space)
    if make is None:
        raise UnsupportedSpaceError(unsupported_message(space, "observation space"))
    return make(space)


def flat_obs_dim(space: gym.Space) -> int:
    """Size of the flat observation vector, or a clear error for unsupported observation spaces."""
    return observation_encoder(space)[0]


# --------------------------------------------------------------------------- the network
@dataclass
class PolicyConfig:
    """Architecture of the default actor-critic (saved with checkpoints)."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    state_dependent_std: bool = False
    squash: bool = False  # Box actions: tanh-squash (True) or clip to the bounds (False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d


class MLP(nn.Sequential):
    """An ``nn.Sequential`` whose forward calls ``Linear``, ``Tanh`` and ``ReLU`` layers' functions
    directly (``F.linear``, ``torch.tanh``, ``torch.relu``: the same kernels, bit for bit) instead of
    ``nn.Module.__call__`` per layer; other layers are called as modules. On a 64-env CartPole
    rollout step those calls were a third of the two networks' forward time
    (``benchmarks/rl_throughput.py``). Forward hooks on those inner layers are therefore not called;
    register them on the MLP itself. Indexing, slicing and state-dict keys are nn.Sequential's.
    """

    def forward(self, x: Tensor) -> Tensor:
        # weights are read from the layers at every call, so functional_call and vmap (ES) can swap them
        for layer in self:
            kind = type(layer)
            if kind is nn.Linear:
                x = nn.functional.linear(x, layer.weight, layer.bias)
            elif kind is nn.Tanh:
                x = torch.tanh(x)
            elif kind is nn.ReLU:
                x = torch.relu(x)
            else:
                x = layer(x)
        return x


def _mlp(sizes: list[int], activation: str, out_gain: float) -> MLP:
    act = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}[activation]
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        # orthogonal init as in the PPO reference implementations (Engstrom et al., 2020)
        nn.init.orthogonal_(linear.weight, out_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(act())
    return MLP(*layers)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs with a head chosen by the action space.

    Args:
        observation_space: a Box, Discrete, MultiDiscrete or MultiBinary space (single env).
        action_space: a Discrete, Box, MultiDiscrete or MultiBinary space (single env).
        config: architecture; see :class:`PolicyConfig`.
        actor: optional user ``nn.Module`` mapping ``(B, obs_dim)`` to the head's parameters:
            ``(B, n)`` logits (Discrete), ``(B, sum(nvec))`` (MultiDiscrete), ``(B, k)``
            (MultiBinary), ``(B, d)`` means, or ``(B, 2d)`` means and log-stds when
            ``state_dependent_std`` (Box).
        critic: optional user ``nn.Module`` mapping ``(B, obs_dim)`` to ``(B, 1)`` values.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: PolicyConfig | None = None,
        actor: nn.Module | None = None,
        critic: nn.Module | None = None,
    ):
        super().__init__()
        self.config = config or PolicyConfig()
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_dim, self._encode = observation_encoder(observation_space)
        cfg = self.config
        hidden = list(cfg.hidden_sizes)
        self.custom = actor is not None or critic is not None
        self.head: ActionHead = action_head(
            action_space, cfg.squash, cfg.state_dependent_std, cfg.log_std_init
        )
        if getattr(self.head, "log_std", None) is not None:
            # registered before the networks, as always: optimiser-state indices in checkpoints follow this order
            self.log_std = self.head.log_std
        out = self.head.param_dim
        self.actor = actor if actor is not None else _mlp([self.obs_dim, *hidden, out], cfg.activation, 0.01)
        self.critic = critic if critic is not None else _mlp([self.obs_dim, *hidden, 1], cfg.activation, 1.0)

    # -- observations
    def preprocess(self, obs: Tensor) -> Tensor:
        """Flatten ``(B, *obs_shape)`` to ``(B, obs_dim)`` float (one-hot for discrete spaces)."""
        return self._encode(obs)

    # -- distribution and value
    def distribution(self, obs: Tensor, action_mask: Tensor | None = None) -> ActionDistribution:
        """Action distribution for a batch of preprocessed observations ``(B, obs_dim)``.

        ``.dist`` of the result is the ``torch.distributions`` object (batch shape ``(B,)``).
        """
        return ActionDistribution(self.head.distribution(self.actor(obs), action_mask), self.head)

    def value(self, obs: Tensor) -> Tensor:
        """``V(s)`` of shape ``(B,)``."""
        return self.critic(obs).squeeze(-1)

    def to_env_action(self, raw: Tensor) -> np.ndarray:
        """Map raw sampled actions ``(B, ...)`` into the env's action space (numpy)."""
        return self.head.to_env(raw)

    def from_env_action_mask(self, mask: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(mask, dtype=bool))

    def arch_json(self) -> dict[str, Any]:
        return {
            "observation_space": space_to_json(self.observation_space),
            "action_space": self.head.to_json(),
            "policy": self.config.to_json(),
            "custom_modules": self.custom,
        }
