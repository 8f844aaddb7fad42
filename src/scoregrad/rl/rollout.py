"""Vector environments and rollout collection.

Environments are Gymnasium vector envs built by :func:`make_vector_env` from an id, a
``gymnasium.Env`` or a factory. Rollouts rely on Gymnasium 1.x's default ``NEXT_STEP`` autoreset:
the observation returned by a done step is the true final observation, and the following step is
an autoreset step that is recorded with ``valid = False`` (see :mod:`scoregrad.rl.returns`).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from scoregrad.distributed import ShardedGenerator

__all__ = [
    "NonFiniteError",
    "make_vector_env",
    "env_id_of",
    "RolloutBuffer",
    "RolloutState",
    "collect_rollout",
    "get_env_state",
    "set_env_state",
]

EnvLike = str | gym.Env | gym.vector.VectorEnv | Callable[[], gym.Env]


class NonFiniteError(FloatingPointError):
    """A reward, observation or gradient was NaN or infinite."""


def env_id_of(env: EnvLike) -> str | None:
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else None


def registered_id(env_id: str) -> str:
    """``"module:Env-v0"`` -> ``"Env-v0"`` after importing ``module`` (as ``gymnasium.make`` does).

    The module is where a user's own env registers itself; plain ids pass through unchanged.
    """
    if ":" not in env_id:
        return env_id
    module, name = env_id.split(":", 1)
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise gym.error.Error(f"env {env_id!r}: cannot import module {module!r} ({err})") from err
    return name


def make_vector_env(env: EnvLike, num_envs: int, vectorization_mode: str = "auto") -> gym.vector.VectorEnv:
    """Build a ``NEXT_STEP``-autoreset vector env.

    Args:
        env: an env id (``"CartPole-v1"``), a ``gymnasium.Env`` (re-created from its spec for
            ``num_envs > 1``), a zero-argument factory returning a ``gymnasium.Env``, or an
            existing vector env (used as is).
        num_envs: number of parallel copies.
        vectorization_mode: ``"auto"`` (the env's native vectorised implementation where it has
            one, e.g. CartPole, else ``"sync"``), ``"vector_entry_point"``, ``"sync"`` or
            ``"async"``.
    """
    if isinstance(env, gym.vector.VectorEnv):
        return env
    if isinstance(env, str):
        env = registered_id(env)
        spec = gym.spec(env)
        mode = vectorization_mode
        if mode == "auto":
            mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
        return gym.make_vec(env, num_envs=num_envs, vectorization_mode=mode)
    if isinstance(env, gym.Env):
        if num_envs == 1:
            return gym.vector.SyncVectorEnv([lambda: env])
        if env.spec is None:
            raise ValueError(
                "a gymnasium.Env instance can only be copied through its spec; this one has none. "
                "Pass a factory (lambda: MyEnv()) instead, or num_envs=1."
            )
        spec = env.spec

        def factory() -> gym.Env:
            return gym.make(spec)

        env = factory
    if callable(env):
        mode = "sync" if vectorization_mode in ("auto", "vector_entry_point") else vectorization_mode
        cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
        return cls([env] * num_envs)
    raise TypeError(f"env must be an id, a gymnasium.Env, a factory or a VectorEnv; got {type(env).__name__}")


# --------------------------------------------------------------------------- env state (for resume)
_STATIC = {
    "action_space",
    "observation_space",
    "single_action_space",
    "single_observation_space",
    "spec",
    "metadata",
    "render_mode",
    "screen",
    "clock",
    "isopen",
    "_np_random",
    "np_random",
    "_np_random_seed",
    "_cached_spec",
    "_saved_kwargs",
    "_action_space",
    "_observation_space",
    "_metadata",
    "env",
    "viewer",
    "_previous_data",  # PassiveEnvChecker bookkeeping, not env state
}


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, np.generic):
        return {"__npscalar__": value.item(), "dtype": str(value.dtype)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(type(value).__name__)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__tuple__" in value:
            return tuple(_decode(v) for v in value["__tuple__"])
        if "__npscalar__" in value:
            return np.dtype(value["dtype"]).type(value["__npscalar__"])
    return value


def _object_state(obj: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in _STATIC or callable(value) and not isinstance(value, np.ndarray):
            continue
        try:
            state[name] = _encode(value)
        except TypeError as err:
            raise TypeError(f"{type(obj).__name__}.{name}") from err
    rng = getattr(obj, "_np_random", None)
    if rng is not None:
        state["__rng__"] = rng.bit_generator.state
    return state


def _set_object_state(obj: Any, state: dict[str, Any]) -> None:
    # Accept exactly the attributes this env itself would save, with values of the same kind: an
    # edited checkpoint cannot set anything else on the env (its constants, its methods).
    expected = _object_state(obj)
    if set(state) != set(expected):
        extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        raise ValueError(
            f"saved env state of {type(obj).__name__} differs: unexpected {extra}, missing {missing}"
        )
    for name, value in state.items():
        if name != "__rng__" and not _same_kind(_decode(value), _decode(expected[name])):
            raise ValueError(f"saved env state {type(obj).__name__}.{name} has a different type or shape")
    for name, value in state.items():
        if name == "__rng__":
            obj._np_random.bit_generator.state = value
        else:
            setattr(obj, name, _decode(value))


def _same_kind(saved: Any, current: Any) -> bool:
    if isinstance(current, np.ndarray):
        return isinstance(saved, np.ndarray) and saved.shape == current.shape and saved.dtype == current.dtype
    if isinstance(current, tuple):
        return (
            isinstance(saved, tuple)
            and len(saved) == len(current)
            and all(_same_kind(a, b) for a, b in zip(saved, current, strict=True))
        )
    if current is None or saved is None:
        return True  # e.g. an env's state is None before its first reset
    if isinstance(current, (bool, np.bool_)):
        return isinstance(saved, (bool, np.bool_))
    if isinstance(current, (int, float, np.number)):
        return isinstance(saved, (int, float, np.number)) and not isinstance(saved, bool)
    return type(saved) is type(current)


def _wrapper_chain(env: gym.Env) -> list[Any]:
    chain = [env]
    while hasattr(chain[-1], "env"):
        chain.append(chain[-1].env)
    return chain


def get_env_state(envs: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """A JSON-able snapshot of a vector env's full state, or None if it cannot be captured.

    Works for envs whose state is plain numbers and numpy arrays (classic control, CartPole's native
    vector env, toy-text); physics engines (Box2D, MuJoCo) and async envs return None, and a resumed
    run then restarts their episodes (not bitwise identical to an uninterrupted run).
    """
    try:
        if isinstance(envs, gym.vector.SyncVectorEnv):
            vec = {k: _encode(getattr(envs, k)) for k in ("_autoreset_envs",)}
            subs = [[_object_state(w) for w in _wrapper_chain(e)] for e in envs.envs]
            return {"kind": "sync", "vector": vec, "envs": subs}
        if isinstance(envs, gym.vector.AsyncVectorEnv):
            return None
        return {"kind": "native", "chain": [_object_state(w) for w in _wrapper_chain(envs)]}
    except TypeError:
        return None


def set_env_state(envs: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Restore a snapshot from :func:`get_env_state` into a freshly reset env of the same kind."""
    if state["kind"] == "sync":
        if set(state["vector"]) != {"_autoreset_envs"}:
            raise ValueError(f"saved vector env state has unexpected keys {sorted(state['vector'])}")
        autoreset = _decode(state["vector"]["_autoreset_envs"])
        if not _same_kind(autoreset, envs._autoreset_envs):
            raise ValueError("saved vector env state _autoreset_envs has a different type or shape")
        envs._autoreset_envs = autoreset
        for e, chain in zip(envs.envs, state["envs"], strict=True):
            for w, s in zip(_wrapper_chain(e), chain, strict=True):
                _set_object_state(w, s)
    else:
        for w, s in zip(_wrapper_chain(envs), state["chain"], strict=True):
            _set_object_state(w, s)


