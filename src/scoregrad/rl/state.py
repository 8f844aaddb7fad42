"""The training state of a run: what a checkpoint holds, how it is checked and restored.

A run checkpoint is ``(tensors, meta)``: safetensors weights and RNG/optimiser state, and a JSON
document (``checkpoint.json``) whose schema :func:`check_run_checkpoint` checks before anything uses
it. :func:`trainer_state` gathers it from a :class:`~scoregrad.rl.trainer.Trainer` so that a
resumed run on CPU continues bitwise identically; :func:`restore_trainer_state` puts it back. The
format is that of every checkpoint written so far: old checkpoints keep loading.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from scoregrad.rl.checkpoint import CheckpointError, check_schema, optimizer_state, restore_optimizer_state
from scoregrad.rl.config import CONFIGS, CommonConfig, ConfigError, config_for
from scoregrad.rl.normalization import ObservationNormalizer
from scoregrad.rl.policies import space_from_json
from scoregrad.rl.rollout import _decode, _encode, get_env_state, set_env_state, warn_not_resumable

if TYPE_CHECKING:
    from scoregrad.rl.agent import Agent
    from scoregrad.rl.trainer import Trainer

__all__ = [
    "agent_state",
    "config_json",
    "load_policy",
    "check_run_checkpoint",
    "config_from_meta",
    "trainer_state",
    "restore_trainer_state",
]


#: Where ``keep_best`` saves the best policy inside a run directory (an agent that ``rl.load`` reads).
BEST_DIR = "best"


def agent_state(agent: Agent) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The policy's weights and the JSON metadata that rebuilds it (``training`` is None)."""
    tensors = {f"policy.{k}": v.clone() for k, v in agent.policy.state_dict().items()}
    meta = {
        "algo": agent.algo,
        "env_id": agent.env_id,
        "config": config_json(agent.config),
        "architecture": agent.policy.arch_json(),
        "obs_normalizer": None if agent.obs_normalizer is None else agent.obs_normalizer.state_dict(),
        "training": None,
    }
    return tensors, meta


def config_json(config: CommonConfig) -> dict[str, Any]:
    """A config as JSON (tuples as lists)."""
    d = asdict(config)
    d["hidden_sizes"] = list(d["hidden_sizes"])
    return d


