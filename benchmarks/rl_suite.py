"""RL out of the box: scoregrad's defaults (``preset=False``) and presets against SB3 PPO and A2C defaults.

Every run trains one (runner, env, seed) in its own fresh process, one process at a time,
single-threaded torch, for the env's budget; then the final policy plays 20 deterministic episodes
(env seeds 1000..1019, the same for every runner). Results are appended to a JSON-lines file as they
finish (``--results``), so the suite can be run in parts and resumed: a (runner, env, seed) already
there is not run again. The summary table reports, per env and runner, the median final return over
the seeds, the seeds that reach the env's target, and the median training time (wall and CPU).

    python benchmarks/rl_suite.py --envs Acrobot-v1 Pendulum-v1 --seeds 3
    python benchmarks/rl_suite.py --envs HalfCheetah-v5 --runners scoregrad_defaults sb3_ppo --seeds 1
    python benchmarks/rl_suite.py --summary-only          # the table, JSON and PNG from the results so far

Runners: ``scoregrad_defaults`` (PPO, ``preset=False``), ``scoregrad_preset`` (PPO with the env's
preset; skipped where none exists), ``scoregrad_reinforce`` (REINFORCE with a learned value baseline,
``preset=False``), ``scoregrad_a2c`` (A2C, ``preset=False``), ``sb3_ppo`` and ``sb3_a2c``
(Stable-Baselines3's ``PPO("MlpPolicy", env)`` and ``A2C("MlpPolicy", env)``: their defaults).
When a preset is removed or replaced, its results are relabelled ``scoregrad_removed_preset`` in the
results file (kept in the table, never run again), so ``scoregrad_preset`` always means the preset
in ``scoregrad.rl.presets`` now.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, save

#: env -> (budget in env steps, the usual target return)
SUITE: dict[str, tuple[int, float]] = {
    "Acrobot-v1": (200_000, -100.0),
    "Pendulum-v1": (300_000, -200.0),
    "LunarLander-v3": (1_000_000, 200.0),
    "BipedalWalker-v3": (1_000_000, 300.0),
    "HalfCheetah-v5": (1_000_000, 3000.0),
    "Walker2d-v5": (1_000_000, 3000.0),
}
RUNNERS = (
    "scoregrad_defaults",
    "scoregrad_preset",
    "scoregrad_reinforce",
    "scoregrad_a2c",
    "sb3_ppo",
    "sb3_a2c",
)
#: summary-only labels: results of presets since removed or replaced (see the module docstring)
ARCHIVED = ("scoregrad_removed_preset",)
DEFAULT_RUNNERS = ("scoregrad_defaults", "scoregrad_preset", "sb3_ppo", "sb3_a2c")


def train_and_evaluate(runner: str, env_id: str, seed: int, budget: int) -> dict:
    """One run, in this process: train, then 20 deterministic evaluation episodes."""
    import torch

    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    if runner.startswith("scoregrad"):
        from scoregrad import rl

        algo = {"scoregrad_reinforce": "reinforce", "scoregrad_a2c": "a2c"}.get(runner, "ppo")
        agent = rl.train(
            env_id, algo, total_steps=budget, seed=seed, progress=False, preset=runner == "scoregrad_preset"
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        mean, std = rl.evaluate(agent, env_id, episodes=20, seed=1000)
    else:
        import stable_baselines3 as sb3
        from common import evaluate_predict

        cls = sb3.PPO if runner == "sb3_ppo" else sb3.A2C
        model = cls("MlpPolicy", env_id, seed=seed, device="cpu", verbose=0)
        model.learn(total_timesteps=budget)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        mean, std = evaluate_predict(lambda obs: model.predict(obs, deterministic=True)[0], env_id, 20, 1000)
    return {"runner": runner, "env": env_id, "seed": seed, "budget": budget, "mean_return": mean,
            "std_return": std, "train_wall_s": wall, "train_cpu_s": cpu}  # fmt: skip


def _load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    for env_id, (budget, target) in SUITE.items():
        for runner in RUNNERS + ARCHIVED:
            runs = [
                r for r in results if r["env"] == env_id and r["runner"] == runner and r["budget"] == budget
            ]
            if not runs:
                continue
            returns = [r["mean_return"] for r in runs]
            rows.append({
                "env": env_id, "runner": runner, "budget": budget, "target": target, "seeds": len(runs),
                "median_return": statistics.median(returns), "returns": returns,
                "reached": sum(x >= target for x in returns),
                "median_wall_s": statistics.median(r["train_wall_s"] for r in runs),
                "median_cpu_s": statistics.median(r["train_cpu_s"] for r in runs),
            })  # fmt: skip
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| env | budget | runner | seeds | median final return | per seed | reach target | median wall s | median CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        per_seed = ", ".join(f"{x:.0f}" for x in r["returns"])
        lines.append(
            f"| {r['env']} | {r['budget']:,} | {r['runner']} | {r['seeds']} | {r['median_return']:.1f} | {per_seed} "
            f"| {r['reached']}/{r['seeds']} (≥ {r['target']:g}) | {r['median_wall_s']:.0f} | {r['median_cpu_s']:.0f} |"
        )
    return "\n".join(lines)


def figure(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = [e for e in SUITE if any(r["env"] == e for r in rows)]
    fig, axes = plt.subplots(1, len(envs), figsize=(3.2 * len(envs), 3.2), squeeze=False)
    for ax, env_id in zip(axes[0], envs, strict=True):
        mine = [r for r in rows if r["env"] == env_id]
        for i, r in enumerate(mine):
            ax.scatter([i] * len(r["returns"]), r["returns"], s=12, alpha=0.6)
            ax.hlines(r["median_return"], i - 0.3, i + 0.3, color="k")
        ax.axhline(SUITE[env_id][1], ls="--", color="grey", lw=0.8)
        ax.set_xticks(range(len(mine)), [r["runner"].replace("scoregrad_", "sg_") for r in mine], rotation=60)
        ax.set_title(f"{env_id} ({SUITE[env_id][0] // 1000}k)", fontsize=9)
    axes[0][0].set_ylabel("final return (20 det. episodes)")
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(SUITE), choices=list(SUITE))
    parser.add_argument("--runners", nargs="+", default=list(DEFAULT_RUNNERS), choices=RUNNERS)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--results", type=Path, default=RESULTS / "rl_suite.jsonl", help="JSON lines, appended"
    )
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("RUNNER", "ENV", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one run in this fresh process; its result is the last line of stdout
        runner, env_id, seed = args.worker
        print(json.dumps(train_and_evaluate(runner, env_id, int(seed), SUITE[env_id][0])))
        return
    from scoregrad.rl.presets import preset_for

    if not args.summary_only:
        done = {(r["runner"], r["env"], r["seed"]) for r in _load(args.results)}
        for env_id in args.envs:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for runner in args.runners:
                    if runner == "scoregrad_preset" and not preset_for(env_id, "ppo"):
                        continue
                    if (runner, env_id, seed) in done:
                        continue
                    proc = subprocess.run(
                        [sys.executable, __file__, "--worker", runner, env_id, str(seed)],
                        capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                    )  # fmt: skip
                    if proc.returncode != 0:
                        print(f"{runner} {env_id} seed {seed} failed:\n{proc.stderr[-2000:]}", flush=True)
                        continue
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                    with args.results.open("a") as f:
                        f.write(json.dumps(result) + "\n")
                    print(
                        f"{env_id:18s} {runner:20s} seed {seed}: return {result['mean_return']:9.1f}  "
                        f"wall {result['train_wall_s']:6.0f} s  cpu {result['train_cpu_s']:6.0f} s",
                        flush=True,
                    )
    rows = summarize(_load(args.results))
    text = table(rows)
    print(text)
    save(args.results.with_suffix(".json"), {"benchmark": "rl_suite", "suite": SUITE, "rows": rows}, figure(rows),
         markdown=text, packages=("stable_baselines3", "gymnasium", "mujoco", "box2d"))  # fmt: skip


if __name__ == "__main__":
    main()