# --------------------------------------------------------------------------- rollout
@dataclass
class RolloutBuffer:
    """Time-major storage for one rollout of ``T`` steps on ``N`` envs."""

    obs: Tensor  # (T, N, obs_dim) preprocessed (and normalised) observations
    actions: Tensor  # (T, N, *raw_action_shape) raw sampled actions
    log_probs: Tensor  # (T, N)
    values: Tensor  # (T, N)
    rewards: Tensor  # (T, N) (normalised if reward normalisation is on)
    terminated: Tensor  # (T, N) bool
    truncated: Tensor  # (T, N) bool
    valid: Tensor  # (T, N) bool, False at autoreset and skipped steps
    action_masks: Tensor | None  # (T, N, n) bool or None
    last_value: Tensor = field(default_factory=lambda: torch.zeros(0))  # (N,) V(obs after the rollout)
    start_done: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))  # (N,) see below

    @classmethod
    def allocate(cls, T: int, N: int, obs_dim: int, action_shape: tuple[int, ...], action_dtype, mask_dim):
        return cls(
            obs=torch.zeros(T, N, obs_dim),
            actions=torch.zeros(T, N, *action_shape, dtype=action_dtype),
            log_probs=torch.zeros(T, N),
            values=torch.zeros(T, N),
            rewards=torch.zeros(T, N),
            terminated=torch.zeros(T, N, dtype=torch.bool),
            truncated=torch.zeros(T, N, dtype=torch.bool),
            valid=torch.zeros(T, N, dtype=torch.bool),
            action_masks=None if mask_dim is None else torch.ones(T, N, mask_dim, dtype=torch.bool),
        )

    def next_values(self) -> Tensor:
        """``(T, N)`` value of the observation each step led to (NEXT_STEP autoreset)."""
        return torch.cat([self.values[1:], self.last_value.unsqueeze(0)], dim=0)


