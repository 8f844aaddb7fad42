"""Typed configuration, one dataclass per algorithm.

Every field documents itself through ``metadata["help"]``; :mod:`scoregrad.cli` turns the fields
into command-line options (``num_envs`` becomes ``--num-envs``). Per-environment tuned values live
in :mod:`scoregrad.rl.presets`.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

__all__ = [
    "CommonConfig",
    "PPOConfig",
    "A2CConfig",
    "ReinforceConfig",
    "ESConfig",
    "CONFIGS",
    "config_for",
    "describe",
]


def _f(default: Any, help: str) -> Any:  # noqa: A002 - "help" mirrors argparse
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class CommonConfig:
    """Settings shared by every algorithm."""

    num_envs: int = _f(8, "parallel environments in the vector env")
    num_steps: int = _f(128, "steps per environment in each rollout")
    gamma: float = _f(0.99, "discount factor")
    learning_rate: float = _f(3e-4, "Adam learning rate")
    anneal_lr: bool = _f(True, "decay the learning rate linearly to 0 over total_steps")
    max_grad_norm: float = _f(0.5, "clip the global gradient norm to this (<= 0: no clipping)")
    ent_coef: float = _f(0.0, "entropy bonus coefficient")
    vf_coef: float = _f(0.5, "value loss coefficient")
    hidden_sizes: tuple[int, ...] = _f((64, 64), "hidden layer sizes of the actor and the critic MLPs")
    activation: str = _f("tanh", "hidden activation: tanh, relu or elu")
    log_std_init: float = _f(0.0, "Box actions: initial log standard deviation")
    state_dependent_std: bool = _f(False, "Box actions: log-std is an output of the actor, not a parameter")
    squash: bool = _f(False, "Box actions: tanh-squash into the bounds (else sample and clip)")
    norm_obs: bool = _f(False, "normalise observations with running mean/std")
    norm_reward: bool = _f(False, "scale rewards by the running std of the discounted return")
    vectorization_mode: str = _f("auto", "auto (native vector env if any, else sync), sync or async")
    on_non_finite: str = _f("raise", "non-finite reward/observation: raise, or skip the transition")
    torch_threads: int = _f(1, "torch CPU threads (small MLPs are fastest single-threaded; 0 leaves it)")
    checkpoint_every: int = _f(0, "save a checkpoint every this many iterations (0: only at the end)")
    progress: bool = _f(True, "show a progress bar")


@dataclass
class PPOConfig(CommonConfig):
    """Proximal Policy Optimization, clipped objective (Schulman et al., 2017)."""

    gae_lambda: float = _f(0.95, "GAE lambda (Schulman et al., 2015)")
    update_epochs: int = _f(4, "passes over each rollout")
    num_minibatches: int = _f(4, "minibatches per pass")
    clip_coef: float = _f(0.2, "PPO ratio clip epsilon")
    clip_vloss: bool = _f(True, "clip the value update around the old value prediction")
    target_kl: float = _f(0.0, "stop the epochs early when approx KL exceeds this (0: never)")
    norm_adv: bool = _f(True, "normalise advantages per minibatch")
    ent_coef: float = _f(0.0, "entropy bonus coefficient")


@dataclass
class A2CConfig(CommonConfig):
    """Synchronous advantage actor-critic (Mnih et al., 2016)."""

    num_steps: int = _f(5, "steps per environment in each rollout (n of the n-step return)")
    learning_rate: float = _f(7e-4, "Adam learning rate")
    gae_lambda: float = _f(1.0, "GAE lambda; 1.0 gives the classic n-step advantage")
    norm_adv: bool = _f(False, "normalise advantages per batch")
    ent_coef: float = _f(0.0, "entropy bonus coefficient")


@dataclass
class ReinforceConfig(CommonConfig):
    """REINFORCE (Williams, 1992), optionally with a baseline."""

    num_steps: int = _f(512, "steps per environment in each rollout")
    learning_rate: float = _f(1e-3, "Adam learning rate")
    weights: str = _f("reward_to_go", "what scales grad log pi: reward_to_go or return (whole episode)")
    baseline: str = _f("value", "none, mean (batch mean), leave_one_out (other episodes) or value (learned)")
    norm_adv: bool = _f(True, "normalise (weight - baseline) per batch")
    anneal_lr: bool = _f(False, "decay the learning rate linearly to 0 over total_steps")


@dataclass
class ESConfig:
    """Policy search by an evolution strategy (Salimans et al., 2017); see :mod:`scoregrad.rl.es`."""

    strategy: str = _f("openes", "search strategy: openes, snes, xnes or pgpe (scoregrad.es)")
    sigma: float = _f(0.1, "initial standard deviation of the parameter noise")
    popsize: int = _f(50, "candidates per generation (even with antithetic)")
    antithetic: bool = _f(True, "mirrored pairs of candidates")
    shaping: str = _f("centered_rank", "fitness shaping: centered_rank, nes or none")
    learning_rate: float = _f(
        0.0, "optimiser step (OpenES Adam lr, NES lr, PGPE fixed ClipUp step); 0: the strategy's default"
    )
    weight_decay: float = _f(0.005, "OpenES only: L2 coefficient on the centre (0 for other strategies)")
    episodes_per_candidate: int = _f(1, "episodes averaged into each candidate's fitness")
    hidden_sizes: tuple[int, ...] = _f((64, 64), "hidden layer sizes of the actor MLP")
    activation: str = _f("tanh", "hidden activation: tanh, relu or elu")
    log_std_init: float = _f(
        0.0, "Box actions: initial log-std (unused by the deterministic ES policy's search)"
    )
    state_dependent_std: bool = _f(False, "Box actions: log-std is an output of the actor")
    squash: bool = _f(False, "Box actions: tanh-squash into the bounds (else clip)")
    norm_obs: bool = _f(True, "normalise observations with running mean/std (updated after each generation)")
    vectorization_mode: str = _f(
        "auto", "auto, sync or async vector env (popsize * episodes_per_candidate envs)"
    )
    torch_threads: int = _f(1, "torch CPU threads (0 leaves it)")
    checkpoint_every: int = _f(0, "save a checkpoint every this many generations (0: only at the end)")
    progress: bool = _f(True, "show a progress bar")


CONFIGS: dict[str, type] = {"ppo": PPOConfig, "a2c": A2CConfig, "reinforce": ReinforceConfig, "es": ESConfig}

_CHOICES = {
    "activation": ("tanh", "relu", "elu"),
    "vectorization_mode": ("auto", "sync", "async", "vector_entry_point"),
    "on_non_finite": ("raise", "skip"),
    "weights": ("reward_to_go", "return"),
    "baseline": ("none", "mean", "leave_one_out", "value"),
    "strategy": ("openes", "snes", "xnes", "pgpe"),
    "shaping": ("centered_rank", "nes", "none"),
}


def config_for(algo: str, **overrides: Any) -> CommonConfig:
    """The config of ``algo`` with ``overrides`` applied; unknown names and bad choices are errors."""
    if algo not in CONFIGS:
        raise ValueError(f"algo must be one of {sorted(CONFIGS)}; got {algo!r}")
    cls = CONFIGS[algo]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown {algo} config option(s) {unknown}; valid: {sorted(names)}")
    if "hidden_sizes" in overrides:
        overrides["hidden_sizes"] = tuple(overrides["hidden_sizes"])
    config = cls(**overrides)
    for name, choices in _CHOICES.items():
        if hasattr(config, name) and getattr(config, name) not in choices:
            raise ValueError(f"{name} must be one of {choices}; got {getattr(config, name)!r}")
    return config


def describe(cls: type[CommonConfig]) -> list[tuple[str, Any, str]]:
    """``(name, default, help)`` for every field, for docs and the CLI."""
    rows = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f.name, default, f.metadata.get("help", "")))
    return rows
