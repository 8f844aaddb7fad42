"""Policy search by evolution strategies: ``rl.train(env, algo="es")``.

Salimans et al. (2017), "Evolution Strategies as a Scalable Alternative to Reinforcement
Learning": the fitness of a candidate parameter vector is the return of whole episodes played
with the deterministic policy, and the search gradient (:mod:`scoregrad.es`) moves the parameters.
The actor of the same :class:`~scoregrad.rl.policies.ActorCritic` as PPO's is searched (the critic
and a state-independent log-std play no part in a deterministic policy and stay untouched), with
the same observation normalisation, run directory, logs, checkpoints and :func:`rl.evaluate`.

One generation, top to bottom:

1. ask the strategy for ``P`` candidates;
2. rollout: ``P * episodes_per_candidate`` environments, one episode each, all candidates'
   actions in one vmapped forward pass per step; every candidate of a generation starts from the
   same initial states (common random numbers) where the vector env takes per-env seeds (sync and
   async envs; native vector envs such as CartPole's take one seed, so there they differ);
3. tell the strategy the negated returns, step its optimiser (which writes the centre into the
   actor), update the observation statistics with what was seen;
4. log, checkpoint, callback.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from scoregrad import distributed
from scoregrad import es as search
from scoregrad.interrupts import deferred_signals, terminate_as_interrupt
from scoregrad.rl.agent import Agent, policy_config
from scoregrad.rl.checkpoint import load_checkpoint, optimizer_state, restore_optimizer_state, save_checkpoint
from scoregrad.rl.config import ConfigError, ESConfig
from scoregrad.rl.logger import RunLogger
from scoregrad.rl.normalization import ObservationNormalizer
from scoregrad.rl.policies import ActorCritic
from scoregrad.rl.rollout import EnvLike, NonFiniteError, env_id_of, make_vector_env
from scoregrad.rl.state import agent_state, check_run_checkpoint, load_policy

__all__ = ["ESTrainer", "train_es", "resume_es"]


class _Mode(nn.Module):
    """The deterministic action of the policy for preprocessed observations; its parameters are the actor's."""

    def __init__(self, policy: ActorCritic):
        super().__init__()
        self.actor = policy.actor
        self._policy = [policy]  # not a submodule: only the actor's parameters are searched

    def forward(self, obs: Tensor) -> Tensor:
        return self._policy[0].distribution(obs).mode()


class _Progress:
    """What the run logger reads from a trainer (global step, returns, last stats, optimiser)."""

    def __init__(self) -> None:
        self.global_step = 0


