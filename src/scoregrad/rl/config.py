"""Typed configuration, one dataclass per algorithm.

Every field documents itself through ``metadata["help"]`` and declares its valid values: a
``Literal`` type for a choice, ``metadata["check"]`` for a numeric range. The one validation
function, :func:`validate`, runs whenever a config is built (``__post_init__``), so a bad value
given to ``rl.train``, on the command line, or found in an edited checkpoint fails at the door with
a :class:`ConfigError` naming the field. :mod:`scoregrad.cli` turns the fields into command-line
options (``num_envs`` becomes ``--num-envs``) with the same choices. Per-environment tuned values
live in :mod:`scoregrad.rl.presets`.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "CommonConfig",
    "PPOConfig",
    "A2CConfig",
    "ReinforceConfig",
    "ESConfig",
    "CONFIGS",
    "ConfigError",
    "config_for",
    "describe",
    "choices",
    "validate",
    "Option",
    "options",
]


class ConfigError(ValueError):
    """A config field has a value outside its type, choices or range."""


# Range checks: (predicate, what the value must be), attached to fields as metadata["check"].
POSITIVE = (lambda v: v > 0, "> 0")
NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")


def _f(default: Any, help: str, check: tuple | None = None) -> Any:  # noqa: A002 - "help" mirrors argparse
    metadata = {"help": help, "check": check}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class CommonConfig:
    """Settings shared by every algorithm."""

    num_envs: int = _f(8, "parallel environments in the vector env", POSITIVE)
    num_steps: int = _f(128, "steps per environment in each rollout", POSITIVE)
    gamma: float = _f(0.99, "discount factor", UNIT)
    learning_rate: float = _f(3e-4, "Adam learning rate", POSITIVE)
    anneal_lr: bool = _f(True, "decay the learning rate linearly to 0 over total_steps")
    max_grad_norm: float = _f(0.5, "clip the global gradient norm to this (<= 0: no clipping)")
    ent_coef: float = _f(0.0, "entropy bonus coefficient", NON_NEGATIVE)
    vf_coef: float = _f(0.5, "value loss coefficient", NON_NEGATIVE)
    hidden_sizes: tuple[int, ...] = _f(
        (64, 64), "hidden layer sizes of the actor and the critic MLPs", POSITIVE
    )
    activation: Literal["tanh", "relu", "elu"] = _f("tanh", "hidden activation")
    log_std_init: float = _f(0.0, "Box actions: initial log standard deviation")
    state_dependent_std: bool = _f(False, "Box actions: log-std is an output of the actor, not a parameter")
    squash: bool = _f(False, "Box actions: tanh-squash into the bounds (else sample and clip)")
    norm_obs: bool = _f(False, "normalise observations with running mean/std")
    norm_reward: bool = _f(False, "scale rewards by the running std of the discounted return")
    vectorization_mode: Literal["auto", "sync", "async", "vector_entry_point"] = _f(
        "auto", "auto (native vector env if any, else sync), sync, async or vector_entry_point"
    )
    on_non_finite: Literal["raise", "skip"] = _f(
        "raise", "non-finite reward/observation: raise, or skip the transition"
    )
    torch_threads: int = _f(
        1, "torch CPU threads (small MLPs are fastest single-threaded; 0 leaves it)", NON_NEGATIVE
    )
    checkpoint_every: int = _f(
        0, "save a checkpoint every this many iterations (0: only at the end)", NON_NEGATIVE
    )
    keep_best: bool = _f(
        False, "evaluate the deterministic policy periodically and keep the best one (saved to RUN/best)"
    )
    eval_every: int = _f(
        0, "env steps between evaluations (0: total_steps/20 with keep_best, else none)", NON_NEGATIVE
    )
    eval_episodes: int = _f(10, "episodes per periodic evaluation", POSITIVE)
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class PPOConfig(CommonConfig):
    """Proximal Policy Optimization, clipped objective (Schulman et al., 2017)."""

    gae_lambda: float = _f(0.95, "GAE lambda (Schulman et al., 2015)", UNIT)
    update_epochs: int = _f(4, "passes over each rollout", POSITIVE)
    num_minibatches: int = _f(4, "minibatches per pass", POSITIVE)
    clip_coef: float = _f(0.2, "PPO ratio clip epsilon", POSITIVE)
    clip_vloss: bool = _f(True, "clip the value update around the old value prediction")
    target_kl: float = _f(0.0, "stop the epochs early when approx KL exceeds this (0: never)", NON_NEGATIVE)
    norm_adv: bool = _f(True, "normalise advantages per minibatch")


@dataclass
class A2CConfig(CommonConfig):
    """Synchronous advantage actor-critic (Mnih et al., 2016)."""

    num_steps: int = _f(5, "steps per environment in each rollout (n of the n-step return)", POSITIVE)
    learning_rate: float = _f(7e-4, "Adam learning rate", POSITIVE)
    gae_lambda: float = _f(1.0, "GAE lambda; 1.0 gives the classic n-step advantage", UNIT)
    norm_adv: bool = _f(False, "normalise advantages per batch")


@dataclass
class ReinforceConfig(CommonConfig):
    """REINFORCE (Williams, 1992), optionally with a baseline."""

    num_steps: int = _f(512, "steps per environment in each rollout", POSITIVE)
    learning_rate: float = _f(1e-3, "Adam learning rate", POSITIVE)
    weights: Literal["reward_to_go", "return"] = _f(
        "reward_to_go", "what scales grad log pi: reward_to_go or return (whole episode)"
    )
    baseline: Literal["none", "mean", "leave_one_out", "value"] = _f(
        "value", "none, mean (batch mean), leave_one_out (other episodes) or value (learned)"
    )
    norm_adv: bool = _f(True, "normalise (weight - baseline) per batch")
    anneal_lr: bool = _f(False, "decay the learning rate linearly to 0 over total_steps")


@dataclass
class ESConfig:
    """Policy search by an evolution strategy (Salimans et al., 2017); see :mod:`scoregrad.rl.es`."""

    strategy: Literal["openes", "snes", "xnes", "pgpe"] = _f("openes", "search strategy (scoregrad.es)")
    sigma: float = _f(0.1, "initial standard deviation of the parameter noise", POSITIVE)
    popsize: int = _f(50, "candidates per generation (even with antithetic)", POSITIVE)
    antithetic: bool = _f(True, "mirrored pairs of candidates")
    shaping: Literal["centered_rank", "nes", "none"] = _f("centered_rank", "fitness shaping")
    learning_rate: float = _f(
        0.0,
        "optimiser step (OpenES Adam lr, NES lr, PGPE fixed ClipUp step); 0: the strategy's default",
        NON_NEGATIVE,
    )
    weight_decay: float = _f(
        0.005, "OpenES only: L2 coefficient on the centre (0 for other strategies)", NON_NEGATIVE
    )
    noise: Literal["generator", "table"] = _f(
        "generator",
        "parameter noise: a randn block per generation, or windows of a shared table (scoregrad.es.noise)",
    )
    episodes_per_candidate: int = _f(1, "episodes averaged into each candidate's fitness", POSITIVE)
    hidden_sizes: tuple[int, ...] = _f((64, 64), "hidden layer sizes of the actor MLP", POSITIVE)
    activation: Literal["tanh", "relu", "elu"] = _f("tanh", "hidden activation")
    log_std_init: float = _f(
        0.0, "Box actions: initial log-std (unused by the deterministic ES policy's search)"
    )
    state_dependent_std: bool = _f(False, "Box actions: log-std is an output of the actor")
    squash: bool = _f(False, "Box actions: tanh-squash into the bounds (else clip)")
    norm_obs: bool = _f(True, "normalise observations with running mean/std (updated after each generation)")
    vectorization_mode: Literal["auto", "sync", "async", "vector_entry_point"] = _f(
        "auto", "vector env of popsize * episodes_per_candidate envs"
    )
    torch_threads: int = _f(1, "torch CPU threads (0 leaves it)", NON_NEGATIVE)
    checkpoint_every: int = _f(
        0, "save a checkpoint every this many generations (0: only at the end)", NON_NEGATIVE
    )
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        validate(self)


CONFIGS: dict[str, type] = {"ppo": PPOConfig, "a2c": A2CConfig, "reinforce": ReinforceConfig, "es": ESConfig}


def config_for(algo: str, **overrides: Any) -> CommonConfig:
    """The config of ``algo`` with ``overrides`` applied; unknown names and bad choices are errors."""
    if algo not in CONFIGS:
        raise ValueError(f"algo must be one of {sorted(CONFIGS)}; got {algo!r}")
    cls = CONFIGS[algo]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise TypeError(f"unknown {algo} config option(s) {unknown}; valid: {sorted(names)}")
    if isinstance(overrides.get("hidden_sizes"), list):
        overrides["hidden_sizes"] = tuple(overrides["hidden_sizes"])
    return cls(**overrides)


def choices(cls: type[CommonConfig], name: str) -> tuple[Any, ...] | None:
    """The allowed values of field ``name`` when its type is a ``Literal``, else None."""
    hint = typing.get_type_hints(cls)[name]
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


def _check_type(name: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{name} must be one of {list(typing.get_args(hint))}; got {value!r}")
        return
    if origin is tuple:
        if not isinstance(value, tuple) or not value:
            raise ConfigError(f"{name} must be a non-empty tuple of ints; got {value!r}")
        for item in value:
            _check_type(name, item, int)
        return
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = True
    if not ok:
        kind = {bool: "a bool", int: "an int", float: "a finite number"}[hint]
        raise ConfigError(f"{name} must be {kind}; got {value!r}")


def validate(config: CommonConfig) -> None:
    """Check every field's type, choices and range; raise :class:`ConfigError` naming the first bad one."""
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        _check_type(f.name, value, hints[f.name])
        check = f.metadata.get("check")
        if check is not None:
            predicate, text = check
            for item in value if isinstance(value, tuple) else (value,):
                if not predicate(item):
                    raise ConfigError(f"{f.name} must be {text}; got {value!r}")


def describe(cls: type[CommonConfig]) -> list[tuple[str, Any, str]]:
    """``(name, default, help)`` for every field, for docs and the CLI."""
    rows = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        rows.append((f.name, default, f.metadata.get("help", "")))
    return rows


@dataclass
class Option:
    """One config field as a command-line option, gathered over every algorithm's dataclass.

    ``defaults`` maps each algorithm that has the field to its default there; ``type`` is the
    field's type hint (``Literal[...]`` gives ``choices``).
    """

    name: str
    type: Any
    help: str
    defaults: dict[str, Any]
    choices: tuple[Any, ...] | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def options() -> list[Option]:
    """Every field of every config in :data:`CONFIGS`, once, in declaration order (the CLI's source)."""
    table: dict[str, Option] = {}
    for algo, cls in CONFIGS.items():
        hints = typing.get_type_hints(cls)
        for name, default, help_text in describe(cls):
            if name not in table:
                table[name] = Option(name, hints[name], help_text, {}, choices(cls, name))
            table[name].defaults[algo] = default
    return list(table.values())
