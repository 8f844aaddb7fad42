"""The trainer: REINFORCE, A2C and PPO in one readable loop.

One iteration = collect a rollout (policy samples, env steps) -> returns and advantages (pure
functions of :mod:`scoregrad.rl.returns`) -> update (losses of :mod:`scoregrad.rl.losses`, all
built on :mod:`scoregrad.surrogate`). The algorithms differ only in the update phase:

* ``reinforce`` (Williams, 1992): one gradient step on ``-(G - b) log pi``;
* ``a2c`` (Mnih et al., 2016): one step on GAE advantages with a learned critic;
* ``ppo`` (Schulman et al., 2017): several epochs of minibatches on the clipped ratio objective.

Layout in the style of CleanRL's ``ppo.py``; state that must survive a restart (weights,
optimiser, RNG, env state, normalisers, counters) is gathered in :meth:`Trainer.state` so that a
resumed run on CPU continues bitwise identically.
"""

from __future__ import annotations

import csv
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from scoregrad.rl import losses, returns
from scoregrad.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scoregrad.rl.config import CONFIGS, CommonConfig, config_for
from scoregrad.rl.normalization import ObservationNormalizer, RewardNormalizer
from scoregrad.rl.policies import ActorCritic, PolicyConfig, space_from_json
from scoregrad.rl.presets import preset_for
from scoregrad.rl.rollout import (
    EnvLike,
    NonFiniteError,
    RolloutBuffer,
    RolloutState,
    collect_rollout,
    env_id_of,
    get_env_state,
    make_vector_env,
    set_env_state,
    warn_not_resumable,
)

__all__ = ["Agent", "Trainer", "train", "evaluate", "load", "resume"]


def _policy_config(config: CommonConfig) -> PolicyConfig:
    return PolicyConfig(
        hidden_sizes=tuple(config.hidden_sizes),
        activation=config.activation,
        log_std_init=config.log_std_init,
        state_dependent_std=config.state_dependent_std,
        squash=config.squash,
    )


class Agent:
    """A trained policy: ``act``, ``save``; ``rl.evaluate(agent, env)`` and ``rl.load(path)``."""

    def __init__(
        self,
        policy: ActorCritic,
        algo: str,
        config: CommonConfig,
        env_id: str | None = None,
        obs_normalizer: ObservationNormalizer | None = None,
    ):
        self.policy = policy
        self.algo = algo
        self.config = config
        self.env_id = env_id
        self.obs_normalizer = obs_normalizer
        self.trainer: Trainer | None = None  # set while/after training, so save() can resume
        self._checkpoint: tuple[dict[str, Tensor], dict[str, Any]] | None = None

    def preprocess(self, obs: np.ndarray) -> Tensor:
        """Raw batched observations ``(B, *obs_shape)`` -> policy input ``(B, obs_dim)``."""
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer(np.asarray(obs, np.float64).reshape(len(obs), -1), update=False)
        return self.policy.preprocess(torch.as_tensor(np.asarray(obs)))

    @torch.no_grad()
    def act(self, observation: Any, deterministic: bool = False, action_mask: Any = None) -> Any:
        """The action for one observation (or a batch with a leading axis), in the env's format.

        Args:
            observation: one observation of the env's observation space, or a batch ``(B, ...)``.
            deterministic: take the distribution's mode instead of sampling.
            action_mask: optional boolean mask of allowed actions (Discrete/MultiDiscrete).
        """
        obs = np.asarray(observation)
        single_shape = self.policy.observation_space.shape
        batched = obs.ndim == len(single_shape) + 1
        if not batched:
            obs = obs[None]
        mask = None
        if action_mask is not None:
            mask = torch.as_tensor(np.asarray(action_mask, dtype=bool))
            mask = mask if batched else mask[None]
        dist = self.policy.distribution(self.preprocess(obs), mask)
        action = self.policy.to_env_action(dist.mode() if deterministic else dist.sample())
        return action if batched else action[0]

    def save(self, path: str | Path) -> Path:
        """Write a checkpoint directory (safetensors + JSON) that :func:`load` and ``--resume`` read."""
        if self.trainer is not None:
            tensors, meta = self.trainer.state()
        elif self._checkpoint is not None:
            tensors, meta = self._checkpoint
        else:
            tensors, meta = _agent_state(self)
        return save_checkpoint(path, tensors, meta)


