"""Throughput on CartPole-v1: the whole PPO training loop vs raw vectorised env stepping.

For 16, 64 and 256 envs this measures env steps per second of
  * raw: ``envs.step`` alone on Gymnasium's native CartPole vector env with precomputed random
    actions (the ceiling on this machine);
  * rollout: scoregrad's rollout collection (policy forward, sampling, checks, buffer writes);
  * train: the full ``rl.train`` loop (rollout + GAE + PPO update with the CartPole preset,
    ``num_steps=64``), wall-clock including everything.
Single-threaded torch. Prints a table, writes JSON and a PNG under benchmarks/results/.

    python benchmarks/rl_throughput.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from common import save

from scoregrad import rl
from scoregrad.rl.rollout import collect_rollout

RESULTS = Path(__file__).parent / "results"


def raw_sps(num_envs: int, steps: int) -> float:
    envs = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=(steps, num_envs))
    t = time.perf_counter()
    for a in actions:
        envs.step(a)
    return steps * num_envs / (time.perf_counter() - t)


def rollout_sps(num_envs: int, iterations: int) -> float:
    config = rl.config_for(
        "ppo", **{**rl.PRESETS["CartPole-v1"]["ppo"], "num_envs": num_envs, "num_steps": 64}
    )
    tr = rl.Trainer("CartPole-v1", "ppo", config, seed=0, total_steps=10**9)
    t = time.perf_counter()
    for _ in range(iterations):
        collect_rollout(
            tr.envs, tr.agent.policy, tr.buffer, tr.rollout, tr.generator, tr._obs_fn, tr._mask_fn
        )
    return iterations * 64 * num_envs / (time.perf_counter() - t)


def train_sps(num_envs: int, total: int) -> float:
    t = time.perf_counter()
    rl.train("CartPole-v1", "ppo", total_steps=total, seed=0, progress=False, num_envs=num_envs, num_steps=64)
    return total / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--out", type=Path, default=RESULTS / "rl_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train_sps(16, 16 * 64 * 2)  # warm-up
    rows = []
    for n in args.envs:
        iterations = max(4, 200_000 // (n * 64))
        row = {
            "num_envs": n,
            "raw_env_sps": raw_sps(n, max(2000, 400_000 // n)),
            "rollout_sps": rollout_sps(n, iterations),
            "train_sps": train_sps(n, iterations * n * 64),
        }
        row["train_over_raw"] = row["train_sps"] / row["raw_env_sps"]
        rows.append(row)
        print(row, flush=True)
    print("\n| envs | raw env steps/s | rollout steps/s | training loop steps/s | training / raw |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['num_envs']} | {r['raw_env_sps']:,.0f} | {r['rollout_sps']:,.0f} "
            f"| {r['train_sps']:,.0f} | {r['train_over_raw']:.2f} |"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    x = np.arange(len(rows))
    for i, key in enumerate(("raw_env_sps", "rollout_sps", "train_sps")):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in rows], 0.27, label=key.replace("_sps", ""))
    ax.set_xticks(x, [str(r["num_envs"]) for r in rows])
    ax.set_xlabel("parallel envs")
    ax.set_ylabel("env steps / s")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    save(args.out, {"benchmark": "rl_throughput", "rows": rows}, figure=fig)


if __name__ == "__main__":
    main()