class ESTrainer:
    """One ES policy-search run; see :func:`train_es`."""

    def __init__(
        self,
        env: EnvLike,
        config: ESConfig,
        seed: int = 0,
        total_steps: int = 100_000,
        policy: ActorCritic | None = None,
        out: str | Path | None = None,
        callback=None,
    ):
        self.algo, self.config, self.seed, self.total_steps = "es", config, int(seed), int(total_steps)
        self.out = Path(out) if out is not None else None
        self.callback = callback
        self.env_spec = env if isinstance(env, str) else None
        cfg = config
        if cfg.torch_threads > 0:
            torch.set_num_threads(cfg.torch_threads)
        # Under torchrun each process plays its share of the candidates; only returns are exchanged.
        self.world, self.rank = distributed.init(), distributed.rank()
        try:
            local = distributed.local_count(cfg.popsize, "popsize")
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.candidates = distributed.shard(cfg.popsize)
        self.envs = make_vector_env(env, local * cfg.episodes_per_candidate, cfg.vectorization_mode)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        torch.manual_seed(self.seed)
        if policy is None:
            policy = ActorCritic(obs_space, act_space, policy_config(cfg))
        if cfg.norm_obs and not isinstance(obs_space, gym.spaces.Box):
            raise ValueError(f"norm_obs=True needs a Box observation space; got {obs_space!r}")
        obs_norm = ObservationNormalizer((policy.obs_dim,)) if cfg.norm_obs else None
        self.agent = Agent(policy, "es", cfg, env_id_of(env), obs_norm)
        self.agent.trainer = self
        self.mode = _Mode(policy)
        options: dict[str, Any] = {"lr": cfg.learning_rate if cfg.learning_rate > 0 else None}
        if cfg.strategy == "openes":
            options["weight_decay"] = cfg.weight_decay
        elif cfg.weight_decay:
            raise ValueError(f"weight_decay is an OpenES option; set it to 0 for strategy {cfg.strategy!r}")
        if cfg.strategy == "pgpe" and options["lr"] is not None:
            options["step_ratio"] = None  # a fixed ClipUp step instead of the sigma-relative one
        self.strategy = search.make_strategy(
            cfg.strategy,
            self.mode,
            sigma=cfg.sigma,
            popsize=cfg.popsize,
            antithetic=cfg.antithetic,
            shaping=None if cfg.shaping == "none" else cfg.shaping,
            seed=self.seed,
            noise=cfg.noise,
            **options,
        )
        self.optimizer = self.strategy.optimizer
        self.rollout = _Progress()
        self.iteration = 0
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.last_stats: dict[str, float] = {}
        self.wall_time = 0.0  # search seconds so far, carried across resumes
        self._resumed = False
        self.interrupt: KeyboardInterrupt | None = None  # set when Ctrl-C or SIGTERM ended the run

    @property
    def interrupted(self) -> bool:
        return self.interrupt is not None

    # ------------------------------------------------------------------ one generation's rollout
    def _fitness(self, X: Tensor) -> tuple[np.ndarray, int, np.ndarray]:
        """Mean return per candidate ``(P,)`` from this process's candidates ``X``, env steps used, and
        the observations seen (all processes')."""
        returns, steps, seen = self._play(X)
        if self.world == 1:
            observed = np.concatenate(seen) if seen else np.zeros((0, self.agent.policy.obs_dim))
            return returns, steps, observed
        # one exchange: returns, episode lengths, steps and seen observations; the observations are put
        # back in the order one process playing every candidate would have seen them
        gathered = distributed.all_gather_objects((returns, self._lengths, steps, seen))
        returns = np.concatenate([g[0] for g in gathered])
        self._lengths = np.concatenate([g[1] for g in gathered])
        by_step = [
            np.concatenate([g[3][t] for g in gathered if t < len(g[3])])
            for t in range(max(len(g[3]) for g in gathered))
        ]
        observed = np.concatenate(by_step) if by_step else np.zeros((0, self.agent.policy.obs_dim))
        return returns, sum(g[2] for g in gathered), observed

    @torch.no_grad()
    def _play(self, X: Tensor) -> tuple[np.ndarray, int, list[np.ndarray]]:
        """This process's candidates ``X``: mean returns, env steps, observations seen at each step."""
        P, E = X.shape[0], self.config.episodes_per_candidate
        norm, policy = self.agent.obs_normalizer, self.agent.policy
        base = self.seed * 1_000_003 + self.iteration * E
        try:  # common random numbers: every candidate meets the same E initial states
            obs, _ = self.envs.reset(seed=[base + e for e in range(E)] * P)
        except (gym.error.Error, TypeError):  # native vector envs (CartPole) take one seed only
            obs, _ = self.envs.reset(seed=base + self.candidates.start * E)
        total, length = np.zeros(P * E), np.zeros(P * E, dtype=np.int64)
        running = np.ones(P * E, dtype=bool)
        seen, steps = [], 0
        while running.any():
            flat = np.asarray(obs, np.float64).reshape(P * E, -1)
            if norm is not None:
                seen.append(flat[running])
                flat = norm(flat, update=False)
            inputs = policy.preprocess(torch.as_tensor(flat)).reshape(P, E, -1)
            actions = search.population_call(self.mode, X, inputs, per_candidate=True)
            obs, reward, terminated, truncated, _ = self.envs.step(
                policy.to_env_action(actions.reshape(P * E, *actions.shape[2:]))
            )
            if not np.isfinite(reward[running]).all():
                raise NonFiniteError(f"non-finite reward at generation {self.iteration}")
            total += np.where(running, reward, 0.0)
            steps += int(running.sum())
            length += running
            running &= ~(terminated | truncated)
        self._lengths = length.reshape(P, E).mean(1)
        return total.reshape(P, E).mean(1), steps, seen

    def run(self) -> Agent:
        """Search until ``total_steps`` env steps have been used (live episode steps only).

        Ctrl-C or SIGTERM saves a checkpoint (when ``out`` is set) and returns with ``interrupt`` set,
        as the policy-gradient trainer does; a second signal during that save waits for it.
        """
        cfg = self.config
        out = self.out if self.rank == 0 else None  # under torchrun rank 0 alone writes and prints
        logger = RunLogger(
            out,
            cfg.progress and self.rank == 0,
            self.total_steps,
            self.rollout.global_step,
            self.wall_time,
            self._resumed,
            stat_columns=("return_mean", "return_max", "grad_norm", "sigma"),
        )
        try:
            with terminate_as_interrupt():
                while self.rollout.global_step < self.total_steps:
                    if self._generation(logger):
                        break
                self._save(logger)
        except KeyboardInterrupt as interrupt:
            self.interrupt = interrupt
            with deferred_signals(reraise=False):
                if out is not None:  # a generation is applied whole or not at all: state() is consistent
                    self._save(logger, barrier=False)  # no collective: the others may be gone
                    print(f"\ninterrupted: checkpoint saved to {self.out}; continue with --resume")
                logger.close(out)
            return self.agent
        except BaseException:
            logger.close(None)
            raise
        logger.close(out)
        return self.agent

    def _generation(self, logger: RunLogger) -> bool:
        """ask -> rollouts -> tell/step -> log -> checkpoint; True when the callback asks to stop."""
        # 1. ask, 2. rollout
        X = self.strategy.ask(rows=self.candidates)  # this process's share
        returns, steps, observed = self._fitness(X)
        # 3. tell, step (writes the centre into the actor), observation statistics: one consistent update
        with deferred_signals():
            self.strategy.tell(torch.as_tensor(-returns, dtype=X.dtype))
            grad_norm = float(self.strategy.mean.grad.norm())
            self.strategy.optimizer.step()
            if self.agent.obs_normalizer is not None and len(observed):
                self.agent.obs_normalizer.stats.update(observed)
            self.iteration += 1
            self.rollout.global_step += steps
        # 4. logging, checkpoints, callback (episode rows: each candidate's mean return)
        self.recent_returns.extend(returns.tolist())
        self.last_stats = {
            "return_mean": float(returns.mean()),
            "return_max": float(returns.max()),
            "grad_norm": grad_norm,
            "sigma": self.strategy.scale,
        }
        finished = [
            (self.rollout.global_step, float(r), int(n)) for r, n in zip(returns, self._lengths, strict=True)
        ]
        lr = self.strategy.optimizer.param_groups[0]["lr"]
        logger.log(self.rollout.global_step, finished, self.recent_returns, self.last_stats, lr)
        every = self.config.checkpoint_every
        if every > 0 and self.iteration % every == 0:
            self._save(logger)
        return bool(self.callback is not None and self.callback(self))

    def _save(self, logger: RunLogger, barrier: bool = True) -> None:
        """Rank 0 writes (every process holds the same state); the others wait until it is complete."""
        if self.out is None:
            return
        self.wall_time = logger.elapsed()
        if self.rank == 0:
            tensors, meta = self.state()
            with deferred_signals():
                save_checkpoint(self.out, tensors, meta)
        if barrier:
            distributed.barrier()

    # ------------------------------------------------------------------ state (checkpoints, resume)
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The agent's checkpoint plus the strategy's state (tensors) and counters (JSON)."""
        tensors, meta = agent_state(self.agent)
        es_state = self.strategy.state_dict()
        scalars: dict[str, Any] = {}
        for key, value in es_state.items():
            if isinstance(value, Tensor):
                tensors[f"es.{key}"] = value.clone()
            elif key != "optimizer":
                scalars[key] = value
        optim_tensors, param_groups = optimizer_state(es_state["optimizer"], prefix="es.optim")
        tensors.update(optim_tensors)
        meta["training"] = {
            "seed": self.seed,
            "total_steps": self.total_steps,
            "global_step": self.rollout.global_step,
            "iteration": self.iteration,
            "recent_returns": list(self.recent_returns),
            "es": scalars,
            "param_groups": param_groups,
            "env_spec": self.env_spec,
            "wall_time": self.wall_time,
        }
        return tensors, meta

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        load_policy(self.agent, tensors, meta)
        tr = meta["training"]
        state: dict[str, Any] = dict(tr["es"])
        state.update(
            {k[3:]: v for k, v in tensors.items() if k.startswith("es.") and not k.startswith("es.optim.")}
        )
        state["optimizer"] = restore_optimizer_state(
            self.strategy.optimizer.state_dict(), tensors, tr["param_groups"], prefix="es.optim"
        )
        self.strategy.load_state_dict(state)
        self.rollout.global_step = tr["global_step"]
        self.iteration = tr["iteration"]
        self.recent_returns = deque(tr["recent_returns"], maxlen=20)
        self.wall_time = float(tr.get("wall_time", 0.0))
        self._resumed = True


def train_es(
    env: EnvLike,
    total_steps: int,
    seed: int,
    config: ESConfig,
    policy: ActorCritic | None = None,
    out: str | Path | None = None,
    callback=None,
) -> Agent:
    """Search a policy with an evolution strategy (called by ``rl.train(env, algo="es")``)."""
    return ESTrainer(env, config, seed, total_steps, policy, out, callback).run()


def resume_es(
    path: str | Path,
    total_steps: int | None = None,
    env: EnvLike | None = None,
    out: str | Path | None = None,
    **overrides: Any,
) -> Agent:
    """Continue the ES run saved in ``path`` (called by ``rl.resume``, which checked ``overrides``)."""
    tensors, meta = load_checkpoint(path, validate=check_run_checkpoint)
    tr = meta["training"]
    env = env if env is not None else tr["env_spec"]
    if env is None:
        raise ValueError("this run was trained on an env object or factory; pass env= to resume it")
    config = ESConfig(
        **{**meta["config"], "hidden_sizes": tuple(meta["config"]["hidden_sizes"]), **overrides}
    )
    trainer = ESTrainer(
        env, config, tr["seed"], total_steps if total_steps is not None else tr["total_steps"],
        out=out if out is not None else path,
    )  # fmt: skip
    trainer.load_state(tensors, meta)
    return trainer.run()