@dataclass
class RolloutState:
    """What carries over between rollouts: the current observation and per-env episode counters."""

    obs: Tensor  # (N, obs_dim) preprocessed current observation
    prev_done: np.ndarray  # (N,) bool: the next step is an autoreset step
    action_mask: Tensor | None  # (N, n) bool
    episode_return: np.ndarray  # (N,) float64, raw rewards
    episode_length: np.ndarray  # (N,) int64
    global_step: int = 0
    finished: list[tuple[int, float, int]] = field(default_factory=list)  # (step, return, length)


def _check_finite(
    reward: np.ndarray, next_obs: np.ndarray, env_step: int, t: int, on_non_finite: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Raise :class:`NonFiniteError` on a NaN/inf reward or observation ``(N, ...)``, or with
    ``on_non_finite="skip"`` zero it and return ``skip (N,)`` marking the env's transition invalid
    (None when every value is finite: one ``isfinite`` per array, since this runs every env step)."""
    non_finite = [
        (what, arr)
        for what, arr in (("reward", reward), ("observation", next_obs))
        if arr.dtype.kind == "f" and not np.isfinite(arr).all()
    ]
    if not non_finite:
        return reward, next_obs, None
    n = reward.shape[0]
    skip = np.zeros(n, dtype=bool)
    for what, arr in non_finite:
        bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
        if on_non_finite != "skip":
            raise NonFiniteError(
                f"non-finite {what} at env step {env_step} (rollout step {t}), env index "
                f"{int(np.flatnonzero(bad)[0])}; no update was made with it. Pass on_non_finite='skip' "
                "to drop such transitions instead."
            )
        skip |= bad
        if what == "reward":
            reward = np.where(bad, 0.0, reward)
        else:
            next_obs = np.where(np.isfinite(next_obs), next_obs, 0.0).astype(next_obs.dtype)
    return reward, next_obs, skip


@torch.no_grad()  # once for the whole rollout, not once per step
def collect_rollout(
    envs: gym.vector.VectorEnv,
    policy,
    buffer: RolloutBuffer,
    state: RolloutState,
    generator: torch.Generator | ShardedGenerator,
    obs_fn: Callable[[np.ndarray], Tensor],
    mask_fn: Callable[[np.ndarray, dict], Tensor | None],
    reward_fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    on_non_finite: str = "raise",
    world_size: int = 1,
) -> None:
    """Fill ``buffer`` with ``T`` steps of ``policy`` on ``envs``, advancing ``state`` in place.

    ``state.global_step`` counts the env steps of all ``world_size`` processes (each steps ``envs``);
    ``generator`` may be a :class:`~scoregrad.distributed.ShardedGenerator`.

    ``obs_fn`` preprocesses and normalises a raw observation batch into ``(N, obs_dim)``;
    ``mask_fn`` returns the action mask for it (or None); ``reward_fn`` normalises rewards.
    Non-finite rewards or observations raise :class:`NonFiniteError` naming the env step and env
    index, or with ``on_non_finite="skip"`` are zeroed and their transition marked invalid.
    """
    T, N = buffer.rewards.shape
    # whether each env's first step here is an autoreset step (where the rollout's episodes begin)
    buffer.start_done = torch.from_numpy(state.prev_done.copy())
    # Each step's tensors are kept in lists and its env outputs in numpy arrays, and all are written
    # into the buffer once at the end: a tensor write per step and field cost more (same values).
    observations, actions, log_probs, values = [], [], [], []
    rewards = np.empty((T, N), dtype=np.float32)
    terminateds, truncateds, valids = (np.empty((T, N), dtype=bool) for _ in range(3))
    for t in range(T):
        obs = state.obs
        dist = policy.distribution(obs, state.action_mask)
        action = dist.sample(generator)
        observations.append(obs)
        actions.append(action)
        log_probs.append(dist.log_prob(action))
        values.append(policy.value(obs))
        if buffer.action_masks is not None and state.action_mask is not None:
            buffer.action_masks[t] = state.action_mask
        valid = ~state.prev_done
        next_obs, reward, terminated, truncated, info = envs.step(policy.to_env_action(action))
        reward = np.asarray(reward, dtype=np.float64)
        next_obs = np.asarray(next_obs)
        env_step = state.global_step + (t + 1) * envs.num_envs * world_size
        reward, next_obs, skip = _check_finite(reward, next_obs, env_step, t, on_non_finite)
        if skip is not None:
            valid = valid & ~skip
        done = terminated | truncated
        # episode bookkeeping on raw rewards
        state.episode_return += np.where(valid, reward, 0.0)
        state.episode_length += valid
        if done.any():
            for i in np.flatnonzero(done):
                state.finished.append(
                    (env_step, float(state.episode_return[i]), int(state.episode_length[i]))
                )
            state.episode_return[done] = 0.0
            state.episode_length[done] = 0
        if reward_fn is not None:
            reward = reward_fn(reward, done, valid)
        rewards[t] = reward  # float32, rounded as astype(np.float32) rounds
        terminateds[t], truncateds[t], valids[t] = terminated, truncated, valid
        state.obs = obs_fn(next_obs)
        state.action_mask = mask_fn(next_obs, info)
        state.prev_done = done
    for tensor, steps in (
        (buffer.obs, torch.stack(observations)),
        (buffer.actions, torch.stack(actions)),
        (buffer.log_probs, torch.stack(log_probs)),
        (buffer.values, torch.stack(values)),
        (buffer.rewards, torch.from_numpy(rewards)),
        (buffer.terminated, torch.from_numpy(terminateds)),
        (buffer.truncated, torch.from_numpy(truncateds)),
        (buffer.valid, torch.from_numpy(valids)),
    ):
        tensor.copy_(steps)
    buffer.last_value = policy.value(state.obs)
    state.global_step += T * envs.num_envs * world_size


def warn_not_resumable(reason: str) -> None:
    warnings.warn(
        f"environment state could not be captured ({reason}); a resumed run restarts the episodes "
        "and is not bitwise identical to an uninterrupted one",
        RuntimeWarning,
        stacklevel=2,
    )
