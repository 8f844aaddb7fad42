"""The ``scoregrad`` command line.

::

    scoregrad train CartPole-v1 --algo ppo --steps 100000 --seed 0 --out runs/cp
    scoregrad train CartPole-v1 --out runs/cp --resume      # continue an interrupted run
    scoregrad eval runs/cp --episodes 20
    scoregrad plot runs/cp

Every field of the algorithm's config dataclass (:mod:`scoregrad.rl.config`) is an option of
``train``: ``num_envs`` is ``--num-envs``, booleans are ``--norm-obs/--no-norm-obs``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


def _add_config_options(parser: argparse.ArgumentParser, algo: str) -> None:
    from scoregrad.rl.config import CONFIGS, describe

    cls = CONFIGS[algo]
    group = parser.add_argument_group(f"{algo} config ({cls.__name__}; defaults before presets)")
    types = {f.name: f.type for f in fields(cls)}
    for name, default, help_text in describe(cls):
        flag = "--" + name.replace("_", "-")
        kind = str(types[name])
        if isinstance(default, bool):
            group.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif isinstance(default, tuple):
            group.add_argument(
                flag, dest=name, type=int, nargs="+", default=None, help=f"{help_text} [{default}]"
            )
        else:
            py = {"int": int, "float": float, "str": str}.get(kind, type(default))
            group.add_argument(flag, dest=name, type=py, default=None, help=f"{help_text} [{default}]")


def build_parser(algo: str = "ppo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scoregrad", description="Score-function gradients and policy gradients."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a policy on a Gymnasium env")
    train.add_argument("env", help="Gymnasium env id, e.g. CartPole-v1")
    train.add_argument("--algo", choices=["ppo", "a2c", "reinforce", "es"], default="ppo")
    train.add_argument("--steps", type=int, default=None, help="total env steps [100000, or the saved run's]")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--out", type=Path, default=None, help="run directory (checkpoint, CSV, TensorBoard, PNG)"
    )
    train.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    train.add_argument("--no-preset", action="store_true", help="ignore the per-env preset table")
    _add_config_options(train, algo)

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


def _algo_from_argv(argv: Sequence[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--algo" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--algo="):
            return arg.split("=", 1)[1]
    return "ppo"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    algo = _algo_from_argv(argv)
    if algo not in ("ppo", "a2c", "reinforce", "es"):
        algo = "ppo"  # let argparse report the bad choice
    args = build_parser(algo).parse_args(argv)

    import gymnasium

    from scoregrad.rl.checkpoint import CheckpointError
    from scoregrad.rl.policies import UnsupportedSpaceError
    from scoregrad.rl.rollout import NonFiniteError

    # Errors about the user's input get one clear line, not a traceback; bugs still show theirs.
    user_errors = (
        CheckpointError,
        UnsupportedSpaceError,
        NonFiniteError,
        FileNotFoundError,
        gymnasium.error.Error,
    )
    try:
        return _run(args)
    except user_errors as error:
        print(f"scoregrad {args.command}: error: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from scoregrad import rl

    if args.command == "train":
        if args.resume:
            if args.out is None:
                raise SystemExit("--resume needs --out RUN_DIR (the run to continue)")
            agent = rl.resume(args.out, total_steps=args.steps)
            if agent.trainer is not None and agent.trainer.interrupted:
                return 130
            print(f"resumed run saved to {args.out}")
            return 0
        overrides: dict[str, Any] = {
            f.name: getattr(args, f.name)
            for f in fields(rl.config.CONFIGS[args.algo])
            if getattr(args, f.name, None) is not None
        }
        agent = rl.train(
            args.env,
            algo=args.algo,
            total_steps=args.steps if args.steps is not None else 100_000,
            seed=args.seed,
            preset=not args.no_preset,
            out=args.out,
            **overrides,
        )
        if agent.trainer is not None and agent.trainer.interrupted:
            return 130  # checkpoint saved; the conventional exit status after Ctrl-C
        mean, std = rl.evaluate(agent, args.env, episodes=20, seed=1000)
        print(json.dumps({"env": args.env, "algo": args.algo, "eval_mean_return": mean, "eval_std": std}))
        return 0
    if args.command == "eval":
        agent = rl.load(args.run)
        env = args.env or agent.env_id
        if env is None:
            raise SystemExit("this run does not record an env id; pass --env")
        mean, std = rl.evaluate(agent, env, args.episodes, args.seed, deterministic=not args.stochastic)
        print(json.dumps({"env": env, "episodes": args.episodes, "mean_return": mean, "std_return": std}))
        return 0
    from scoregrad.rl.plotting import plot_run

    print(plot_run(args.run, args.output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
