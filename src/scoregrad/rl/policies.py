"""Actor-critic policies for Gymnasium action spaces.

A policy maps a batch of flat observations ``(B, obs_dim)`` to an action distribution and a value
``(B,)``. Distributions here are deliberately small (log-prob, entropy, sample, mode) so the
rollout loop stays fast on CPU; shapes follow ``torch.distributions``: a batch of ``B`` actions
with event shape ``()`` (Discrete), ``(d,)`` (Box) or ``(k,)`` (MultiDiscrete/MultiBinary), and
``log_prob``/``entropy`` return ``(B,)``.

The buffer stores the *raw* action (the Gaussian sample before squashing or clipping);
:meth:`ActorCritic.to_env_action` maps it into the env's action space.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "PolicyConfig",
    "ActorCritic",
    "CategoricalDist",
    "GaussianDist",
    "MultiCategoricalDist",
    "BernoulliDist",
    "UnsupportedSpaceError",
    "space_to_json",
    "space_from_json",
    "flat_obs_dim",
]

_MASKED_LOGIT = -1e8


class UnsupportedSpaceError(TypeError):
    """An observation or action space that scoregrad.rl cannot handle."""


# --------------------------------------------------------------------------- distributions
class CategoricalDist:
    """Categorical over the last axis of ``logits (B, n)``; ``mask (B, n)`` bool forbids actions."""

    def __init__(self, logits: Tensor, mask: Tensor | None = None):
        if mask is not None:
            logits = logits.masked_fill(~mask, _MASKED_LOGIT)
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        # Gumbel-max with an explicit generator, so sampling is reproducible and resumable
        u = torch.rand(self.logits.shape, generator=generator, dtype=self.logits.dtype)
        return torch.argmax(self.logits - torch.log(-torch.log(u.clamp_min(1e-20))), dim=-1)

    def mode(self) -> Tensor:
        return torch.argmax(self.logits, dim=-1)

    def log_prob(self, action: Tensor) -> Tensor:
        return self.logits.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        p = self.logits.exp()
        return -(p * self.logits).sum(-1)


class MultiCategoricalDist:
    """Independent categoricals, one per MultiDiscrete component; ``logits (B, sum(nvec))``."""

    def __init__(self, logits: Tensor, nvec: list[int], mask: Tensor | None = None):
        chunks = torch.split(logits, nvec, dim=-1)
        masks = torch.split(mask, nvec, dim=-1) if mask is not None else [None] * len(nvec)
        self.parts = [CategoricalDist(c, m) for c, m in zip(chunks, masks, strict=True)]

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return torch.stack([p.sample(generator) for p in self.parts], dim=-1)

    def mode(self) -> Tensor:
        return torch.stack([p.mode() for p in self.parts], dim=-1)

    def log_prob(self, action: Tensor) -> Tensor:
        return sum(p.log_prob(action[..., i]) for i, p in enumerate(self.parts))

    def entropy(self) -> Tensor:
        return sum(p.entropy() for p in self.parts)


class BernoulliDist:
    """Independent Bernoullis for MultiBinary; ``logits (B, k)``."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(self.logits.shape, generator=generator, dtype=self.logits.dtype)
        return (u < torch.sigmoid(self.logits)).to(self.logits.dtype)

    def mode(self) -> Tensor:
        return (self.logits > 0).to(self.logits.dtype)

    def log_prob(self, action: Tensor) -> Tensor:
        a = action.to(self.logits.dtype)
        return -nn.functional.binary_cross_entropy_with_logits(self.logits, a, reduction="none").sum(-1)

    def entropy(self) -> Tensor:
        p = torch.sigmoid(self.logits)
        return nn.functional.binary_cross_entropy_with_logits(self.logits, p, reduction="none").sum(-1)


