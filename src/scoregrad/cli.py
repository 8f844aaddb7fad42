"""The ``scoregrad`` command line.

::

    scoregrad train CartPole-v1 --algo ppo --steps 100000 --seed 0 --out runs/cp
    scoregrad train CartPole-v1 --out runs/cp --resume      # continue an interrupted run
    scoregrad eval runs/cp --episodes 20
    scoregrad plot runs/cp

Every field of the config dataclasses (:mod:`scoregrad.rl.config`) is an option of ``train``, with
its type, choices, help and defaults read from the dataclass: ``num_envs`` is ``--num-envs``,
booleans are ``--norm-obs/--no-norm-obs``. One parse reads the whole command line; an option of
another algorithm than ``--algo``'s is a usage error (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


class UsageError(Exception):
    """A command-line mistake that argparse cannot see (one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``scoregrad train: error: ...``) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per config field of every algorithm, with type, choices, help and defaults taken
    from the dataclasses in :mod:`scoregrad.rl.config` (a field of some algorithms only says which)."""
    from scoregrad.rl.config import CONFIGS, options

    everywhere = parser.add_argument_group("config, every algorithm (defaults before presets)")
    specific = parser.add_argument_group("config, some algorithms only (defaults before presets)")
    for option in options():
        defaults = set(map(repr, option.defaults.values()))
        shown = (
            next(iter(option.defaults.values()))
            if len(defaults) == 1
            else ", ".join(f"{algo}: {value}" for algo, value in option.defaults.items())
        )
        help_text = f"{option.help} [{shown}]"
        group = everywhere
        if len(option.defaults) < len(CONFIGS):
            group = specific
            help_text += f" ({', '.join(option.defaults)})"
        if option.type is bool:
            kwargs: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif option.choices is not None:
            kwargs = {"choices": option.choices}
        elif typing.get_origin(option.type) is tuple:
            kwargs = {"type": int, "nargs": "+"}
        else:
            kwargs = {"type": option.type}
        group.add_argument(option.flag, dest=option.name, default=None, help=help_text, **kwargs)


def build_parser(algo: str = "ppo") -> argparse.ArgumentParser:
    """The whole command line in one parser; ``algo`` is the algorithm ``train`` uses without ``--algo``."""
    from scoregrad.rl.config import CONFIGS

    parser = _Parser(prog="scoregrad", description="Score-function gradients and policy gradients.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a policy on a Gymnasium env")
    train.add_argument("env", help="Gymnasium env id, e.g. CartPole-v1, or my_module:MyEnv-v0")
    train.add_argument("--algo", choices=list(CONFIGS), default=None, help=f"[{algo}]")
    train.set_defaults(default_algo=algo)
    train.add_argument("--steps", type=int, default=None, help="total env steps [100000, or the saved run's]")
    train.add_argument("--seed", type=int, default=None, help="seed [0]")
    train.add_argument(
        "--out", type=Path, default=None, help="run directory (checkpoints, CSV, TensorBoard, PNG)"
    )
    mode = train.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --out (only --steps, --progress, --checkpoint-every and "
        "--torch-threads may change)",
    )
    mode.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    train.add_argument(
        "--no-preset",
        action="store_true",
        help="ignore the per-env preset table (use the defaults for the env's spaces)",
    )
    scale = train.add_argument_group("scale-out (torch.distributed; see the README's 'Scaling out')")
    scale.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="run on this many local processes (torchrun is launched for you); --num-envs and --steps "
        "count over all of them [1]",
    )
    scale.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds a process waits for the others in a collective before the job fails [300]",
    )
    _add_config_options(train)

    ev = sub.add_parser("eval", help="evaluate a saved agent")
    ev.add_argument("run", type=Path, help="run or checkpoint directory")
    ev.add_argument("--env", default=None, help="env id (default: the one it was trained on)")
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=1000)
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")

    plot = sub.add_parser("plot", help="(re)draw the learning curve PNG of a run")
    plot.add_argument("run", type=Path)
    plot.add_argument("--output", type=Path, default=None, help="PNG path [RUN/learning_curve.png]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 2 for bad input, 130/143 after Ctrl-C/SIGTERM)."""
    from scoregrad.interrupts import deferred_signals, exit_status, terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # SIGTERM during start-up: a quiet exit 143, like Ctrl-C's 130
            # A signal that lands inside an import can leave a half-initialised module behind (numpy
            # without numpy.matrix, say) that some library then swallows: hold signals until the heavy
            # imports are done, then act on them.
            with deferred_signals():
                import gymnasium  # noqa: F401
                import torch  # noqa: F401

                import scoregrad.rl  # noqa: F401
            return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt as interrupt:
        print("scoregrad: interrupted", file=sys.stderr)
        return exit_status(interrupt)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    import gymnasium

    from scoregrad.distributed import ProcessGroupError
    from scoregrad.rl.checkpoint import CheckpointError
    from scoregrad.rl.config import ConfigError
    from scoregrad.rl.policies import UnsupportedSpaceError
    from scoregrad.rl.rollout import NonFiniteError
    from scoregrad.rl.trainer import EvaluationError, ResumeMismatchError, RunExistsError, SpaceMismatchError

    # Errors about the user's input get one clear line, not a traceback; bugs still show theirs.
    user_errors = (
        UsageError,
        CheckpointError,
        ConfigError,
        UnsupportedSpaceError,
        NonFiniteError,
        EvaluationError,
        ResumeMismatchError,
        RunExistsError,
        SpaceMismatchError,
        FileNotFoundError,
        gymnasium.error.Error,
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            status = _run(args, argv)
        for warning in caught:
            if issubclass(warning.category, RuntimeWarning):
                print(f"scoregrad {args.command}: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        return status
    except user_errors as error:
        print(f"scoregrad {args.command}: error: {error}", file=sys.stderr)
        return 2
    except ProcessGroupError as error:  # another process died, raised or timed out: not this one's fault
        print(f"scoregrad {args.command}: error: {error}", file=sys.stderr)
        return 1


def _print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, allow_nan=False))  # strict JSON: evaluation refuses non-finite returns


