"""The trainer: collect -> update -> log -> checkpoint, for every policy-gradient algorithm.

One iteration collects a rollout (policy samples, env steps; :mod:`scoregrad.rl.rollout`), hands it
to the run's algorithm (:mod:`scoregrad.rl.algorithms`: ``reinforce``, Williams, 1992; ``a2c``, Mnih
et al., 2016; ``ppo``, Schulman et al., 2017; each one file that reads top to bottom), logs
(:mod:`scoregrad.rl.logger`) and saves a checkpoint when due. The trainer knows nothing of any one
algorithm: ``ALGORITHMS[algo]`` is looked up once. Everything that must survive a restart is
gathered by :mod:`scoregrad.rl.state`, so that a resumed run on CPU continues bitwise identically.
The trained policy is an :class:`~scoregrad.rl.agent.Agent`.
"""

from __future__ import annotations

import copy
import shutil
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from scoregrad import distributed
from scoregrad.interrupts import deferred_signals, terminate_as_interrupt
from scoregrad.rl.agent import (
    Agent,
    EvaluationError,
    SpaceMismatchError,
    evaluate,
    load,
    policy_config,
)
from scoregrad.rl.algorithms import ALGORITHMS, Algorithm
from scoregrad.rl.algorithms.base import Share
from scoregrad.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scoregrad.rl.config import CommonConfig, ConfigError, config_for
from scoregrad.rl.defaults import settings_for
from scoregrad.rl.logger import RunLogger
from scoregrad.rl.normalization import ObservationNormalizer, RewardNormalizer, synchronize
from scoregrad.rl.policies import ActorCritic
from scoregrad.rl.rollout import (
    EnvLike,
    NonFiniteError,
    RolloutBuffer,
    RolloutState,
    collect_rollout,
    env_id_of,
    make_vector_env,
)
from scoregrad.rl.state import (
    BEST_DIR,
    agent_state,
    check_run_checkpoint,
    restore_trainer_state,
    trainer_state,
)

__all__ = [
    "Agent",
    "Trainer",
    "train",
    "evaluate",
    "load",
    "resume",
    "RunExistsError",
    "ResumeMismatchError",
    "EvaluationError",
    "SpaceMismatchError",
    "RESUMABLE_FIELDS",
]

#: Config fields that may change when a run is resumed; any other difference is refused.
RESUMABLE_FIELDS = ("progress", "checkpoint_every", "torch_threads")

#: What a run directory holds; ``overwrite=True`` removes exactly these before a new run.
RUN_FILES = (
    "checkpoints",
    "checkpoint.json",
    "model.safetensors",
    "episodes.csv",
    "updates.csv",
    "tb",
    "learning_curve.png",
    "evaluations.csv",
    BEST_DIR,
)


class RunExistsError(FileExistsError):
    """``out`` already holds a run, and neither resume nor overwrite was asked for."""


class ResumeMismatchError(ValueError):
    """A resume asked for an env or setting that differs from the saved run's."""


