"""CartPole-v1: wall-clock time and env steps until solved, scoregrad vs Stable-Baselines3.

"Solved" = mean return of 20 deterministic evaluation episodes >= 475 (a 20-env native vector env
reset with seed 1000, which draws all 20 initial states from one generator). Both
libraries are checked with the same rule: whenever at least ``--eval-every`` (2048) env steps have
passed since the last check, the current policy plays the 20 evaluation episodes on CartPole's
native vector env (ours: after the update that crossed the mark; SB3: at the start of the rollout
that follows its update, i.e. every n_steps=2048). The clock is paused during evaluations (their
cost is reported separately), so "time" is training wall-clock. Each library first does one short
untimed warm-up run. Peers run in the same process, one at a time, single-threaded
(torch.set_num_threads(1)).

    python benchmarks/rl_cartpole.py                       # all algorithms, 5 seeds
    python benchmarks/rl_cartpole.py --algos ppo sb3_ppo --seeds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from common import evaluate_predict, save

from scoregrad import rl

ENV = "CartPole-v1"
TARGET = 475.0
EVAL_EVERY = 2048
RESULTS = Path(__file__).parent / "results"


def eval_predict(predict, episodes: int = 20, seed: int = 1000) -> float:
    """Mean return of ``episodes`` deterministic episodes, one per env of CartPole's native vector env."""
    return evaluate_predict(predict, ENV, episodes, seed)[0]


class Clock:
    def __init__(self):
        self.start = time.perf_counter()
        self.paused = 0.0
        self.evals = 0

    def timed_eval(self, predict) -> float:
        t = time.perf_counter()
        mean = eval_predict(predict)
        self.paused += time.perf_counter() - t
        self.evals += 1
        return mean

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused


def run_ours(algo: str, seed: int, budget: int, eval_every: int = EVAL_EVERY) -> dict:
    clock = Clock()
    result = {"solved": False, "time_s": None, "steps": None}
    last = {"step": 0}

    def check(trainer):
        if trainer.rollout.global_step - last["step"] >= eval_every:
            last["step"] = trainer.rollout.global_step
            agent = trainer.agent
            mean = clock.timed_eval(lambda obs: agent.act(obs, deterministic=True))
            if mean >= TARGET:
                result.update(solved=True, time_s=clock.elapsed(), steps=trainer.rollout.global_step)
                return True
        return False

    rl.train(ENV, algo=algo, total_steps=budget, seed=seed, progress=False, callback=check)
    result.update(eval_time_s=clock.paused, evals=clock.evals, total_time_s=time.perf_counter() - clock.start)
    return result


def run_sb3(seed: int, budget: int, eval_every: int = EVAL_EVERY) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    clock = Clock()
    result = {"solved": False, "time_s": None, "steps": None}

    class Check(BaseCallback):
        def __init__(self):
            super().__init__()
            self.last = 0

        def _on_rollout_start(self) -> None:  # the policy was just updated
            if self.num_timesteps - self.last < eval_every:
                return
            self.last = self.num_timesteps
            model = self.model
            mean = clock.timed_eval(lambda obs: model.predict(obs, deterministic=True)[0])
            if mean >= TARGET:
                result.update(solved=True, time_s=clock.elapsed(), steps=self.num_timesteps)
                self.stop = True

        def _on_step(self) -> bool:
            return not getattr(self, "stop", False)

    clock.start = time.perf_counter()
    model = PPO("MlpPolicy", ENV, seed=seed, device="cpu", verbose=0)  # SB3 defaults
    model.learn(total_timesteps=budget, callback=Check())
    result.update(eval_time_s=clock.paused, evals=clock.evals, total_time_s=time.perf_counter() - clock.start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["ppo", "a2c", "reinforce", "sb3_ppo"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=500_000, help="env-step budget per run")
    parser.add_argument("--eval-every", type=int, default=EVAL_EVERY, help="env steps between solve checks")
    parser.add_argument("--out", type=Path, default=RESULTS / "rl_cartpole.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    runs: dict[str, list[dict]] = {}
    for algo in args.algos:  # untimed warm-up (imports, allocator, first-call overheads)
        run_sb3(100, 4096, 10**9) if algo == "sb3_ppo" else run_ours(algo, 100, 4096, 10**9)
    for algo in args.algos:
        runs[algo] = []
        for seed in range(args.seeds):
            if algo == "sb3_ppo":
                r = run_sb3(seed, args.budget, args.eval_every)
            else:
                r = run_ours(algo, seed, args.budget, args.eval_every)
            r["seed"] = seed
            runs[algo].append(r)
            shown = f"{r['time_s']:.2f}s {r['steps']} steps" if r["solved"] else "not solved"
            print(f"{algo:10s} seed {seed}: {shown}", flush=True)

    summary = {}
    for algo, rs in runs.items():
        solved = [r for r in rs if r["solved"]]
        summary[algo] = {
            "solved": f"{len(solved)}/{len(rs)}",
            "median_time_s": statistics.median(r["time_s"] for r in solved) if solved else None,
            "median_steps": statistics.median(r["steps"] for r in solved) if solved else None,
            "median_eval_time_s": statistics.median(r["eval_time_s"] for r in rs),
            "median_total_time_s": statistics.median(r["total_time_s"] for r in solved) if solved else None,
        }
    base = summary.get("sb3_ppo", {}).get("median_time_s")
    header = [
        "algo",
        "solved",
        "median time (s)",
        "median steps",
        "median time incl. evals (s)",
        "SB3 time / ours",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for algo, s in summary.items():
        ratio = base / s["median_time_s"] if base and s["median_time_s"] else None
        s["speedup_vs_sb3_ppo"] = ratio
        cells = [
            algo,
            s["solved"],
            f"{s['median_time_s']:.2f}" if s["median_time_s"] else "-",
            f"{s['median_steps']:.0f}" if s["median_steps"] else "-",
            f"{s['median_total_time_s']:.2f}" if s["median_total_time_s"] else "-",
            f"{ratio:.1f}x" if ratio else "-",
        ]
        print("| " + " | ".join(cells) + " |")
    payload = {"benchmark": "rl_cartpole", "env": ENV, "target": TARGET, "summary": summary, "runs": runs}
    save(args.out, payload, figure=_plot(runs), packages=("stable-baselines3",))


def _plot(runs: dict[str, list[dict]]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for i, (algo, rs) in enumerate(runs.items()):
        times = [r["time_s"] for r in rs if r["solved"]]
        ax.scatter(times, [i] * len(times), label=algo)
    ax.set_yticks(range(len(runs)), list(runs))
    if any(r["solved"] for rs in runs.values() for r in rs):  # a log axis needs at least one time
        ax.set_xscale("log")
    ax.set_xlabel("wall-clock seconds to solve CartPole-v1 (log)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