def _overrides(args: argparse.Namespace, algo: str) -> dict[str, Any]:
    """The config options given on the command line; one that ``algo`` does not have is a usage error."""
    from scoregrad.rl.config import CONFIGS, options

    given = {o.name: getattr(args, o.name) for o in options() if getattr(args, o.name, None) is not None}
    foreign = [name for name in given if name not in {f.name for f in fields(CONFIGS[algo])}]
    if foreign:
        flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise UsageError(f"{flags}: not an option of --algo {algo}")
    return given


def _resume(args: argparse.Namespace) -> int:
    """``train --resume``: the saved run continues; flags that would change what it is are refused."""
    from scoregrad import rl
    from scoregrad.interrupts import exit_status
    from scoregrad.rl.checkpoint import load_checkpoint
    from scoregrad.rl.trainer import RESUMABLE_FIELDS, ResumeMismatchError, check_run_checkpoint

    if args.out is None:
        raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
    _, meta = load_checkpoint(args.out, validate=check_run_checkpoint)
    tr = meta["training"] or {}
    saved_env = tr.get("env_spec") or meta.get("env_id")
    if args.env != saved_env:
        raise ResumeMismatchError(
            f"--resume: the run in {args.out} trained on {saved_env!r}, not {args.env!r}"
        )
    if args.algo is not None and args.algo != meta["algo"]:
        raise ResumeMismatchError(
            f"--resume: the run in {args.out} uses --algo {meta['algo']}, not {args.algo}"
        )
    if args.seed is not None and args.seed != tr.get("seed"):
        raise ResumeMismatchError(
            f"--resume: the run in {args.out} uses --seed {tr.get('seed')}, not {args.seed}"
        )
    if args.no_preset:
        raise ResumeMismatchError("--resume: --no-preset cannot change a saved run (its config is saved)")
    overrides = _overrides(args, meta["algo"])
    changed = {k: v for k, v in overrides.items() if k not in RESUMABLE_FIELDS}
    for name, value in changed.items():
        saved = meta["config"].get(name)
        if (list(value) if isinstance(value, tuple) else value) != saved:
            flag = "--" + name.replace("_", "-")
            raise ResumeMismatchError(
                f"--resume: {flag} {value} differs from the saved run's {saved!r}; only --steps, "
                f"{', '.join('--' + f.replace('_', '-') for f in RESUMABLE_FIELDS)} may change"
            )
    agent = rl.resume(
        args.out, total_steps=args.steps, **{k: overrides[k] for k in overrides if k in RESUMABLE_FIELDS}
    )
    if agent.trainer is not None and agent.trainer.interrupt is not None:
        return exit_status(agent.trainer.interrupt)
    print(f"resumed run saved to {args.out}")
    return 0