class _OptimizerStep:
    """The :class:`~scoregrad.rl.algorithms.base.Step` the trainer hands its algorithm."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def share(self, n: int) -> Share:
        world = self.trainer.world
        if world == 1:
            return Share(slice(0, n), 1.0)
        if n < world:
            raise ConfigError(
                f"a minibatch of {n} transitions cannot be split over {world} processes; use fewer "
                "num_minibatches or more num_envs/num_steps"
            )
        rows = distributed.shard(n)
        return Share(rows, (rows.stop - rows.start) / n, world)

    def __call__(self, loss: Tensor, stats: dict[str, Tensor], share: Share) -> dict[str, Tensor]:
        return self.trainer._step(loss, stats, share)


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
        self.algorithm: Algorithm = ALGORITHMS[algo](self.config)
        self.seed = int(seed)
        self.total_steps = int(total_steps)
        self.callback = callback
        self.action_mask_fn = action_mask_fn
        self.out = Path(out) if out is not None else None
        self.env_spec = env if isinstance(env, str) else None
        cfg = self.config
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)

        # Under torchrun, num_envs counts the envs of all processes; this process steps its share.
        self.world, self.rank = distributed.init(), distributed.rank()
        local_envs = cfg.num_envs
        if self.world > 1:
            if isinstance(env, gym.vector.VectorEnv):
                raise ValueError("under torchrun, pass an env id or factory (each process builds its share)")
            try:
                local_envs = distributed.local_count(cfg.num_envs, "num_envs")
            except ValueError as err:
                raise ConfigError(str(err)) from None
        self.envs = make_vector_env(env, local_envs, cfg.vectorization_mode)
        self.num_envs = self.envs.num_envs  # this process's envs
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        torch.manual_seed(self.seed)  # network initialisation
        if policy is None:
            policy = ActorCritic(obs_space, act_space, policy_config(cfg))
        if cfg.norm_obs and not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"norm_obs=True needs a Box observation space; got {obs_space!r}")
        obs_norm = ObservationNormalizer((policy.obs_dim,)) if cfg.norm_obs else None
        self.agent = Agent(policy, algo, cfg, env_id_of(env), obs_norm)
        self.agent.trainer = self
        self.reward_normalizer = RewardNormalizer(self.num_envs, cfg.gamma) if cfg.norm_reward else None
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)
        self.generator = torch.Generator().manual_seed(self.seed)
        # actions: this process's rows of one draw for all processes' envs (the generator itself then
        # advances the same everywhere, so minibatch orders agree too)
        self.sampler: torch.Generator | distributed.ShardedGenerator = (
            self.generator
            if self.world == 1
            else distributed.ShardedGenerator(self.generator, self.rank, self.world)
        )
        self._running_stats = [
            n.stats for n in (obs_norm, self.reward_normalizer) if n is not None and self.world > 1
        ]
        self.start_statistics()

        head = policy.head  # what the buffer stores: the action head's raw actions and masks
        self._mask_dim = head.mask_dim
        self.buffer = RolloutBuffer.allocate(
            cfg.num_steps, self.num_envs, policy.obs_dim, head.buffer_shape, head.buffer_dtype, head.mask_dim
        )
        self.step = _OptimizerStep(self)
        self.rollout = self._first_rollout_state()
        self.iteration = 0
        self.num_updates = 0
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.episodes_logged = 0
        self.last_stats: dict[str, float] = {}
        self._boundary: tuple[dict[str, Tensor], dict[str, Any]] | None = None
        self._env_state_ok = True
        self.wall_time = 0.0  # training seconds so far, carried across resumes
        self._saved_iteration: int | None = None
        self._resumed = False
        self.interrupt: KeyboardInterrupt | None = None  # set when Ctrl-C or SIGTERM ended the run
        self._last_state: tuple[dict[str, Tensor], dict[str, Any]] | None = None  # under torchrun
        # keep_best / eval_every: periodic deterministic evaluation (rank 0 alone)
        self.eval_every = _eval_interval(cfg, self.total_steps)
        self.best_return = -float("inf")  # the best evaluation so far, and the step it was made at
        self.best_step: int | None = None
        self._eval_envs: gym.vector.VectorEnv | None = None
        self._last_eval_step: int | None = None
        if self.eval_every:
            if isinstance(env, gym.vector.VectorEnv):
                raise ConfigError(
                    "keep_best/eval_every need an env id, Env or factory to build evaluation envs"
                )
            self._eval_spec = env

    @property
    def interrupted(self) -> bool:
        """True when Ctrl-C (SIGINT) or SIGTERM ended the run (a checkpoint was saved if ``out`` is set)."""
        return self.interrupt is not None

    def start_statistics(self) -> None:
        """Under torchrun: the normalisation statistics agree on every process now; record from here."""
        self._stats_start = [st.state_dict() for st in self._running_stats]
        for st in self._running_stats:
            st.history = []

    # ------------------------------------------------------------------ helpers for the rollout
    def _first_rollout_state(self) -> RolloutState:
        # env i of all processes' envs gets seed + i, as in one process (for per-env-seeded vector envs)
        obs, info = self.envs.reset(seed=self.seed + self.rank * self.num_envs)
        n = self.num_envs
        return RolloutState(
            self._obs_fn(obs),
            np.zeros(n, dtype=bool),
            self._mask_fn(obs, info),
            np.zeros(n),
            np.zeros(n, np.int64),
        )

    def _obs_fn(self, obs: np.ndarray) -> Tensor:
        norm = self.agent.obs_normalizer
        if norm is not None:
            obs = norm(np.asarray(obs, np.float64).reshape(len(obs), -1))
        # Row-major, as a resumed run's restored observation is: CartPole's vector env returns a transposed
        # (column-major) array, and a matmul on it rounds differently, which broke bitwise resume.
        return self.agent.policy.preprocess(torch.from_numpy(np.ascontiguousarray(obs)))

    def _mask_fn(self, obs: np.ndarray, info: dict) -> Tensor | None:
        if self._mask_dim is None:
            return None
        if self.action_mask_fn is not None:
            return torch.as_tensor(np.asarray(self.action_mask_fn(obs), dtype=bool))
        if "action_mask" in info:
            return torch.as_tensor(np.asarray(info["action_mask"], dtype=bool))
        return None

    # ------------------------------------------------------------------ one iteration
    def _step(self, loss: Tensor, stats: dict[str, Tensor], share: Share) -> dict[str, Tensor]:
        """One optimiser step (see :class:`~scoregrad.rl.algorithms.base.Step`); refuses, and leaves
        the weights alone, if the loss or the gradient is non-finite."""
        self.optimizer.zero_grad(set_to_none=True)
        (loss if share.weight == 1.0 else share.weight * loss).backward()
        params = [p for p in self.agent.policy.parameters() if p.grad is not None]
        if self.world > 1:  # one flat all-reduce: the gradients, the loss and the stats, all weighted
            names = list(stats)
            scalars = torch.stack([loss.detach(), *(stats[k].detach() for k in names)]).float() * share.weight
            distributed.all_reduce_sum([*(p.grad for p in params), scalars])
            loss, stats = scalars[0], {k: scalars[i + 1] for i, k in enumerate(names)}
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
        return stats

    def _update(self) -> dict[str, float]:
        """Anneal the learning rate, then the algorithm's update on the rollout in the buffer."""
        cfg = self.config
        if cfg.anneal_lr:
            frac = 1.0 - (self.rollout.global_step - self._steps_per_iteration) / self.total_steps
            for group in self.optimizer.param_groups:
                group["lr"] = max(frac, 0.0) * cfg.learning_rate
        stats = self.algorithm.update(self.agent.policy, self._union_buffer(), self.step, self.generator)
        return {k: float(v) for k, v in stats.items()}

    def _union_buffer(self) -> RolloutBuffer:
        """The rollouts of all processes side by side, ``(T, num_envs)``: one all-gather (the buffer itself
        in a single process). Also gives every process the exact normalisation statistics."""
        if self.world == 1:
            return self.buffer
        synchronize(self._running_stats, self._stats_start)
        self.start_statistics()
        b = self.buffer
        over_envs = [b.obs, b.actions, b.log_probs, b.values, b.rewards, b.terminated, b.truncated, b.valid]
        if b.action_masks is not None:
            over_envs.append(b.action_masks)
        gathered = distributed.all_gather_cat(
            [t.transpose(0, 1) for t in over_envs] + [b.last_value, b.start_done]
        )
        fields = [t.transpose(0, 1) for t in gathered[: len(over_envs)]]
        masks = fields[8] if b.action_masks is not None else None
        return RolloutBuffer(*fields[:8], masks, gathered[-2], gathered[-1])

    # ------------------------------------------------------------------ the loop
    @property
    def _steps_per_iteration(self) -> int:
        return self.config.num_steps * self.num_envs * self.world

    def run(self) -> Agent:
        """Train until ``total_steps`` env steps (counted over all envs) have been collected.

        Ctrl-C (SIGINT) or SIGTERM saves the last consistent state as a checkpoint (when ``out`` is
        set) and returns the agent with ``trainer.interrupt`` set; ``resume(out)`` continues from it.
        A second signal during that save waits for the save to finish.
        """
        out = self.out if self.rank == 0 else None  # under torchrun rank 0 alone writes and prints
        logger = RunLogger(
            out,
            self.config.progress and self.rank == 0,
            self.total_steps,
            self.rollout.global_step,
            self.wall_time,
            resume=self._resumed,
            evaluations=bool(self.eval_every),
        )
        try:
            with terminate_as_interrupt():
                self._loop(logger)
                self._boundary = None
                if self.eval_every and self._last_eval_step != self.rollout.global_step:
                    self._evaluate(logger)  # the final policy competes for best too
                if self._saved_iteration != self.iteration:  # not saved by the last iteration already
                    self._save(logger)
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM through terminate_as_interrupt
            self.interrupt = interrupt
            with deferred_signals(reraise=False):  # a second Ctrl-C waits for this save
                snapshot = None
                if self.out is not None:
                    snapshot = self._boundary if self._boundary is not None else self._interrupt_state(logger)
                if snapshot is not None and self.rank == 0:
                    save_checkpoint(self.out, *snapshot)
                    print(f"\ninterrupted: checkpoint saved to {self.out}; continue with --resume")
                self._restore_boundary()
                logger.close(out)
                self.close_async_envs()
            return self.agent
        except BaseException:
            logger.close(None)
            self.close_async_envs()
            raise
        logger.close(out)
        self.close_async_envs()
        return self.agent

    def _interrupt_state(self, logger: RunLogger) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        if self.world > 1:  # no collective now (the others may be gone): the last iteration's state
            return self._last_state
        return self._state_at(logger)

    def _loop(self, logger: RunLogger) -> None:
        """collect -> update -> log -> checkpoint, until the step budget is spent."""
        # Snapshots for an interrupt are taken only when there is a run directory to save them to
        # (without ``out``, an interrupted run returns the policy as it was when interrupted).
        snapshots = self.out is not None
        if snapshots and self.world > 1:
            self._last_state = self._state_at(logger)
        while self.rollout.global_step < self.total_steps:
            # the state to go back to if interrupted mid-iteration (gathered once per iteration under torchrun)
            if snapshots:
                self._boundary = self._last_state if self.world > 1 else self._state_at(logger)
            # 1. collect a rollout
            collect_rollout(
                self.envs,
                self.agent.policy,
                self.buffer,
                self.rollout,
                self.sampler,
                self._obs_fn,
                self._mask_fn,
                self.reward_normalizer,
                self.config.on_non_finite,
                self.world,
            )
            # 2. update: advantages, minibatches, losses, optimiser steps (rl/algorithms/)
            self.last_stats = self._update()
            self.iteration += 1
            if snapshots and self.world > 1:
                self._last_state = self._state_at(logger)
            # 3. log (and evaluate), 4. checkpoint, then the user's callback
            finished = self._new_episodes()
            self.recent_returns.extend(r for _, r, _ in finished)
            lr = self.optimizer.param_groups[0]["lr"]
            logger.log(self.rollout.global_step, finished, self.recent_returns, self.last_stats, lr)
            if self.eval_every and self._evaluation_due():
                self._evaluate(logger)
            # Consistent again, logs included: an interrupt from here on saves the present. Before this
            # line it goes back to the boundary, and a resume redoes the iteration (its log rows are cut
            # off by the resume): saving the present there lost the iteration's log rows.
            self._boundary = None
            every = self.config.checkpoint_every
            if every > 0 and self.iteration % every == 0:
                self._save(logger)
            if self.callback is not None and self.callback(self):
                break

    # ------------------------------------------------------------------ keep_best
    def _evaluation_due(self) -> bool:
        """An evaluation every ``eval_every`` env steps: due when this iteration crossed a multiple."""
        step, n = self.rollout.global_step, self._steps_per_iteration
        return step // self.eval_every > (step - n) // self.eval_every

    def _evaluate(self, logger: RunLogger) -> None:
        """Evaluate the deterministic policy as ``rl.evaluate(agent, env, eval_episodes, seed + 10**6)``
        does (the same episodes every time); with ``keep_best``, keep it when it beats the best so far."""
        if self.rank != 0:
            return
        cfg = self.config
        if self._eval_envs is None:
            self._eval_envs = make_vector_env(self._eval_spec, cfg.eval_episodes, "auto")  # as rl.evaluate
        mean, std = evaluate(self.agent, self._eval_envs, cfg.eval_episodes, seed=self.seed + 10**6)
        step = self._last_eval_step = self.rollout.global_step
        improved = mean > self.best_return
        if improved and cfg.keep_best:
            self.best_return, self.best_step = mean, step
            self.agent.best = _copy_agent(self.agent)
            if self.out is not None:
                tensors, meta = agent_state(self.agent.best)
                meta["best"] = {"step": step, "return": mean}
                with deferred_signals():
                    save_checkpoint(self.out / BEST_DIR, tensors, meta, keep=1)
        logger.log_evaluation(step, mean, std, self.best_return if cfg.keep_best else None)

    def _new_episodes(self) -> list[tuple[int, float, int]]:
        """The episodes that ended in this iteration, in all processes: ``(env step, return, length)``,
        ordered as one process with every env would list them."""
        new = self.rollout.finished[self.episodes_logged :]
        if self.world > 1:
            merged = [(ep, r) for r, eps in enumerate(distributed.all_gather_objects(new)) for ep in eps]
            new = [ep for ep, _ in sorted(merged, key=lambda x: (x[0][0], x[1]))]
            self.rollout.finished[self.episodes_logged :] = new
        self.episodes_logged = len(self.rollout.finished)
        return new

    def _state_at(self, logger: RunLogger) -> tuple[dict[str, Tensor], dict[str, Any]]:
        self.wall_time = logger.elapsed()
        return self.state()

    def _save(self, logger: RunLogger) -> None:
        """Write a checkpoint version of the present state; signals wait until it is complete."""
        if self.out is None:
            return
        if (
            self.world > 1
            and self._last_state is not None
            and self._last_state[1]["training"]["iteration"] == self.iteration
        ):
            tensors, meta = self._last_state  # gathered at the end of this iteration already
        else:
            tensors, meta = self._state_at(logger)  # a collective under torchrun: every process calls it
        if self.rank == 0:
            with deferred_signals():
                save_checkpoint(self.out, tensors, meta)
        distributed.barrier()  # no process goes on (or ends the job) before the checkpoint is complete
        self._saved_iteration = self.iteration

    # ------------------------------------------------------------------ state (checkpoints, resume)
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to continue bitwise identically: ``(tensors, json_metadata)``."""
        return trainer_state(self)

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` produced (into a trainer built with the same config)."""
        restore_trainer_state(self, tensors, meta)

    def close_async_envs(self) -> None:
        """Stop the worker processes of an async vector env (sync envs stay usable for save()), and
        the evaluation envs."""
        if isinstance(self.envs, gym.vector.AsyncVectorEnv):
            self.envs.close()
        if self._eval_envs is not None:
            self._eval_envs.close()
            self._eval_envs = None

    def _restore_boundary(self) -> None:
        if self._boundary is not None:
            self.load_state(*self._boundary)
            self._boundary = None