def _agent_state(agent: Agent) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors = {f"policy.{k}": v.clone() for k, v in agent.policy.state_dict().items()}
    meta = {
        "algo": agent.algo,
        "env_id": agent.env_id,
        "config": _config_json(agent.config),
        "architecture": agent.policy.arch_json(),
        "obs_normalizer": None if agent.obs_normalizer is None else agent.obs_normalizer.state_dict(),
        "training": None,
    }
    return tensors, meta


def _config_json(config: CommonConfig) -> dict[str, Any]:
    d = asdict(config)
    d["hidden_sizes"] = list(d["hidden_sizes"])
    return d


class Trainer:
    """Owns the env, agent, optimiser and logs of one training run; see :func:`train`."""

    def __init__(
        self,
        env: EnvLike,
        algo: str = "ppo",
        config: CommonConfig | None = None,
        seed: int = 0,
        total_steps: int = 100_000,
        policy: ActorCritic | None = None,
        out: str | Path | None = None,
        callback: Callable[[Trainer], bool | None] | None = None,
        action_mask_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.algo = algo
        self.config = config if config is not None else config_for(algo)
        self.seed = int(seed)
        self.total_steps = int(total_steps)
        self.callback = callback
        self.action_mask_fn = action_mask_fn
        self.out = Path(out) if out is not None else None
        self.env_spec = env if isinstance(env, str) else None
        cfg = self.config
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)

        self.envs = make_vector_env(env, cfg.num_envs, cfg.vectorization_mode)
        self.num_envs = self.envs.num_envs
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        torch.manual_seed(self.seed)  # network initialisation
        if policy is None:
            policy = ActorCritic(obs_space, act_space, _policy_config(cfg))
        if cfg.norm_obs and not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"norm_obs=True needs a Box observation space; got {obs_space!r}")
        obs_norm = ObservationNormalizer((policy.obs_dim,)) if cfg.norm_obs else None
        self.agent = Agent(policy, algo, cfg, env_id_of(env), obs_norm)
        self.agent.trainer = self
        self.reward_normalizer = RewardNormalizer(self.num_envs, cfg.gamma) if cfg.norm_reward else None
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)
        self.generator = torch.Generator().manual_seed(self.seed)

        mask_dim = None
        if isinstance(act_space, gym.spaces.Discrete):
            mask_dim = int(act_space.n)
        elif isinstance(act_space, gym.spaces.MultiDiscrete):
            mask_dim = int(act_space.nvec.sum())
        raw_shape = () if isinstance(act_space, gym.spaces.Discrete) else (int(np.prod(act_space.shape)),)
        raw_dtype = (
            torch.long
            if isinstance(act_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete))
            else torch.float32
        )
        self.buffer = RolloutBuffer.allocate(
            cfg.num_steps, self.num_envs, policy.obs_dim, raw_shape, raw_dtype, mask_dim
        )
        self._mask_dim = mask_dim

        obs, info = self.envs.reset(seed=self.seed)
        self.rollout = RolloutState(
            obs=self._obs_fn(obs),
            prev_done=np.zeros(self.num_envs, dtype=bool),
            action_mask=self._mask_fn(obs, info),
            episode_return=np.zeros(self.num_envs),
            episode_length=np.zeros(self.num_envs, dtype=np.int64),
        )
        self.iteration = 0
        self.num_updates = 0
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.episodes_logged = 0
        self.last_stats: dict[str, float] = {}
        self._boundary: tuple[dict[str, Tensor], dict[str, Any]] | None = None
        self._env_state_ok = True
        self._log_kl = True
        self.interrupted = False  # set when a KeyboardInterrupt ended the run

    # ------------------------------------------------------------------ helpers for the rollout
    def _obs_fn(self, obs: np.ndarray) -> Tensor:
        norm = self.agent.obs_normalizer
        if norm is not None:
            obs = norm(np.asarray(obs, np.float64).reshape(len(obs), -1))
        return self.agent.policy.preprocess(torch.from_numpy(np.asarray(obs)))

    def _mask_fn(self, obs: np.ndarray, info: dict) -> Tensor | None:
        if self._mask_dim is None:
            return None
        if self.action_mask_fn is not None:
            return torch.as_tensor(np.asarray(self.action_mask_fn(obs), dtype=bool))
        if "action_mask" in info:
            return torch.as_tensor(np.asarray(info["action_mask"], dtype=bool))
        return None

    # ------------------------------------------------------------------ one iteration
    def _advantages(self) -> tuple[Tensor, Tensor]:
        """Advantages and value targets ``(T, N)`` for the rollout in the buffer."""
        b, cfg = self.buffer, self.config
        next_values = b.next_values()
        if self.algo in ("ppo", "a2c"):
            return returns.gae(
                b.rewards,
                b.values,
                next_values,
                b.terminated,
                b.truncated,
                cfg.gamma,
                cfg.gae_lambda,
                b.valid,
            )
        # REINFORCE: Monte Carlo weights; bootstrap cut episodes only when a critic exists
        bootstrap = next_values if cfg.baseline == "value" else None
        weight_fn = (
            returns.reward_to_go if cfg.weights == "reward_to_go" else returns.discounted_episode_return
        )
        weights = weight_fn(b.rewards, b.terminated, b.truncated, cfg.gamma, bootstrap, b.valid)
        return weights, weights

    def _loss(
        self, idx: Tensor, adv: Tensor, targets: Tensor, extra: dict[str, Tensor]
    ) -> tuple[Tensor, dict]:
        """Loss on the flattened batch entries ``idx``."""
        b, cfg, policy = self.buffer, self.config, self.agent.policy
        obs = b.obs.flatten(0, 1)[idx]
        mask = b.action_masks.flatten(0, 1)[idx] if b.action_masks is not None else None
        dist = policy.distribution(obs, mask)
        log_prob = dist.log_prob(b.actions.flatten(0, 1)[idx])
        entropy = dist.entropy()
        values = policy.value(obs)
        adv, targets = adv[idx], targets[idx]
        stats: dict[str, Tensor] = {}
        if self.algo == "ppo":
            if cfg.norm_adv:
                adv = losses.normalize_advantages(adv)
            old_log_prob = b.log_probs.flatten()[idx]
            pg = losses.ppo_clip_loss(log_prob, old_log_prob, adv, cfg.clip_coef)
            old_values = b.values.flatten()[idx]
            vl = losses.value_loss(values, targets, old_values, cfg.clip_coef if cfg.clip_vloss else None)
            if cfg.target_kl > 0 or self._log_kl:
                stats["approx_kl"] = losses.approx_kl(log_prob, old_log_prob)
        elif self.algo == "a2c":
            if cfg.norm_adv:
                adv = losses.normalize_advantages(adv)
            pg = losses.a2c_policy_loss(log_prob, adv)
            vl = losses.value_loss(values, targets)
        else:
            weights = adv
            if cfg.baseline == "value":
                baseline: Tensor | None = values.detach()
            elif cfg.baseline == "mean":
                baseline = losses.batch_mean_baseline(weights)
            elif cfg.baseline == "leave_one_out":
                baseline = losses.leave_one_out_baseline(weights, extra["episode"][idx])
            else:
                baseline = None
            if cfg.norm_adv:
                centred = weights - (0.0 if baseline is None else baseline)
                pg = losses.reinforce_loss(log_prob, losses.normalize_advantages(centred))
            else:
                pg = losses.reinforce_loss(log_prob, weights, baseline)
            vl = losses.value_loss(values, targets) if cfg.baseline == "value" else torch.zeros(())
        ent = losses.entropy_loss(entropy)
        loss = pg + cfg.vf_coef * vl + cfg.ent_coef * ent
        stats.update(policy_loss=pg.detach(), value_loss=vl.detach(), entropy=-ent.detach())
        return loss, stats

    def _step(self, loss: Tensor) -> None:
        """One optimiser step; refuses (and leaves the weights alone) if anything is non-finite."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.agent.policy.parameters() if p.grad is not None]
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm > 0 else float("inf")
        norm = nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(
                f"non-finite loss or gradient at update {self.num_updates} (env step "
                f"{self.rollout.global_step}); the weights were not changed"
            )
        self.optimizer.step()
        self.num_updates += 1

    def _update(self) -> dict[str, float]:
        cfg, b = self.config, self.buffer
        adv, targets = self._advantages()
        adv, targets = adv.flatten(), targets.flatten()
        valid_idx = torch.nonzero(b.valid.flatten()).squeeze(-1)  # drop autoreset/skipped steps
        extra: dict[str, Tensor] = {}
        if self.algo == "reinforce" and cfg.baseline == "leave_one_out":
            prev = torch.from_numpy(self._rollout_start_done)
            extra["episode"] = returns.episode_ids(prev, b.terminated | b.truncated).flatten()
        if cfg.anneal_lr:
            frac = 1.0 - (self.rollout.global_step - self._steps_per_iteration) / self.total_steps
            for group in self.optimizer.param_groups:
                group["lr"] = max(frac, 0.0) * cfg.learning_rate
        stats: dict[str, Tensor] = {}
        if self.algo != "ppo":
            loss, stats = self._loss(valid_idx, adv, targets, extra)
            self._step(loss)
        else:
            n = valid_idx.numel()
            mb_size = max(n // cfg.num_minibatches, 1)
            for epoch in range(cfg.update_epochs):
                perm = valid_idx[torch.randperm(n, generator=self.generator)]
                for start in range(0, n - mb_size + 1, mb_size):
                    self._log_kl = epoch == cfg.update_epochs - 1 and start + 2 * mb_size > n
                    loss, stats = self._loss(perm[start : start + mb_size], adv, targets, extra)
                    self._step(loss)
                if cfg.target_kl > 0 and stats["approx_kl"] > cfg.target_kl:
                    break
        return {k: float(v) for k, v in stats.items()}

    # ------------------------------------------------------------------ the loop
    @property
    def _steps_per_iteration(self) -> int:
        return self.config.num_steps * self.num_envs

    def run(self) -> Agent:
        """Train until ``total_steps`` env steps (counted over all envs) have been collected.

        Ctrl-C (KeyboardInterrupt) saves the last consistent state as a checkpoint (when ``out``
        is set) and returns the agent; ``resume(out)`` continues from it.
        """
        logger = _RunLogger(self.out, self.config.progress, self.total_steps, self.rollout.global_step)
        start_time = time.perf_counter()
        try:
            while self.rollout.global_step < self.total_steps:
                self._boundary = self.state()
                self._rollout_start_done = self.rollout.prev_done.copy()
                # 1. rollout
                collect_rollout(
                    self.envs,
                    self.agent.policy,
                    self.buffer,
                    self.rollout,
                    self.generator,
                    self._obs_fn,
                    self._mask_fn,
                    self.reward_normalizer,
                    self.config.on_non_finite,
                )
                # 2. advantages and 3. update
                self.last_stats = self._update()
                self.iteration += 1
                self._boundary = None  # consistent again: an interrupt from here on saves the present
                # 4. logging, checkpoints, user callback
                finished = self.rollout.finished[self.episodes_logged :]
                self.episodes_logged = len(self.rollout.finished)
                self.recent_returns.extend(r for _, r, _ in finished)
                logger.log(self, finished, time.perf_counter() - start_time)
                every = self.config.checkpoint_every
                if self.out is not None and every > 0 and self.iteration % every == 0:
                    save_checkpoint(self.out, *self.state())
                if self.callback is not None and self.callback(self):
                    break
            self._boundary = None
        except KeyboardInterrupt:
            self.interrupted = True
            if self.out is not None:
                tensors, meta = self._boundary if self._boundary is not None else self.state()
                save_checkpoint(self.out, tensors, meta)
                print(f"\ninterrupted: checkpoint saved to {self.out}; continue with --resume")
            self._restore_boundary()
            logger.close(self.out)
            self.close_async_envs()
            return self.agent
        except BaseException:
            logger.close(None)
            self.close_async_envs()
            raise
        if self.out is not None:
            save_checkpoint(self.out, *self.state())
        logger.close(self.out)
        self.close_async_envs()
        return self.agent

    def close_async_envs(self) -> None:
        """Stop the worker processes of an async vector env (sync envs stay usable for save())."""
        if isinstance(self.envs, gym.vector.AsyncVectorEnv):
            self.envs.close()

    def _restore_boundary(self) -> None:
        if self._boundary is not None:
            self.load_state(*self._boundary)
            self._boundary = None

    # ------------------------------------------------------------------ state (checkpoints, resume)
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to continue bitwise identically: ``(tensors, json_metadata)``."""
        tensors, meta = _agent_state(self.agent)
        opt = self.optimizer.state_dict()
        for i, s in opt["state"].items():
            for k, v in s.items():
                tensors[f"optim.{i}.{k}"] = v.clone() if isinstance(v, Tensor) else torch.tensor(v)
        tensors["rng.torch"] = self.generator.get_state()
        tensors["rollout.obs"] = self.rollout.obs.clone()
        if self.rollout.action_mask is not None:
            tensors["rollout.action_mask"] = self.rollout.action_mask.clone()
        env_state = get_env_state(self.envs)
        if env_state is None and self._env_state_ok:
            self._env_state_ok = False
            warn_not_resumable(type(self.envs).__name__)
        meta["training"] = {
            "seed": self.seed,
            "total_steps": self.total_steps,
            "global_step": self.rollout.global_step,
            "iteration": self.iteration,
            "num_updates": self.num_updates,
            "episodes_logged": self.episodes_logged,
            "finished": list(self.rollout.finished[-100:]),
            "recent_returns": list(self.recent_returns),
            "prev_done": self.rollout.prev_done.tolist(),
            "episode_return": self.rollout.episode_return.tolist(),
            "episode_length": self.rollout.episode_length.tolist(),
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]],
            "reward_normalizer": None
            if self.reward_normalizer is None
            else self.reward_normalizer.state_dict(),
            "env_state": env_state,
            "env_spec": self.env_spec,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` produced (into a trainer built with the same config)."""
        _load_policy(self.agent, tensors, meta)
        tr = meta["training"]
        opt = self.optimizer.state_dict()
        for i in range(len(opt["param_groups"][0]["params"])):
            keys = [k for k in tensors if k.startswith(f"optim.{i}.")]
            if keys:
                opt["state"][i] = {k.split(".", 2)[2]: tensors[k].clone() for k in keys}
        for group, saved in zip(opt["param_groups"], tr["param_groups"], strict=True):
            group.update({k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
        self.optimizer.load_state_dict(opt)
        self.generator.set_state(tensors["rng.torch"])
        self.rollout.obs = tensors["rollout.obs"].clone()
        self.rollout.action_mask = tensors.get("rollout.action_mask")
        self.rollout.prev_done = np.array(tr["prev_done"], dtype=bool)
        self.rollout.episode_return = np.array(tr["episode_return"], dtype=np.float64)
        self.rollout.episode_length = np.array(tr["episode_length"], dtype=np.int64)
        self.rollout.global_step = tr["global_step"]
        self.rollout.finished = [tuple(x) for x in tr["finished"]]
        self.episodes_logged = len(self.rollout.finished)
        self.recent_returns = deque(tr["recent_returns"], maxlen=20)
        self.iteration, self.num_updates = tr["iteration"], tr["num_updates"]
        if self.reward_normalizer is not None and tr["reward_normalizer"] is not None:
            self.reward_normalizer.load_state_dict(tr["reward_normalizer"])
        restored = False
        if tr["env_state"] is not None:
            try:
                set_env_state(self.envs, tr["env_state"])
                restored = True
            except (ValueError, AttributeError, KeyError, TypeError):
                warn_not_resumable("the env's structure differs from the saved one")
        else:
            warn_not_resumable("not saved in the checkpoint")
        if not restored:
            self.rollout.prev_done[:] = False
            obs, info = self.envs.reset(seed=self.seed + tr["iteration"])
            self.rollout.obs = self._obs_fn(obs)
            self.rollout.action_mask = self._mask_fn(obs, info)


def _load_policy(agent: Agent, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
    state = {k[len("policy.") :]: v for k, v in tensors.items() if k.startswith("policy.")}
    try:
        agent.policy.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit this policy: {err}") from err
    if meta.get("obs_normalizer") is not None:
        if agent.obs_normalizer is None:
            agent.obs_normalizer = ObservationNormalizer((agent.policy.obs_dim,))
        agent.obs_normalizer.load_state_dict(meta["obs_normalizer"])


# ---------------------------------------------------------------------------- logging
class _RunLogger:
    """tqdm progress bar, TensorBoard scalars, and CSVs of episodes and updates (when ``out`` is set)."""

    def __init__(self, out: Path | None, progress: bool, total: int, initial: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", disable=not progress, dynamic_ncols=True)
        self.writer = None
        self.episode_csv = self.update_csv = None
        self._files: list[Any] = []
        self.last_step, self.last_time = initial, time.perf_counter()
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))
        except ImportError:
            warnings.warn(
                "tensorboard is not installed; no event files (pip install tensorboard)", stacklevel=3
            )
        self.episode_csv = self._open(out / "episodes.csv", ["step", "wall_time", "return", "length"])
        self.update_csv = self._open(
            out / "updates.csv",
            [
                "step",
                "wall_time",
                "steps_per_s",
                "policy_loss",
                "value_loss",
                "entropy",
                "approx_kl",
                "learning_rate",
            ],
        )

    def _open(self, path: Path, header: list[str]):
        new = not path.exists()
        f = path.open("a", newline="")
        self._files.append(f)
        writer = csv.writer(f)
        if new:
            writer.writerow(header)
        return writer

    def log(self, trainer: Trainer, finished: list[tuple[int, float, int]], elapsed: float) -> None:
        step = trainer.rollout.global_step
        now = time.perf_counter()
        sps = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        self.bar.update(step - self.bar.n)
        recent = float(np.mean(trainer.recent_returns)) if trainer.recent_returns else float("nan")
        self.bar.set_postfix({"sps": f"{sps:.0f}", "return": f"{recent:.1f}"}, refresh=False)
        stats = dict(trainer.last_stats)
        lr = trainer.optimizer.param_groups[0]["lr"]
        if self.episode_csv is not None:
            for s, r, n in finished:
                self.episode_csv.writerow([s, f"{elapsed:.3f}", r, n])
            self.update_csv.writerow(
                [step, f"{elapsed:.3f}", f"{sps:.0f}"]
                + [stats.get(k, "") for k in ("policy_loss", "value_loss", "entropy", "approx_kl")]
                + [lr]
            )
        if self.writer is not None:
            for s, r, n in finished:
                self.writer.add_scalar("charts/episode_return", r, s)
                self.writer.add_scalar("charts/episode_length", n, s)
            for k, v in stats.items():
                self.writer.add_scalar(f"losses/{k}", v, step)
            self.writer.add_scalar("charts/steps_per_s", sps, step)
            self.writer.add_scalar("charts/learning_rate", lr, step)

    def close(self, out: Path | None) -> None:
        self.bar.close()
        for f in self._files:
            f.close()
        if self.writer is not None:
            self.writer.close()
        if out is not None and (out / "episodes.csv").exists():
            from scoregrad.rl.plotting import plot_run

            try:
                plot_run(out)
            except ImportError:
                warnings.warn("matplotlib is not installed; no learning-curve PNG", stacklevel=2)


# ---------------------------------------------------------------------------- public API
def train(
    env: EnvLike,
    algo: str = "ppo",
    total_steps: int = 100_000,
    seed: int = 0,
    *,
    config: CommonConfig | None = None,
    preset: bool = True,
    policy: ActorCritic | None = None,
    out: str | Path | None = None,
    callback: Callable[[Trainer], bool | None] | None = None,
    action_mask_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    **overrides: Any,
) -> Agent:
    """Train a policy by policy gradient on a Gymnasium environment.

    Args:
        env: env id, ``gymnasium.Env``, env factory or vector env.
        algo: ``"reinforce"``, ``"a2c"``, ``"ppo"`` or ``"es"`` (evolution strategies, :mod:`scoregrad.rl.es`).
        total_steps: env steps to collect, summed over the parallel envs.
        seed: seeds the network init, the sampling RNG and the envs.
        config: a full config (:class:`~scoregrad.rl.config.PPOConfig`, ...); else built from the
            algorithm's defaults, the env's preset (unless ``preset=False``) and ``overrides``.
        policy: your own :class:`~scoregrad.rl.policies.ActorCritic` (e.g. with a custom actor).
        out: run directory for checkpoints, CSVs, TensorBoard events and the learning-curve PNG.
        callback: called after every iteration with the trainer; return True to stop.
        action_mask_fn: ``obs (N, ...) -> bool mask (N, n)`` of allowed discrete actions (default:
            ``info["action_mask"]`` when the env provides it).
        **overrides: config fields, e.g. ``num_envs=16, learning_rate=1e-3``.

    Returns:
        The trained :class:`Agent`.
    """
    if config is None:
        settings = preset_for(env_id_of(env), algo) if preset else {}
        settings.update(overrides)
        config = config_for(algo, **settings)
    elif overrides:
        raise TypeError("pass either config= or keyword overrides, not both")
    if algo == "es":  # evolution strategies: scoregrad.rl.es (policy search, no policy gradient)
        from scoregrad.rl.es import train_es

        return train_es(env, total_steps, seed, config, policy, out, callback)
    trainer = Trainer(env, algo, config, seed, total_steps, policy, out, callback, action_mask_fn)
    return trainer.run()


def resume(
    path: str | Path,
    total_steps: int | None = None,
    env: EnvLike | None = None,
    callback: Callable[[Trainer], bool | None] | None = None,
    policy: ActorCritic | None = None,
    out: str | Path | None = None,
) -> Agent:
    """Continue the run saved in ``path`` (to its original ``total_steps`` unless given)."""
    tensors, meta = load_checkpoint(path)
    tr = meta.get("training")
    if tr is None:
        raise CheckpointError(f"{path} holds a policy only (no training state); it cannot be resumed")
    env = env if env is not None else tr["env_spec"]
    if meta["algo"] == "es":
        from scoregrad.rl.es import resume_es

        return resume_es(path, total_steps, env, out)
    if env is None:
        raise ValueError("this run was trained on an env object or factory; pass env= to resume it")
    config = CONFIGS[meta["algo"]](
        **{**meta["config"], "hidden_sizes": tuple(meta["config"]["hidden_sizes"])}
    )
    trainer = Trainer(
        env,
        meta["algo"],
        config,
        tr["seed"],
        total_steps if total_steps is not None else tr["total_steps"],
        policy,
        out if out is not None else path,
        callback,
    )
    trainer.load_state(tensors, meta)
    return trainer.run()


def load(path: str | Path, policy: ActorCritic | None = None) -> Agent:
    """Load an agent saved with :meth:`Agent.save` (or a run directory).

    Runs whose policy had custom ``nn.Module``s cannot be rebuilt without pickle: pass the same
    (untrained) ``policy`` and its weights are loaded into it.
    """
    tensors, meta = load_checkpoint(path)
    arch = meta["architecture"]
    config = CONFIGS[meta["algo"]](
        **{**meta["config"], "hidden_sizes": tuple(meta["config"]["hidden_sizes"])}
    )
    if policy is None:
        if arch.get("custom_modules"):
            raise CheckpointError(
                f"{path} was trained with a custom actor/critic module; rebuild it and pass it as "
                "rl.load(path, policy=ActorCritic(..., actor=MyActor()))"
            )
        pc = arch["policy"]
        policy = ActorCritic(
            space_from_json(arch["observation_space"]),
            space_from_json(arch["action_space"]),
            PolicyConfig(**{**pc, "hidden_sizes": tuple(pc["hidden_sizes"])}),
        )
    agent = Agent(policy, meta["algo"], config, meta.get("env_id"))
    _load_policy(agent, tensors, meta)
    agent._checkpoint = (tensors, meta)
    return agent


@torch.no_grad()
def evaluate(
    agent: Agent,
    env: EnvLike,
    episodes: int = 20,
    seed: int = 1000,
    deterministic: bool = True,
    max_steps: int = 100_000,
) -> tuple[float, float]:
    """Mean and std of the undiscounted return over ``episodes`` episodes.

    Runs ``episodes`` envs in parallel (env ``i`` reset with seed ``seed + i``), each for exactly
    one episode; ``deterministic`` takes the distribution's mode.
    """
    envs = make_vector_env(env, episodes, "auto") if not isinstance(env, gym.vector.VectorEnv) else env
    policy = agent.policy
    try:
        obs, info = envs.reset(seed=seed)
        n = envs.num_envs
        total = np.zeros(n)
        running = np.ones(n, dtype=bool)
        mask_dim = isinstance(policy.action_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete))
        for _ in range(max_steps):
            mask = (
                torch.as_tensor(np.asarray(info["action_mask"], dtype=bool))
                if mask_dim and "action_mask" in info
                else None
            )
            dist = policy.distribution(agent.preprocess(obs), mask)
            action = dist.mode() if deterministic else dist.sample()
            obs, reward, terminated, truncated, info = envs.step(policy.to_env_action(action))
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        if not isinstance(env, gym.vector.VectorEnv):
            envs.close()
    return float(total.mean()), float(total.std())