def _check_scale_out(args: argparse.Namespace) -> None:
    """``--nproc`` and ``--timeout``: positive, and under torchrun ``--nproc`` must be its process count."""
    from scoregrad import distributed

    if args.nproc is not None and args.nproc < 1:
        raise UsageError(f"--nproc must be >= 1; got {args.nproc}")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds; got {args.timeout}")
    if args.nproc is not None and distributed.launched():
        launched_with = int(os.environ["WORLD_SIZE"])
        if args.nproc != launched_with:
            raise UsageError(f"--nproc {args.nproc}, but torchrun started {launched_with} processes")


def _check_before_launch(args: argparse.Namespace) -> None:
    """What can be refused before any process starts: the config, its split, the run directory."""
    from scoregrad.rl.config import config_for
    from scoregrad.rl.defaults import settings_for
    from scoregrad.rl.trainer import check_total_steps, prepare_run_directory

    if args.resume:
        if args.out is None:
            raise UsageError("--resume needs --out RUN_DIR (the run to continue)")
        return  # the saved run's checks happen in the processes, as in one process
    algo = args.algo or args.default_algo
    settings = settings_for(args.env, algo, preset=not args.no_preset)
    config = config_for(algo, **{**settings, **_overrides(args, algo)})
    if args.steps is not None:
        check_total_steps(args.steps)
    flag, split = ("--popsize", config.popsize) if algo == "es" else ("--num-envs", config.num_envs)
    if split % args.nproc:
        raise UsageError(f"{flag} {split} must be divisible by --nproc {args.nproc}")
    if args.out is not None and not args.overwrite:
        prepare_run_directory(args.out, overwrite=False)


def _launch(nproc: int, argv: list[str]) -> int:
    """Run this same command line on ``nproc`` local processes under torchrun; its exit status."""
    import signal
    import subprocess

    from scoregrad.interrupts import exit_status

    rest, skip = [], False
    for arg in argv:  # drop --nproc N / --nproc=N: the processes are torchrun's
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    proc = subprocess.Popen([*cmd, "-m", "scoregrad", *rest], env=env)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:  # torchrun passes it on to every process
        received.append(signum)
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        return exit_status(KeyboardInterrupt() if received[-1] == signal.SIGINT else _terminated())
    if status != 0:
        print(
            f"scoregrad train: error: the {nproc}-process job failed (torchrun exit status {status}); "
            "the failing process's message is above",
            file=sys.stderr,
        )
    return status


def _terminated() -> BaseException:
    from scoregrad.interrupts import Terminated

    return Terminated()


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from scoregrad import rl
    from scoregrad.interrupts import exit_status

    if args.command == "train":
        from scoregrad import distributed

        _check_scale_out(args)
        if (args.nproc or 1) > 1 and not distributed.launched():
            _check_before_launch(args)
            return _launch(args.nproc, argv)
        distributed.init(timeout=args.timeout)
        if args.resume:
            return _resume(args)
        algo = args.algo or args.default_algo
        agent = rl.train(
            args.env,
            algo=algo,
            total_steps=args.steps if args.steps is not None else 100_000,
            seed=args.seed if args.seed is not None else 0,
            preset=not args.no_preset,
            out=args.out,
            overwrite=args.overwrite,
            **_overrides(args, algo),
        )
        if agent.trainer is not None and agent.trainer.interrupt is not None:
            return exit_status(
                agent.trainer.interrupt
            )  # checkpoint saved; 130 after Ctrl-C, 143 after SIGTERM
        if not distributed.is_main():
            return 0
        mean, std = rl.evaluate(agent, args.env, episodes=20, seed=1000)
        _print_json({"env": args.env, "algo": algo, "eval_mean_return": mean, "eval_std": std})
        return 0
    if args.command == "eval":
        agent = rl.load(args.run)
        env = args.env or agent.env_id
        if env is None:
            raise UsageError("this run does not record an env id; pass --env")
        mean, std = rl.evaluate(agent, env, args.episodes, args.seed, deterministic=not args.stochastic)
        _print_json({"env": env, "episodes": args.episodes, "mean_return": mean, "std_return": std})
        return 0
    from scoregrad.rl.plotting import plot_run

    print(plot_run(args.run, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