def _eval_interval(config: CommonConfig, total_steps: int) -> int:
    """Env steps between periodic evaluations (0: none); refuses ``eval_episodes`` that would go unused."""
    if config.eval_every:
        return config.eval_every
    if config.keep_best:
        return max(total_steps // 20, 1)
    if config.eval_episodes != CommonConfig.eval_episodes:
        raise ConfigError("eval_episodes is used only with keep_best=True or eval_every > 0")
    return 0


def _copy_agent(agent: Agent) -> Agent:
    """An independent copy of ``agent``'s policy and observation normaliser (no trainer)."""
    return Agent(
        copy.deepcopy(agent.policy),
        agent.algo,
        agent.config,
        agent.env_id,
        copy.deepcopy(agent.obs_normalizer),
    )


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
    overwrite: bool = False,
    callback: Callable[[Trainer], bool | None] | None = None,
    action_mask_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    **overrides: Any,
) -> Agent:
    """Train a policy by policy gradient on a Gymnasium environment.

    Under ``torchrun`` every process calls ``train`` with the same arguments: ``num_envs`` and
    ``total_steps`` count over all processes, each process steps its share of the envs, and rank 0
    alone writes ``out`` (:mod:`scoregrad.distributed`). The result is the run one process with all the
    envs would make (exactly, for per-env-seeded vector envs without normalisation).

    Args:
        env: env id (``"CartPole-v1"``, or ``"my_module:MyEnv-v0"`` to import the module that
            registers it), ``gymnasium.Env``, env factory or vector env.
        algo: ``"reinforce"``, ``"a2c"``, ``"ppo"`` or ``"es"`` (evolution strategies, :mod:`scoregrad.rl.es`).
        total_steps: env steps to collect, summed over the parallel envs (> 0).
        seed: seeds the network init, the sampling RNG and the envs.
        config: a full config (:class:`~scoregrad.rl.config.PPOConfig`, ...); else built from the
            algorithm's defaults, the env's preset (unless ``preset=False``; without a preset, the
            defaults for the env's spaces, :mod:`scoregrad.rl.defaults`) and ``overrides``.
        policy: your own :class:`~scoregrad.rl.policies.ActorCritic` (e.g. with a custom actor).
        out: run directory for checkpoints, CSVs, TensorBoard events and the learning-curve PNG.
            A directory that already holds a run is refused (continue it with :func:`resume`).
        overwrite: replace the run already in ``out`` (its checkpoints, logs and plot; other files
            stay).
        callback: called after every iteration with the trainer; return True to stop.
        action_mask_fn: ``obs (N, ...) -> bool mask (N, n)`` of allowed discrete actions (default:
            ``info["action_mask"]`` when the env provides it).
        **overrides: config fields, e.g. ``num_envs=16, learning_rate=1e-3``.

    Returns:
        The trained :class:`Agent`.
    """
    check_total_steps(total_steps)
    if config is None:
        settings = settings_for(env, algo, preset)  # the env's preset, else defaults for its spaces
        settings.update(overrides)
        config = config_for(algo, **settings)
    elif overrides:
        raise TypeError("pass either config= or keyword overrides, not both")
    distributed.init()  # joins torchrun's process group; nothing in a plain process
    if out is not None:
        if distributed.is_main():  # rank 0 alone owns the run directory
            prepare_run_directory(Path(out), overwrite)
        distributed.barrier()
    if algo == "es":  # evolution strategies: scoregrad.rl.es (policy search, no policy gradient)
        from scoregrad.rl.es import train_es

        return train_es(env, total_steps, seed, config, policy, out, callback)
    trainer = Trainer(env, algo, config, seed, total_steps, policy, out, callback, action_mask_fn)
    return trainer.run()


