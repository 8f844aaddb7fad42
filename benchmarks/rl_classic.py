"""Acrobot-v1, Pendulum-v1, LunarLander-v3 (and HalfCheetah-v5): PPO within a step budget.

For each env, trains scoregrad PPO with the env's preset (``scoregrad.rl.presets``) for the
budget in ``BUDGETS``, then reports the mean of 20 deterministic evaluation episodes (seeds
1000..1019) against the target; optionally Stable-Baselines3 PPO with its defaults for the same
budget in the same run (``--sb3``). Single-threaded torch. Prints a table, writes JSON.

    python benchmarks/rl_classic.py --envs Acrobot-v1 Pendulum-v1 --seeds 3 --sb3
    python benchmarks/rl_classic.py --envs LunarLander-v3 --seeds 1
    python benchmarks/rl_classic.py --envs HalfCheetah-v5 --seeds 1   # ~1M steps; long
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import evaluate_predict, save

from scoregrad import rl
from scoregrad.rl.presets import BUDGETS

TARGETS = {"Acrobot-v1": -100.0, "Pendulum-v1": -250.0, "LunarLander-v3": 200.0, "HalfCheetah-v5": 1500.0}
RESULTS = Path(__file__).parent / "results"


def run_ours(env_id: str, seed: int, budget: int) -> dict:
    t = time.perf_counter()
    agent = rl.train(env_id, "ppo", total_steps=budget, seed=seed, progress=False)
    train_time = time.perf_counter() - t
    mean, std = rl.evaluate(agent, env_id, episodes=20, seed=1000)
    return {"seed": seed, "mean_return": mean, "std_return": std, "train_time_s": train_time}


def run_sb3(env_id: str, seed: int, budget: int) -> dict:
    from stable_baselines3 import PPO

    t = time.perf_counter()
    model = PPO("MlpPolicy", env_id, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=budget)
    train_time = time.perf_counter() - t

    mean, std = evaluate_predict(lambda obs: model.predict(obs, deterministic=True)[0], env_id, 20, 1000)
    return {"seed": seed, "mean_return": mean, "std_return": std, "train_time_s": train_time}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["Acrobot-v1", "Pendulum-v1", "LunarLander-v3"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sb3", action="store_true", help="also run SB3 PPO defaults with the same budget")
    parser.add_argument("--budget", type=int, default=None, help="override the per-env budget")
    parser.add_argument("--out", type=Path, default=RESULTS / "rl_classic.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for env_id in args.envs:
        budget = args.budget or BUDGETS[env_id]
        for lib in ["scoregrad_ppo"] + (["sb3_ppo"] if args.sb3 else []):
            runs = []
            for seed in range(args.seeds):
                r = run_sb3(env_id, seed, budget) if lib == "sb3_ppo" else run_ours(env_id, seed, budget)
                print(env_id, lib, r, flush=True)
                runs.append(r)
            rows.append(
                {
                    "env": env_id,
                    "library": lib,
                    "budget": budget,
                    "target": TARGETS[env_id],
                    "median_return": statistics.median(r["mean_return"] for r in runs),
                    "reached": sum(r["mean_return"] >= TARGETS[env_id] for r in runs),
                    "median_train_time_s": statistics.median(r["train_time_s"] for r in runs),
                    "runs": runs,
                }
            )
    print(
        "\n| env | library | budget | target | median eval return | seeds reaching target | median time (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env']} | {r['library']} | {r['budget']:,} | {r['target']:g} | {r['median_return']:.1f} "
            f"| {r['reached']}/{len(r['runs'])} | {r['median_train_time_s']:.1f} |"
        )
    save(args.out, {"benchmark": "rl_classic", "rows": rows}, packages=("stable-baselines3",))


if __name__ == "__main__":
    main()
