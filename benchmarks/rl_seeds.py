"""How many seeds a setting solves: train on seeds A..B-1 and evaluate each final policy.

For each seed: ``rl.train(env, algo, total_steps=budget, seed=s, **overrides)`` (the env's preset,
with ``--set`` overrides on top), then the final policy plays 20 deterministic episodes
(``rl.evaluate(agent, env, episodes=20, seed=1000)``); solved = mean return >= the env's
``reward_threshold``. This is the check a preset has to pass on every seed tried
(``scoregrad.rl.presets``). Runs go to ``--processes`` worker processes (one torch thread each); the
table gives, per setting, the seeds solved, the lowest return and the median training time.
Writes ``benchmarks/results/<name>.json`` and ``.md``.

    python benchmarks/rl_seeds.py --seeds 0 60                                  # the CartPole preset
    python benchmarks/rl_seeds.py --seeds 0 60 --set clip_coef=0.2 gae_lambda=0.9 --label old
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from common import RESULTS, markdown_table, save, table


def run_seed(env: str, algo: str, budget: int, seed: int, overrides: dict) -> dict:
    import torch

    from scoregrad import rl

    torch.set_num_threads(1)
    start = time.perf_counter()
    agent = rl.train(env, algo, total_steps=budget, seed=seed, progress=False, **overrides)
    seconds = time.perf_counter() - start
    mean, std = rl.evaluate(agent, env, episodes=20, seed=1000)
    return {"seed": seed, "mean_return": mean, "std_return": std, "train_s": seconds}


def parse_overrides(pairs: list[str]) -> dict:
    """``["clip_coef=0.2", "hidden_sizes=(32, 32)"]`` -> ``{"clip_coef": 0.2, "hidden_sizes": (32, 32)}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"rl_seeds.py: error: --set takes NAME=VALUE, got {pair!r}")
        out[key] = ast.literal_eval(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--budget", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 10], metavar=("FIRST", "END"))
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="config overrides")
    parser.add_argument("--label", default="preset", help="the setting's name in the table")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--name", default="rl_seeds", help="results file (rows of other labels are kept)")
    args = parser.parse_args()
    import gymnasium as gym

    overrides = parse_overrides(args.set)
    threshold = gym.spec(args.env).reward_threshold
    seeds = range(*args.seeds)
    with ProcessPoolExecutor(args.processes) as pool:
        n = len(seeds)
        runs = list(
            pool.map(run_seed, [args.env] * n, [args.algo] * n, [args.budget] * n, seeds, [overrides] * n)
        )
    for r in runs:
        print(f"{args.label} seed {r['seed']}: {r['mean_return']:.1f} ({r['train_s']:.1f} s)")
    path = RESULTS / f"{args.name}.json"
    settings = json.loads(path.read_text())["settings"] if path.exists() else {}
    settings[args.label] = {
        "env": args.env,
        "algo": args.algo,
        "budget": args.budget,
        "overrides": {k: repr(v) for k, v in overrides.items()},
        "threshold": threshold,
        "runs": runs,
    }
    rows = [
        {
            "setting": label,
            "env": s["env"],
            "overrides": ", ".join(f"{k}={v}" for k, v in s["overrides"].items()) or "-",
            "seeds": f"{min(r['seed'] for r in s['runs'])}-{max(r['seed'] for r in s['runs'])}",
            "solved": f"{sum(r['mean_return'] >= s['threshold'] for r in s['runs'])}/{len(s['runs'])}",
            "lowest": min(r["mean_return"] for r in s["runs"]),
            "median_train_s": statistics.median(r["train_s"] for r in s["runs"]),
        }
        for label, s in settings.items()
    ]
    columns = ["setting", "env", "overrides", "seeds", "solved", "lowest", "median_train_s"]
    formats = {"lowest": ".1f", "median_train_s": ".2f"}
    print(table(rows, columns, formats))
    save(path, {"settings": settings, "rows": rows}, markdown=markdown_table(rows, columns, formats))


if __name__ == "__main__":
    main()