class GaussianDist:
    """Diagonal Gaussian over raw actions ``u (B, d)``, optionally tanh-squashed into ``[low, high]``.

    With ``squash=True`` the env receives ``a = low + (tanh(u) + 1) (high - low) / 2`` and
    :meth:`log_prob` is the density of ``a`` (change of variables, as in Haarnoja et al., 2018,
    "Soft Actor-Critic", appendix C): ``log N(u) - sum log(1 - tanh(u)^2) - sum log((high-low)/2)``,
    with ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))`` for numerical stability.
    :meth:`entropy` is then that of ``u`` (the squashed entropy has no closed form).
    """

    def __init__(self, mean: Tensor, log_std: Tensor, squash: bool = False, log_scale: Tensor | None = None):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.squash = squash
        self.log_scale = log_scale

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return (self.mean + noise * self.log_std.exp()).detach()

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, action: Tensor) -> Tensor:
        z = (action - self.mean) * torch.exp(-self.log_std)
        lp = (-0.5 * z**2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        if self.squash:
            log_det = 2.0 * (math.log(2.0) - action - nn.functional.softplus(-2.0 * action))
            lp = lp - log_det.sum(-1)
            if self.log_scale is not None:
                lp = lp - self.log_scale.sum()
        return lp

    def entropy(self) -> Tensor:
        return (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)


# --------------------------------------------------------------------------- spaces
def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a supported space (for checkpoints)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.astype(np.float64).tolist(),
            "high": space.high.astype(np.float64).tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    raise UnsupportedSpaceError(_unsupported_message(space, "space"))


def space_from_json(d: dict[str, Any]) -> gym.Space:
    kind = d.get("type")
    if kind == "Discrete":
        return gym.spaces.Discrete(d["n"], start=d.get("start", 0))
    if kind == "Box":
        return gym.spaces.Box(
            np.array(d["low"], dtype=d["dtype"]), np.array(d["high"], dtype=d["dtype"]), dtype=d["dtype"]
        )
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(d["nvec"], start=d.get("start"))
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(d["n"])
    raise ValueError(f"unknown space description in checkpoint: {d!r}")


def _unsupported_message(space: gym.Space, role: str) -> str:
    return (
        f"scoregrad.rl does not support the {role} {space!r} ({type(space).__name__}). Supported: "
        "Box (observations and actions), Discrete, MultiDiscrete, MultiBinary. For Dict/Tuple "
        "observations wrap the env in gymnasium.wrappers.FlattenObservation; for other spaces "
        "(Text, Graph, Sequence, ...) write a wrapper that maps them to a Box, or plug in your own "
        "nn.Module actor via ActorCritic(actor=...)."
    )


def flat_obs_dim(space: gym.Space) -> int:
    """Size of the flat observation vector, or a clear error for unsupported observation spaces."""
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)  # one-hot
    if isinstance(space, (gym.spaces.MultiBinary, gym.spaces.MultiDiscrete)):
        return (
            int(np.prod(space.shape)) if isinstance(space, gym.spaces.MultiBinary) else int(space.nvec.sum())
        )
    raise UnsupportedSpaceError(_unsupported_message(space, "observation space"))