def load_policy(agent: Agent, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Load the checkpoint's policy weights (and observation normaliser) into ``agent``."""
    state = {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
    try:
        agent.policy.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit this policy: {err}") from err
    if meta.get("obs_normalizer") is not None:
        if agent.obs_normalizer is None:
            agent.obs_normalizer = ObservationNormalizer((agent.policy.obs_dim,))
        agent.obs_normalizer.load_state_dict(meta["obs_normalizer"])


#: What an ES run's checkpoint.json holds under "training" (see scoregrad.rl.es).
ES_TRAINING_SCHEMA = {
    "seed": int,
    "total_steps": int,
    "global_step": int,
    "iteration": int,
    "recent_returns": list,
    "es": dict,
    "param_groups": list,
    "env_spec": (str, type(None)),
}


def check_run_checkpoint(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Validate a run checkpoint's metadata and tensors before anything uses them.

    Raises :class:`~scoregrad.rl.checkpoint.CheckpointError` naming the first missing key, wrong
    type, invalid config value or unknown space, so an edited ``checkpoint.json`` gives one clear line.
    """
    check_schema(
        meta,
        {
            "algo": str,
            "env_id": (str, type(None)),
            "config": dict,
            "architecture": {"observation_space": dict, "action_space": dict, "policy": dict},
            "obs_normalizer": (dict, type(None)),
            "training": (dict, type(None)),
        },
        "checkpoint.json",
    )
    if meta["algo"] not in CONFIGS:
        raise CheckpointError(f"checkpoint.json.algo must be one of {sorted(CONFIGS)}; got {meta['algo']!r}")
    config_from_meta(meta)
    for key in ("observation_space", "action_space"):
        try:
            space_from_json(meta["architecture"][key])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint.json.architecture.{key} is not a valid space: {err}") from err
    if not any(k.startswith("policy.") for k in tensors):
        raise CheckpointError("the checkpoint's tensors hold no policy weights")
    if meta["training"] is None:
        return
    if meta["algo"] == "es":  # policy search keeps the strategy's state instead of a rollout's
        check_schema(meta["training"], ES_TRAINING_SCHEMA, "checkpoint.json.training")
        return
    check_schema(
        meta["training"],
        {
            "seed": int,
            "total_steps": int,
            "global_step": int,
            "iteration": int,
            "num_updates": int,
            "episodes_logged": int,
            "finished": list,
            "recent_returns": list,
            "prev_done": list,
            "episode_return": list,
            "episode_length": list,
            "param_groups": list,
            "reward_normalizer": (dict, type(None)),
            "env_state": (dict, type(None)),
            "env_spec": (str, type(None)),
        },
        "checkpoint.json.training",
    )
    for key in ("rng.torch", "rollout.obs"):
        if key not in tensors:
            raise CheckpointError(f"the checkpoint's tensors lack {key!r}, which a resume needs")


def config_from_meta(meta: dict[str, Any]) -> CommonConfig:
    """The saved run's config, or a :class:`CheckpointError` naming what is wrong with it."""
    try:
        return config_for(meta["algo"], **meta["config"])
    except (ConfigError, TypeError) as err:
        raise CheckpointError(f"checkpoint.json.config is invalid: {err}") from err


def trainer_state(trainer: Trainer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Everything needed to continue a run bitwise identically: ``(tensors, json_metadata)``.

    Tensors: ``policy.*`` weights, ``optim.{i}.*`` Adam moments, ``rng.torch`` (the run's generator),
    ``rollout.obs`` ``(N, obs_dim)`` and ``rollout.action_mask``. Metadata: :func:`agent_state`'s,
    plus ``training``: counters, per-env episode state, optimiser hyper-parameters, normaliser, env
    state. The format is checked by :func:`check_run_checkpoint`.
    """
    tensors, meta = agent_state(trainer.agent)
    optim_tensors, param_groups = optimizer_state(trainer.optimizer.state_dict())
    tensors.update(optim_tensors)
    tensors["rng.torch"] = trainer.generator.get_state()
    r = _all_envs(trainer)
    tensors["rollout.obs"] = r["obs"]
    if r["action_mask"] is not None:
        tensors["rollout.action_mask"] = r["action_mask"]
    env_state = r["env_state"]
    if env_state is None and trainer._env_state_ok:
        trainer._env_state_ok = False
        if trainer.rank == 0:
            warn_not_resumable(
                type(trainer.envs).__name__
                if trainer.world == 1 or get_env_state(trainer.envs) is None
                else f"{type(trainer.envs).__name__} keeps one RNG for its envs, which processes cannot split"
            )
    meta["training"] = {
        "seed": trainer.seed,
        "total_steps": trainer.total_steps,
        "global_step": trainer.rollout.global_step,
        "iteration": trainer.iteration,
        "num_updates": trainer.num_updates,
        "episodes_logged": trainer.episodes_logged,
        "finished": list(trainer.rollout.finished[-100:]),
        "recent_returns": list(trainer.recent_returns),
        "prev_done": r["prev_done"].tolist(),
        "episode_return": r["episode_return"].tolist(),
        "episode_length": r["episode_length"].tolist(),
        "param_groups": param_groups,
        "reward_normalizer": None
        if trainer.reward_normalizer is None
        else {**trainer.reward_normalizer.state_dict(), "returns": r["reward_returns"].tolist()},
        "env_state": env_state,
        "env_spec": trainer.env_spec,
        "wall_time": trainer.wall_time,
        "best": None
        if trainer.best_step is None
        else {"step": trainer.best_step, "return": trainer.best_return},
    }
    return tensors, meta


def _all_envs(trainer: Trainer) -> dict[str, Any]:
    """The per-env rollout state of every env of the run: this process's, or under torchrun those of
    all processes side by side (what one process with ``num_envs`` envs would hold; two collectives)."""
    ro = trainer.rollout
    env_state = get_env_state(trainer.envs)
    local = {
        "obs": ro.obs.clone(),
        "action_mask": None if ro.action_mask is None else ro.action_mask.clone(),
        "prev_done": ro.prev_done.copy(),
        "episode_return": ro.episode_return.copy(),
        "episode_length": ro.episode_length.copy(),
        "env_state": env_state,
        "reward_returns": None
        if trainer.reward_normalizer is None
        else trainer.reward_normalizer.returns.copy(),
    }
    if trainer.world == 1:
        return local
    from scoregrad import distributed

    per_env = [local["obs"], torch.from_numpy(local["prev_done"]), torch.from_numpy(local["episode_return"])]
    per_env += [torch.from_numpy(local["episode_length"])]
    if local["reward_returns"] is not None:
        per_env.append(torch.from_numpy(local["reward_returns"]))
    if local["action_mask"] is not None:
        per_env.append(local["action_mask"])
    g = distributed.all_gather_cat(per_env)
    rest = g[4:]
    return {
        "obs": g[0],
        "prev_done": g[1].numpy(),
        "episode_return": g[2].numpy(),
        "episode_length": g[3].numpy(),
        "reward_returns": rest.pop(0).numpy() if local["reward_returns"] is not None else None,
        "action_mask": rest.pop(0) if local["action_mask"] is not None else None,
        "env_state": merge_env_states(distributed.all_gather_objects(env_state)),
    }


def merge_env_states(states: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The processes' sync-vector-env states as one env's of all their envs (None if any is not sync)."""
    if any(st is None or st["kind"] != "sync" for st in states):
        return None  # native vector envs (CartPole's) keep one RNG for all their envs: not splittable
    autoreset = np.concatenate([_decode(st["vector"]["_autoreset_envs"]) for st in states])
    return {
        "kind": "sync",
        "vector": {"_autoreset_envs": _encode(autoreset)},
        "envs": [e for st in states for e in st["envs"]],
    }


def split_env_state(state: dict[str, Any] | None, rows: slice) -> dict[str, Any] | None:
    """This process's ``rows`` of a saved sync-vector-env state (None where it cannot be split)."""
    if state is None or state.get("kind") != "sync":
        return None
    autoreset = _decode(state["vector"]["_autoreset_envs"])[rows]
    return {"kind": "sync", "vector": {"_autoreset_envs": _encode(autoreset)}, "envs": state["envs"][rows]}


def restore_trainer_state(trainer: Trainer, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`trainer_state` produced into a trainer built with the same config.

    Under torchrun each process takes its rows of the saved envs, so a run saved by any number of
    processes resumes on any number that divides ``num_envs``.
    """
    load_policy(trainer.agent, tensors, meta)
    tr = meta["training"]
    opt = restore_optimizer_state(trainer.optimizer.state_dict(), tensors, tr["param_groups"])
    trainer.optimizer.load_state_dict(opt)
    trainer.generator.set_state(tensors["rng.torch"])
    mine = slice(None)
    if trainer.world > 1:
        from scoregrad import distributed

        mine = distributed.shard(len(tr["prev_done"]))
    mask = tensors.get("rollout.action_mask")
    trainer.rollout.obs = tensors["rollout.obs"][mine].clone()
    trainer.rollout.action_mask = None if mask is None else mask[mine].clone()
    trainer.rollout.prev_done = np.array(tr["prev_done"], dtype=bool)[mine]
    trainer.rollout.episode_return = np.array(tr["episode_return"], dtype=np.float64)[mine]
    trainer.rollout.episode_length = np.array(tr["episode_length"], dtype=np.int64)[mine]
    trainer.rollout.global_step = tr["global_step"]
    trainer.rollout.finished = [tuple(x) for x in tr["finished"]]
    trainer.episodes_logged = len(trainer.rollout.finished)
    trainer.recent_returns = deque(tr["recent_returns"], maxlen=20)
    trainer.iteration, trainer.num_updates = tr["iteration"], tr["num_updates"]
    trainer.wall_time = float(tr.get("wall_time", 0.0))
    best = tr.get("best")
    if best is not None:  # keep_best: what later evaluations must beat, and the best policy saved so far
        trainer.best_step, trainer.best_return = int(best["step"]), float(best["return"])
        if trainer.out is not None and (trainer.out / BEST_DIR).is_dir():
            from scoregrad.rl.agent import load

            trainer.agent.best = load(trainer.out / BEST_DIR)
    trainer._resumed = True
    if trainer.reward_normalizer is not None and tr["reward_normalizer"] is not None:
        trainer.reward_normalizer.load_state_dict(tr["reward_normalizer"])
        trainer.reward_normalizer.returns = trainer.reward_normalizer.returns[mine]
    trainer.start_statistics()
    restored = False
    env_state = tr["env_state"] if trainer.world == 1 else split_env_state(tr["env_state"], mine)
    if env_state is not None:
        try:
            set_env_state(trainer.envs, env_state)
            restored = True
        except (ValueError, AttributeError, KeyError, TypeError):
            warn_not_resumable("the env's structure differs from the saved one")
    else:
        warn_not_resumable("not saved in the checkpoint")
    if not restored:
        trainer.rollout.prev_done[:] = False
        obs, info = trainer.envs.reset(seed=trainer.seed + tr["iteration"] + trainer.rank * trainer.num_envs)
        trainer.rollout.obs = trainer._obs_fn(obs)
        trainer.rollout.action_mask = trainer._mask_fn(obs, info)