def check_total_steps(total_steps: Any) -> None:
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps <= 0:
        raise ConfigError(f"total_steps must be a positive int; got {total_steps!r}")


def prepare_run_directory(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that already holds a run, or clear the run's files when ``overwrite``."""
    present = [name for name in RUN_FILES if (out / name).exists()]
    if not present:
        return
    if not overwrite:
        raise RunExistsError(
            f"out={str(out)!r} already holds a run ({', '.join(present)}); resume it "
            "(--resume / rl.resume) or replace it (--overwrite / overwrite=True)"
        )
    for name in present:
        target = out / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def resume(
    path: str | Path,
    total_steps: int | None = None,
    env: EnvLike | None = None,
    callback: Callable[[Trainer], bool | None] | None = None,
    policy: ActorCritic | None = None,
    out: str | Path | None = None,
    **overrides: Any,
) -> Agent:
    """Continue the run saved in ``path`` (to its original ``total_steps`` unless given).

    Args:
        path: the run directory (or a checkpoint version in it).
        total_steps: a new step budget (may be larger or smaller than the saved one).
        env: the env, for runs trained on an env object or factory (an id is saved and reused).
        out: where the continued run writes (default: ``path``).
        **overrides: config fields that may change on resume: ``progress``, ``checkpoint_every``,
            ``torch_threads``. Any other field, or a different value for it, is refused
            (:class:`ResumeMismatchError`), because the resumed run would not be the saved one.
    """
    tensors, meta = load_checkpoint(path, validate=check_run_checkpoint)
    tr = meta["training"]
    if tr is None:
        raise CheckpointError(f"{path} holds a policy only (no training state); it cannot be resumed")
    if total_steps is not None:
        check_total_steps(total_steps)
    fixed = sorted(set(overrides) - set(RESUMABLE_FIELDS))
    if fixed:
        raise ResumeMismatchError(
            f"cannot change {fixed} when resuming (only {list(RESUMABLE_FIELDS)} may change); "
            "start a new run instead"
        )
    env = env if env is not None else tr["env_spec"]
    if meta["algo"] == "es":  # policy search by evolution strategies: scoregrad.rl.es
        from scoregrad.rl.es import resume_es

        return resume_es(path, total_steps, env, out, **overrides)
    if env is None:
        raise ValueError("this run was trained on an env object or factory; pass env= to resume it")
    config = config_for(meta["algo"], **{**meta["config"], **overrides})
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
