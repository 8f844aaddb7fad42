"""Policy search by ES against our own PPO, at equal environment steps and at equal wall time.

For each env and seed: PPO (its preset, or the defaults for its spaces where it has none) for the
env's budget of steps (rl.presets.BUDGETS), timed;
ES (OpenES, settings below) for the same number of steps; and ES for as long as PPO took (wall
clock), however many steps that is. Each agent is scored by rl.evaluate (20 episodes, seeds
1000-1019, deterministic). Environment steps of ES count only live episode steps.

ES settings: CartPole-v1 the ESConfig defaults (popsize 50, sigma 0.1, Adam lr 0.01, centred
ranks, antithetic, weight decay 0.005, observation normalisation, 64x64 tanh MLP); Pendulum-v1
popsize 20, a 32x32 actor and lr 0.03 (more generations for the same steps).

Run (under 15 minutes on 2 shared cores):
  OPENBLAS_NUM_THREADS=1 python benchmarks/es_policies.py --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from common import RESULTS, save, table

from scoregrad import rl
from scoregrad.rl.presets import BUDGETS

ES_SETTINGS = {
    "CartPole-v1": {},
    "Pendulum-v1": {"popsize": 20, "hidden_sizes": (32, 32), "learning_rate": 0.03},
    # Salimans et al. (2017) used sigma 0.02 and observation normalisation on MuJoCo, with far larger
    # populations and budgets; at 1M steps a population of 40 gets 25 generations.
    "HalfCheetah-v5": {"popsize": 40, "sigma": 0.02, "learning_rate": 0.01},
}


def timed(env: str, algo: str, steps: int, seed: int, seconds: float | None = None, **options):
    def stop_after(trainer) -> bool:
        return seconds is not None and time.perf_counter() - start > seconds

    start = time.perf_counter()
    agent = rl.train(
        env, algo=algo, total_steps=steps, seed=seed, progress=False, callback=stop_after, **options
    )
    elapsed = time.perf_counter() - start
    mean, std = rl.evaluate(agent, env, episodes=20, seed=1000)
    return {"return": mean, "std": std, "seconds": elapsed, "steps": agent.trainer.rollout.global_step}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"], choices=list(ES_SETTINGS)
    )
    parser.add_argument("--name", default="es_policies", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    runs, rows = [], []
    for env in args.envs:
        budget = BUDGETS[env]
        for seed in range(args.seeds):
            ppo = timed(env, "ppo", budget, seed)
            es_steps = timed(env, "es", budget, seed, **ES_SETTINGS[env])
            es_wall = timed(env, "es", 100 * budget, seed, seconds=ppo["seconds"], **ES_SETTINGS[env])
            for name, r in (("ppo", ppo), ("es, equal steps", es_steps), ("es, equal wall time", es_wall)):
                runs.append({"env": env, "seed": seed, "method": name, **r})
                print(env, seed, name, {k: round(v, 1) for k, v in r.items()}, flush=True)
        for name in ("ppo", "es, equal steps", "es, equal wall time"):
            sub = [r for r in runs if r["env"] == env and r["method"] == name]
            rows.append(
                {
                    "env": env,
                    "method": name,
                    "median eval return": f"{statistics.median(r['return'] for r in sub):.1f}",
                    "returns": " ".join(f"{r['return']:.0f}" for r in sub),
                    "median env steps": f"{statistics.median(r['steps'] for r in sub):,.0f}",
                    "median seconds": f"{statistics.median(r['seconds'] for r in sub):.1f}",
                }
            )
    text = table(rows, list(rows[0]))
    print(text)
    fig, axes = plt.subplots(1, len(args.envs), figsize=(5 * len(args.envs), 3.5), squeeze=False)
    for ax, env in zip(axes[0], args.envs, strict=True):
        for name, marker in (("ppo", "o"), ("es, equal steps", "s"), ("es, equal wall time", "^")):
            sub = [r for r in runs if r["env"] == env and r["method"] == name]
            ax.scatter([r["seconds"] for r in sub], [r["return"] for r in sub], marker=marker, label=name)
        ax.set_title(env)
        ax.set_xlabel("training wall time (s)")
        ax.set_ylabel("eval return (20 episodes)")
    axes[0][0].legend(fontsize=8)
    save(
        args.name,
        {
            "command": "python benchmarks/es_policies.py " + " ".join(sys.argv[1:]),
            "es_settings": {
                k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
                for k, v in ES_SETTINGS.items()
            },
            "rows": rows,
            "runs": runs,
        },
        fig,
    )
    (RESULTS / f"{args.name}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