def check_action_space(space: gym.Space) -> None:
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim != 1:
        raise UnsupportedSpaceError("MultiDiscrete action spaces must be 1-D (nvec of shape (k,)).")
    if isinstance(space, gym.spaces.MultiBinary) and np.asarray(space.n).ndim > 0 and len(space.shape) > 1:
        raise UnsupportedSpaceError("MultiBinary action spaces must be 1-D.")
    if not isinstance(
        space, (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
    ):
        raise UnsupportedSpaceError(_unsupported_message(space, "action space"))


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


def _mlp(sizes: list[int], activation: str, out_gain: float) -> nn.Sequential:
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
    return nn.Sequential(*layers)


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
        self.obs_dim = flat_obs_dim(observation_space)
        check_action_space(action_space)
        cfg = self.config
        hidden = list(cfg.hidden_sizes)
        self.custom = actor is not None or critic is not None
        if isinstance(action_space, gym.spaces.Discrete):
            out = int(action_space.n)
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            out = int(action_space.nvec.sum())
        elif isinstance(action_space, gym.spaces.MultiBinary):
            out = int(np.prod(action_space.shape))
        else:
            d = int(np.prod(action_space.shape))
            out = 2 * d if cfg.state_dependent_std else d
            if not cfg.state_dependent_std:
                self.log_std = nn.Parameter(torch.full((d,), float(cfg.log_std_init)))
            low = torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1)
            high = torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1)
            if cfg.squash and not (torch.isfinite(low).all() and torch.isfinite(high).all()):
                raise ValueError(f"squash=True needs finite action bounds; got {action_space!r}")
            self.register_buffer("action_low", low, persistent=False)
            self.register_buffer("action_high", high, persistent=False)
        self.actor = actor if actor is not None else _mlp([self.obs_dim, *hidden, out], cfg.activation, 0.01)
        self.critic = critic if critic is not None else _mlp([self.obs_dim, *hidden, 1], cfg.activation, 1.0)

    # -- observations
    def preprocess(self, obs: Tensor) -> Tensor:
        """Flatten ``(B, *obs_shape)`` to ``(B, obs_dim)`` float (one-hot for discrete spaces)."""
        space = self.observation_space
        if isinstance(space, gym.spaces.Discrete):
            return nn.functional.one_hot(obs.long() - int(space.start), int(space.n)).float()
        if isinstance(space, gym.spaces.MultiDiscrete):
            parts = [
                nn.functional.one_hot(obs[..., i].long(), int(n)).float() for i, n in enumerate(space.nvec)
            ]
            return torch.cat(parts, dim=-1)
        return obs.reshape(obs.shape[0], -1).float()

    # -- distribution and value
    def distribution(self, obs: Tensor, action_mask: Tensor | None = None):
        """Action distribution for a batch of preprocessed observations ``(B, obs_dim)``."""
        params = self.actor(obs)
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return CategoricalDist(params, action_mask)
        if isinstance(space, gym.spaces.MultiDiscrete):
            return MultiCategoricalDist(params, [int(n) for n in space.nvec], action_mask)
        if isinstance(space, gym.spaces.MultiBinary):
            return BernoulliDist(params)
        if self.config.state_dependent_std:
            mean, log_std = params.chunk(2, dim=-1)
            log_std = log_std.clamp(-20.0, 2.0)
        else:
            mean, log_std = params, self.log_std
        log_scale = torch.log((self.action_high - self.action_low) / 2) if self.config.squash else None
        return GaussianDist(mean, log_std, squash=self.config.squash, log_scale=log_scale)

    def value(self, obs: Tensor) -> Tensor:
        """``V(s)`` of shape ``(B,)``."""
        return self.critic(obs).squeeze(-1)

    def to_env_action(self, raw: Tensor) -> np.ndarray:
        """Map raw sampled actions ``(B, ...)`` into the env's action space (numpy)."""
        raw = raw.detach()
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            if self.config.squash:
                a = self.action_low + (torch.tanh(raw) + 1.0) * 0.5 * (self.action_high - self.action_low)
            else:
                a = torch.maximum(torch.minimum(raw, self.action_high), self.action_low)
            return a.reshape(raw.shape[0], *space.shape).numpy().astype(space.dtype, copy=False)
        if isinstance(space, gym.spaces.Discrete):
            return (raw + int(space.start)).numpy()
        if isinstance(space, gym.spaces.MultiDiscrete):
            return (raw + torch.as_tensor(space.start)).numpy()
        return raw.numpy().astype(space.dtype, copy=False)

    def from_env_action_mask(self, mask: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(mask, dtype=bool))

    def arch_json(self) -> dict[str, Any]:
        return {
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "policy": self.config.to_json(),
            "custom_modules": self.custom,
        }
