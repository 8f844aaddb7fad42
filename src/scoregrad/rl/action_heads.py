"""Action heads: one small adapter per Gymnasium action space, on ``torch.distributions``.

A head turns the actor's output ``params (B, param_dim)`` into a ``torch.distributions``
distribution over *raw* actions (batch shape ``(B,)``), and knows everything else the trainer needs
about its space: how to sample reproducibly from an explicit ``torch.Generator`` (``torch``'s own
``sample`` has no generator argument, and a resumed run must draw the same noise; under
``torch.distributed`` a :class:`~scoregrad.distributed.ShardedGenerator` gives each process its rows of one
draw for all processes' envs), the env action for
a raw one, the buffer's shape and dtype, the size of an action mask and the space's JSON form.

=================  ==========================================  ===========  =================
space              distribution over the raw action            raw shape    env action
=================  ==========================================  ===========  =================
``Discrete(n)``    ``Categorical(logits)`` (masked)            ``()``       ``raw + start``
``MultiDiscrete``  ``Independent(Categorical, 1)``, padded     ``(k,)``     ``raw + start``
``MultiBinary(k)`` ``Independent(Bernoulli(logits), 1)``       ``(k,)``     ``raw``
``Box``, clip      ``Independent(Normal(mean, std), 1)``       ``(d,)``     ``clip(raw)``
``Box``, tanh      the same Normal, density of the env action  ``(d,)``     ``tanh`` into bounds
=================  ==========================================  ===========  =================

The buffer stores the raw action (the Gaussian sample before clipping or squashing) so that its
log-probability is exact and never needs ``atanh`` of a saturated action. :func:`action_head` is
the one place that looks at the space's type; :func:`space_to_json` / :func:`space_from_json` use
the same table for checkpoints. A new action space is one short class registered in ``HEADS``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal, TanhTransform

from scoregrad.distributed import draw
from scoregrad.estimators.discrete import gumbel_noise, uniform_like

__all__ = [
    "ActionHead",
    "DiscreteHead",
    "MultiDiscreteHead",
    "MultiBinaryHead",
    "ClipBoxHead",
    "TanhBoxHead",
    "ActionDistribution",
    "HEADS",
    "action_head",
    "lookup",
    "space_to_json",
    "space_from_json",
    "UnsupportedSpaceError",
    "unsupported_message",
]

#: Logit given to forbidden actions: exp of it is exactly 0 in float32, and it stays finite.
MASKED_LOGIT = -1e8


class UnsupportedSpaceError(TypeError):
    """An observation or action space that scoregrad.rl cannot handle."""


def unsupported_message(space: gym.Space, role: str) -> str:
    return (
        f"scoregrad.rl does not support the {role} {space!r} ({type(space).__name__}). Supported: "
        "Box (observations and actions), Discrete, MultiDiscrete, MultiBinary. For Dict/Tuple "
        "observations wrap the env in gymnasium.wrappers.FlattenObservation; for other spaces "
        "(Text, Graph, Sequence, ...) write a wrapper that maps them to a Box, or plug in your own "
        "nn.Module actor via ActorCritic(actor=...)."
    )


class ActionHead:
    """The protocol every head implements (subclasses override what differs).

    Attributes:
        space: the single-env action space.
        param_dim: size of the actor's output for one state.
        buffer_shape, buffer_dtype: shape and dtype of one raw action in the rollout buffer.
        mask_dim: length of a boolean action mask, or None when masks do not apply.
    """

    space_type: ClassVar[type[gym.Space]]
    buffer_dtype: ClassVar[torch.dtype] = torch.long
    space: gym.Space
    param_dim: int
    buffer_shape: tuple[int, ...]
    mask_dim: int | None = None

    def distribution(self, params: Tensor, mask: Tensor | None = None) -> Distribution:
        """The distribution of raw actions for ``params (B, param_dim)``; batch shape ``(B,)``."""
        raise NotImplementedError

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        """A raw action ``(B, *buffer_shape)`` drawn with ``generator``."""
        raise NotImplementedError

    def mode(self, dist: Distribution) -> Tensor:
        """The most likely raw action ``(B, *buffer_shape)``."""
        return dist.mode

    def log_prob(self, dist: Distribution, raw: Tensor) -> Tensor:
        """``log pi(a | s)`` of raw actions ``(B, *buffer_shape)``, shape ``(B,)``."""
        return dist.log_prob(raw)

    def to_env(self, raw: Tensor) -> np.ndarray:
        """Raw actions ``(B, *buffer_shape)`` -> a batch of actions of the env's space (numpy)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The space's JSON form (checkpoints)."""
        return self.space_to_json(self.space)

    @staticmethod
    def space_to_json(space: gym.Space) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def space_from_json(d: dict[str, Any]) -> gym.Space:
        raise NotImplementedError


class ActionDistribution:
    """A policy's action distribution at a batch of states: ``dist`` plus its head.

    ``dist`` is the plain ``torch.distributions`` object (give it to ``sg.expectation`` or
    ``sg.diagnostics``); the methods add what the rollout needs on top: a sample drawn from an explicit
    generator, the mode, and the log-probability of a stored raw action.
    """

    __slots__ = ("dist", "head")

    def __init__(self, dist: Distribution, head: ActionHead):
        self.dist = dist
        self.head = head

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        return self.head.sample(self.dist, generator)

    def mode(self) -> Tensor:
        return self.head.mode(self.dist)

    def log_prob(self, raw: Tensor) -> Tensor:
        return self.head.log_prob(self.dist, raw)

    def entropy(self) -> Tensor:
        return self.dist.entropy()


# --------------------------------------------------------------------------- discrete heads
class DiscreteHead(ActionHead):
    """``Discrete(n, start)``: a Categorical over ``n`` logits; a mask ``(B, n)`` forbids actions."""

    space_type = gym.spaces.Discrete

    def __init__(self, space: gym.spaces.Discrete):
        self.space = space
        self.param_dim = self.mask_dim = int(space.n)
        self.buffer_shape = ()
        self.offset = int(space.start) or None  # env action = raw + start

    def distribution(self, params: Tensor, mask: Tensor | None = None) -> Distribution:
        if mask is not None:
            params = params.masked_fill(~mask, MASKED_LOGIT)
        return Categorical(logits=params, validate_args=False)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        # Gumbel-max with the rollout's generator, so sampling is reproducible and resumable
        logits = dist.logits
        noise = draw(lambda shape, g: gumbel_noise(shape, logits, g), logits.shape, generator)
        return torch.argmax(logits + noise, dim=-1)

    def mode(self, dist: Distribution) -> Tensor:
        return torch.argmax(dist.logits, dim=-1)

    def log_prob(self, dist: Distribution, raw: Tensor) -> Tensor:
        # The gather of the core's Categorical fast path (estimators.base.sample_log_prob), not
        # Categorical.log_prob's broadcast. sample_log_prob takes sample-major (n, *batch) actions;
        # with one action per state (n = 1) its reshaping was measurable in the per-step rollout
        # (benchmarks/rl_throughput.py), so the gather is spelled out for this layout.
        return dist.logits.gather(-1, raw.long().unsqueeze(-1)).squeeze(-1)

    def to_env(self, raw: Tensor) -> np.ndarray:
        raw = raw.detach()
        return (raw if self.offset is None else raw + self.offset).numpy()

    @staticmethod
    def space_to_json(space: gym.Space) -> dict[str, Any]:
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}

    @staticmethod
    def space_from_json(d: dict[str, Any]) -> gym.Space:
        return gym.spaces.Discrete(d["n"], start=d.get("start", 0))


class MultiDiscreteHead(DiscreteHead):
    """``MultiDiscrete(nvec)``: independent Categoricals, one per component, in one padded tensor.

    The ``sum(nvec)`` logits are laid out in a ``(B, k, max(nvec))`` tensor whose unused slots hold
    :data:`MASKED_LOGIT` (probability exactly 0), so ``Independent(Categorical, 1)`` handles unequal
    ``nvec`` without a Python loop. A mask ``(B, sum(nvec))`` forbids actions per component.
    """

    space_type = gym.spaces.MultiDiscrete

    def __init__(self, space: gym.spaces.MultiDiscrete):
        if space.nvec.ndim != 1:
            raise UnsupportedSpaceError("MultiDiscrete action spaces must be 1-D (nvec of shape (k,)).")
        self.space = space
        nvec = [int(n) for n in space.nvec]
        self.param_dim = self.mask_dim = sum(nvec)
        self.buffer_shape = (len(nvec),)
        self.width = max(nvec)
        # slot of each logit in the flattened (k * width) padded layout
        self.slots = torch.cat([i * self.width + torch.arange(n) for i, n in enumerate(nvec)])
        self.offset = torch.as_tensor(space.start) if np.any(space.start) else None

    def distribution(self, params: Tensor, mask: Tensor | None = None) -> Distribution:
        if mask is not None:
            params = params.masked_fill(~mask, MASKED_LOGIT)
        padded = params.new_full((params.shape[0], self.buffer_shape[0] * self.width), MASKED_LOGIT)
        padded[:, self.slots] = params
        logits = padded.reshape(params.shape[0], -1, self.width)
        return Independent(Categorical(logits=logits, validate_args=False), 1, validate_args=False)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        return super().sample(dist.base_dist, generator)

    def mode(self, dist: Distribution) -> Tensor:
        return super().mode(dist.base_dist)

    def log_prob(self, dist: Distribution, raw: Tensor) -> Tensor:
        return super().log_prob(dist.base_dist, raw).sum(-1)

    @staticmethod
    def space_to_json(space: gym.Space) -> dict[str, Any]:
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}

    @staticmethod
    def space_from_json(d: dict[str, Any]) -> gym.Space:
        return gym.spaces.MultiDiscrete(d["nvec"], start=d.get("start"))


class MultiBinaryHead(ActionHead):
    """``MultiBinary(k)``: independent Bernoullis on ``k`` logits; raw actions are float 0/1."""

    space_type = gym.spaces.MultiBinary
    buffer_dtype = torch.float32

    def __init__(self, space: gym.spaces.MultiBinary):
        if np.asarray(space.n).ndim > 0 and len(space.shape) > 1:
            raise UnsupportedSpaceError("MultiBinary action spaces must be 1-D.")
        self.space = space
        self.param_dim = int(np.prod(space.shape))
        self.buffer_shape = (self.param_dim,)

    def distribution(self, params: Tensor, mask: Tensor | None = None) -> Distribution:
        return Independent(Bernoulli(logits=params, validate_args=False), 1, validate_args=False)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        logits = dist.base_dist.logits
        u = draw(lambda shape, g: uniform_like(shape, logits, g), logits.shape, generator)
        return (u < torch.sigmoid(logits)).to(logits.dtype)

    def mode(self, dist: Distribution) -> Tensor:
        logits = dist.base_dist.logits
        return (logits > 0).to(logits.dtype)

    def to_env(self, raw: Tensor) -> np.ndarray:
        return raw.detach().numpy().astype(self.space.dtype, copy=False)

    @staticmethod
    def space_to_json(space: gym.Space) -> dict[str, Any]:
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}

    @staticmethod
    def space_from_json(d: dict[str, Any]) -> gym.Space:
        return gym.spaces.MultiBinary(d["n"])


# --------------------------------------------------------------------------- continuous heads
class ClipBoxHead(ActionHead):
    """``Box``: a diagonal Gaussian over raw actions ``(B, d)``, clipped into the bounds for the env.

    ``log_std`` is either a state-independent parameter ``(d,)`` (owned by the policy, passed here)
    or, when it is None, the second half of ``params (B, 2d)``, clamped to ``[-20, 2]``.
    """

    space_type = gym.spaces.Box
    buffer_dtype = torch.float32

    def __init__(self, space: gym.spaces.Box, log_std: nn.Parameter | None = None):
        self.space = space
        d = int(np.prod(space.shape))
        self.param_dim = d if log_std is not None else 2 * d
        self.buffer_shape = (d,)
        self.log_std = log_std  # the policy registers it, so it is saved as ``policy.log_std``
        self.low = torch.as_tensor(space.low, dtype=torch.float32).reshape(-1)
        self.high = torch.as_tensor(space.high, dtype=torch.float32).reshape(-1)

    def distribution(self, params: Tensor, mask: Tensor | None = None) -> Distribution:
        if self.log_std is None:
            mean, log_std = params.chunk(2, dim=-1)
            log_std = log_std.clamp(-20.0, 2.0)
        else:
            mean, log_std = params, self.log_std
        return normal(mean, log_std)

    def sample(self, dist: Distribution, generator: torch.Generator | None = None) -> Tensor:
        base = dist.base_dist
        noise = draw(
            lambda shape, g: torch.randn(shape, generator=g, dtype=base.loc.dtype), base.loc.shape, generator
        )
        return (base.loc + noise * base.scale).detach()

    def mode(self, dist: Distribution) -> Tensor:
        return dist.base_dist.loc

    def to_env(self, raw: Tensor) -> np.ndarray:
        action = torch.maximum(torch.minimum(raw.detach(), self.high), self.low)
        return self._shaped(action)

    def _shaped(self, action: Tensor) -> np.ndarray:
        return action.reshape(action.shape[0], *self.space.shape).numpy().astype(self.space.dtype, copy=False)

    @staticmethod
    def space_to_json(space: gym.Space) -> dict[str, Any]:
        return {
            "type": "Box",
            "low": space.low.astype(np.float64).tolist(),
            "high": space.high.astype(np.float64).tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }

    @staticmethod
    def space_from_json(d: dict[str, Any]) -> gym.Space:
        return gym.spaces.Box(
            np.array(d["low"], dtype=d["dtype"]), np.array(d["high"], dtype=d["dtype"]), dtype=d["dtype"]
        )


class TanhBoxHead(ClipBoxHead):
    """``Box`` with finite bounds, tanh-squashed: ``a = low + (tanh(u) + 1) (high - low) / 2``.

    :meth:`log_prob` is the density of the env action ``a`` (change of variables, as in Haarnoja et
    al., 2018, "Soft Actor-Critic", appendix C): ``log N(u) - sum log(1 - tanh(u)^2) - sum
    log((high - low) / 2)``, the Jacobian term from ``torch.distributions.TanhTransform``. The
    correction does not depend on the policy's parameters, so the score (and any gradient) is the
    Gaussian's; the entropy is that of ``u`` (the squashed entropy has no closed form).
    """

    def __init__(self, space: gym.spaces.Box, log_std: nn.Parameter | None = None):
        super().__init__(space, log_std)
        if not (torch.isfinite(self.low).all() and torch.isfinite(self.high).all()):
            raise ValueError(f"squash=True needs finite action bounds; got {space!r}")
        self.log_scale = torch.log((self.high - self.low) / 2)

    def log_prob(self, dist: Distribution, raw: Tensor) -> Tensor:
        log_det = _TANH.log_abs_det_jacobian(raw, None).sum(-1)  # torch's stable 2(log 2 - u - softplus(-2u))
        return dist.log_prob(raw) - log_det - self.log_scale.sum()

    def to_env(self, raw: Tensor) -> np.ndarray:
        return self._shaped(self.low + (torch.tanh(raw.detach()) + 1.0) * 0.5 * (self.high - self.low))


_TANH = TanhTransform()


def normal(mean: Tensor, log_std: Tensor) -> Distribution:
    """``Independent(Normal(mean, exp(log_std)), 1)``: a diagonal Gaussian with batch shape ``(B,)``."""
    return Independent(
        Normal(mean, log_std.exp().expand_as(mean), validate_args=False), 1, validate_args=False
    )


# --------------------------------------------------------------------------- the one lookup
#: Head class per action-space type (a Box head is chosen by ``squash``: see :func:`action_head`).
HEADS: dict[type[gym.Space], type[ActionHead]] = {
    head.space_type: head for head in (DiscreteHead, MultiDiscreteHead, MultiBinaryHead, ClipBoxHead)
}


def lookup(table: dict[type[gym.Space], Any], space: gym.Space) -> Any:
    """``table``'s entry for ``space``'s type (or the nearest base class), or None."""
    for cls in type(space).__mro__:
        if cls in table:
            return table[cls]
    return None


def _head_class(space: gym.Space) -> type[ActionHead] | None:
    return lookup(HEADS, space)


def action_head(
    space: gym.Space, squash: bool = False, state_dependent_std: bool = False, log_std_init: float = 0.0
) -> ActionHead:
    """The head for ``space``; raises :class:`UnsupportedSpaceError` for an unsupported one.

    Box only: ``squash`` tanh-squashes actions into the bounds (else they are clipped);
    ``state_dependent_std`` has the actor output the log-std, else it is a parameter ``(d,)``
    starting at ``log_std_init`` (``head.log_std``, for the policy to register).
    """
    cls = _head_class(space)
    if cls is None:
        raise UnsupportedSpaceError(unsupported_message(space, "action space"))
    if cls is ClipBoxHead:
        log_std = None
        if not state_dependent_std:
            log_std = nn.Parameter(torch.full((int(np.prod(space.shape)),), float(log_std_init)))
        return (TanhBoxHead if squash else ClipBoxHead)(space, log_std)
    return cls(space)


# --------------------------------------------------------------------------- JSON (checkpoints)
def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a supported space (for checkpoints; observation spaces too)."""
    cls = _head_class(space)
    if cls is None:
        raise UnsupportedSpaceError(unsupported_message(space, "space"))
    return cls.space_to_json(space)


def space_from_json(d: dict[str, Any]) -> gym.Space:
    """The space :func:`space_to_json` described (the format of every saved checkpoint)."""
    for space_type, cls in HEADS.items():
        if d.get("type") == space_type.__name__:
            return cls.space_from_json(d)
    raise ValueError(f"unknown space description in checkpoint: {d!r}")
