"""Throughput on CartPole-v1: the whole PPO training loop vs raw vectorised env stepping.

For 16, 64 and 256 envs this measures env steps per second of
  * raw: ``envs.step`` alone on Gymnasium's native CartPole vector env with precomputed random
    actions (the ceiling on this machine);
  * rollout: scoregrad's rollout collection (policy forward, sampling, checks, buffer writes);
  * train: the full ``rl.train`` loop (rollout + GAE + PPO update with the CartPole preset,
    ``num_steps=64``), wall-clock including everything.
Where the training loop's time goes at 64 envs (``--breakdown-only`` runs just this): the rollout and the
update per iteration, one forward and backward of the actor and critic on a 2048-row minibatch, and
``tanh`` per element. And a whole fresh process (interpreter, imports, training; ``--fresh N`` repeats, alternated): scoregrad
PPO for 100k steps against SB3 PPO's default 50k-step run, with the import times every process pays.
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


def breakdown(num_envs: int = 64, iterations: int = 30) -> dict:
    """Milliseconds per iteration (``num_envs`` x 64 steps) of the rollout and of the PPO update (CartPole
    preset), one actor+critic forward and backward on 2048 rows, and ``tanh``/``relu`` per element."""
    config = rl.config_for(
        "ppo", **{**rl.PRESETS["CartPole-v1"]["ppo"], "num_envs": num_envs, "num_steps": 64}
    )
    tr = rl.Trainer("CartPole-v1", "ppo", config, seed=0, total_steps=10**9)

    def rollout() -> None:
        collect_rollout(
            tr.envs, tr.agent.policy, tr.buffer, tr.rollout, tr.generator, tr._obs_fn, tr._mask_fn
        )

    for _ in range(5):  # warm-up
        rollout()
        tr._update()
    rollout_s = update_s = 0.0
    for _ in range(iterations):
        t0 = time.perf_counter()
        rollout()
        t1 = time.perf_counter()
        tr._update()
        rollout_s, update_s = rollout_s + t1 - t0, update_s + time.perf_counter() - t1
    policy, obs = tr.agent.policy, torch.randn(2048, 4)

    def forward_backward() -> None:
        policy.zero_grad(set_to_none=True)
        (policy.actor(obs).sum() + policy.critic(obs).sum()).backward()

    def per_call(fn, repeats: int) -> float:
        for _ in range(repeats // 10):
            fn()
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t) / repeats

    x = torch.randn(2048, 64)
    return {
        "num_envs": num_envs,
        "rollout_ms": 1e3 * rollout_s / iterations,
        "update_ms": 1e3 * update_s / iterations,
        "steps_per_s": iterations * num_envs * 64 / (rollout_s + update_s),
        "forward_backward_2048_ms": 1e3 * per_call(forward_backward, 200),
        "tanh_ns_per_element": 1e9 * per_call(lambda: torch.tanh(x), 500) / x.numel(),
        "relu_ns_per_element": 1e9 * per_call(lambda: torch.relu(x), 500) / x.numel(),
    }


FRESH_OURS = (
    "from scoregrad import rl; "
    "rl.train('CartPole-v1', 'ppo', total_steps=100_000, seed={seed}, progress=False)"
)
FRESH_SB3 = (
    "from stable_baselines3 import PPO; "
    "PPO('MlpPolicy', 'CartPole-v1', seed={seed}, device='cpu').learn(50_000)"
)
#: What a fresh process pays before any training: torch, and torch._dynamo, which every torch.optim
#: optimiser imports on its first step (``Optimizer.step`` is wrapped by ``_use_grad_for_differentiable``).
IMPORTS = (
    "import time; t0 = time.perf_counter(); import torch; t1 = time.perf_counter(); import torch._dynamo; "
    "t2 = time.perf_counter(); import scoregrad.rl.trainer; t3 = time.perf_counter(); "
    "print(t1 - t0, t2 - t1, t3 - t2)"
)


def fresh_process(repeats: int) -> dict:
    """Wall time of a whole fresh process (interpreter, imports, training): scoregrad PPO 100k steps
    against SB3 PPO's default 50k-step run, alternated ``repeats`` times, one torch thread each; plus the
    import times every such process pays."""
    import statistics
    import subprocess
    import sys

    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    times: dict[str, list[float]] = {"scoregrad_100k": [], "sb3_50k": []}
    imports = []
    for seed in range(repeats):
        for name, code in (("scoregrad_100k", FRESH_OURS), ("sb3_50k", FRESH_SB3)):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code.format(seed=seed)], check=True, env=env, capture_output=True
            )
            times[name].append(time.perf_counter() - t)
        out = subprocess.run(
            [sys.executable, "-c", IMPORTS], check=True, env=env, capture_output=True, text=True
        )
        imports.append([float(x) for x in out.stdout.split()])
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "times_s": times,
        "median_s": medians,
        "sb3_over_ours": medians["sb3_50k"] / medians["scoregrad_100k"],
        "import_torch_s": statistics.median(i[0] for i in imports),
        "import_torch_dynamo_s": statistics.median(i[1] for i in imports),
        "import_scoregrad_rl_s": statistics.median(i[2] for i in imports),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--out", type=Path, default=RESULTS / "rl_throughput.json")
    parser.add_argument("--fresh", type=int, default=3, help="fresh-process repeats (0: skip)")
    parser.add_argument(
        "--breakdown-only", action="store_true",
        help="only where the loop's time goes (written to rl_throughput_breakdown.json by default)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.breakdown_only:
        parts = breakdown()
        print(" ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in parts.items()))
        out = (
            args.out
            if args.out != RESULTS / "rl_throughput.json"
            else RESULTS / "rl_throughput_breakdown.json"
        )
        save(out, {"benchmark": "rl_throughput_breakdown", "breakdown": parts})
        return
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
    parts = breakdown()
    print("\nwhere the loop's time goes at 64 envs:", {k: round(v, 2) for k, v in parts.items()})
    fresh = fresh_process(args.fresh) if args.fresh else None
    if fresh is not None:
        m = fresh["median_s"]
        print(
            f"\nfresh process (median of {args.fresh}): scoregrad PPO 100k steps {m['scoregrad_100k']:.2f} s, "
            f"SB3 PPO 50k steps {m['sb3_50k']:.2f} s: {fresh['sb3_over_ours']:.1f}x; every process pays "
            f"import torch {fresh['import_torch_s']:.2f} s + torch._dynamo {fresh['import_torch_dynamo_s']:.2f} s"
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
    save(
        args.out,
        {"benchmark": "rl_throughput", "rows": rows, "breakdown": parts, "fresh_process": fresh},
        figure=fig,
    )


if __name__ == "__main__":
    main()
