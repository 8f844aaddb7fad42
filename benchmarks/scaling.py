"""Scale-out: 1 and 2 processes under torchrun (gloo) for PPO and ES, and a cost model for more.

    python benchmarks/scaling.py                       # everything, 3 repeats (about 8 minutes on 2 cores)
    python benchmarks/scaling.py --only es,comm --procs 1,2

For each workload the driver launches ``torchrun --standalone --nproc_per_node=W`` on this script in
worker mode, once per ``W``, one at a time; the worker times the training itself (not the start-up)
and rank 0 writes its measurements. Workloads:

* ``machine``: each process alone on the same work, no collective: this machine's own ceiling;
* ``ppo-cartpole``: PPO with the CartPole-v1 preset (32 envs per process), 100k steps per process:
  steps/s, time to solve (the 20 most recent episodes average at least the env's ``reward_threshold``,
  475), final return (20 episodes);
* ``ppo-mujoco-solve``: the same for a MuJoCo env PPO solves in seconds, InvertedPendulum-v5 (threshold
  950; at most 1000), with the settings of ``ppo-mujoco``, 100k steps per process;
* ``ppo-mujoco``: PPO on HalfCheetah-v5 (env stepping dominates): 16 envs per process x 128 steps,
  10 epochs of 2 minibatches (20 optimiser steps, so 20 gradient exchanges, per iteration), 41k steps
  per process: steps/s. PPO is weak-scaled, as data-parallel PPO is used (CleanRL's multi-GPU PPO):
  each process keeps one process's envs and minibatch size, so W processes learn from W times the
  data per update; splitting one process's small minibatches instead saves little, because an
  optimiser step on a 64-unit MLP costs its fixed overhead whatever the rows;
* ``es``: OpenAI-ES on a 1000-D function whose evaluation costs about 1 ms (8 matrix-vector products
  with a fixed 1000 x 1000 matrix), 96 candidates, 50 generations (with 15, repeats of the benchmark
  gave 0.84-0.98 efficiency), ``noise="table"`` (each process builds only its own candidates; the
  update rebuilds the population's noise by a copy): generations/s;
* ``comm``: the collectives' cost here: latency of an all-reduce/all-gather of a few numbers, of a
  PPO gradient, and bandwidth.

Parallel efficiency is ``rate(W) / (W rate(1))``. The cost model (printed, saved, and in the README)
predicts it at 8, 64 and 512 processes from the measured constants; see :func:`model`.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table, save, table  # noqa: E402

ES_DIM, ES_POP, ES_GENERATIONS, ES_MATVECS = 1000, 96, 50, 8
MUJOCO = dict(
    num_envs=16, num_steps=128, update_epochs=10, num_minibatches=2, norm_obs=True, norm_reward=True
)


# ----------------------------------------------------------------------------------------- workers
def worker_ppo(env: str, steps: int, overrides: dict, preset: bool) -> dict:
    import gymnasium as gym

    from scoregrad import distributed, rl
    from scoregrad.rl.config import config_for
    from scoregrad.rl.presets import preset_for
    from scoregrad.rl.trainer import Trainer

    distributed.init()
    settings = {
        **(preset_for(env, "ppo") if preset else {}),
        **overrides,
        "progress": False,
        "torch_threads": 1,
    }
    warm_up = config_for("ppo", **{**settings, "num_steps": 8})  # first calls import and initialise
    Trainer(env, "ppo", warm_up, seed=0, total_steps=8 * settings["num_envs"]).run()
    trainer = Trainer(env, "ppo", config_for("ppo", **settings), seed=0, total_steps=steps)
    update_seconds, solved_at = [0.0], [None]
    target = gym.spec(env).reward_threshold
    original = trainer._update

    def timed_update():
        t = time.perf_counter()
        stats = original()
        update_seconds[0] += time.perf_counter() - t
        return stats

    trainer._update = timed_update
    start = time.perf_counter()

    def solved(tr) -> None:
        r = tr.recent_returns
        if solved_at[0] is None and len(r) == r.maxlen and sum(r) / len(r) >= target:
            solved_at[0] = time.perf_counter() - start

    trainer.callback = solved
    agent = trainer.run()
    seconds = time.perf_counter() - start
    result = {
        "steps": trainer.rollout.global_step,
        "seconds": seconds,
        "steps_per_s": trainer.rollout.global_step / seconds,
        "update_seconds": update_seconds[0],
        "iterations": trainer.iteration,
        "updates": trainer.num_updates,
        "parameters": sum(p.numel() for p in agent.policy.parameters()),
        "seconds_to_solve": solved_at[0],
    }
    if distributed.is_main():
        result["final_return"] = rl.evaluate(agent, env, episodes=20, seed=1000)[0]
    return result


def es_function(X: torch.Tensor) -> torch.Tensor:
    """A 1000-D function costing about 1 ms per candidate: ``||A^8 x||^2 / ||x||^2``, row by row."""
    A = es_function.matrix  # type: ignore[attr-defined]
    out = []
    for x in X:
        y = x
        for _ in range(ES_MATVECS):
            y = A @ y
            y = y / y.norm()
        out.append((A @ y).square().sum() + x.square().sum())
    return torch.stack(out)


es_function.matrix = torch.randn(ES_DIM, ES_DIM, generator=torch.Generator().manual_seed(0)) / ES_DIM**0.5


def worker_es() -> dict:
    from scoregrad import es as search

    search.minimize(
        lambda X: X.square().sum(1), torch.zeros(ES_DIM), method="openes", popsize=ES_POP, budget=ES_POP
    )
    start = time.perf_counter()  # after a warm-up: first calls import and initialise (about 1.5 s)
    res = search.minimize(
        es_function, torch.zeros(ES_DIM), method="openes", sigma0=0.05, popsize=ES_POP,
        budget=ES_POP * ES_GENERATIONS, seed=0, noise="table",
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {
        "generations": len(res.history),
        "seconds": seconds,
        "generations_per_s": len(res.history) / seconds,
    }


def serial_es_costs() -> dict:
    """One process, one thread, ``noise="table"``: seconds per candidate of the function (``t``), and
    per generation of building one's own 8 candidates (``ask``) and of the update every process makes
    for the whole population (``tell`` and the optimiser step), at the benchmark's population and at
    4,096 (8 per process at 512 processes); the model interpolates linearly in the population."""
    from scoregrad import es as search

    torch.set_num_threads(1)  # as in the workers
    X = torch.randn(ES_POP, ES_DIM)
    t0 = time.perf_counter()
    es_function(X)
    out: dict = {"eval_seconds": (time.perf_counter() - t0) / ES_POP, "populations": [ES_POP, 4096]}
    out["ask_seconds"], out["update_seconds"] = [], []
    for popsize in out["populations"]:
        es = search.OpenES(torch.zeros(ES_DIM), sigma=0.05, popsize=popsize, seed=0, noise="table")
        losses = torch.randn(popsize)
        own, update = [], []
        for repeat in range(22):
            t0 = time.perf_counter()
            es.ask(rows=slice(0, 8))
            t1 = time.perf_counter()
            es.tell(losses)
            es.optimizer.step()
            t2 = time.perf_counter()
            if repeat >= 2:  # after a warm-up
                own.append(t1 - t0)
                update.append(t2 - t1)
        out["ask_seconds"].append(statistics.median(own))
        out["update_seconds"].append(statistics.median(update))
    return out


def worker_comm(gradient_floats: int) -> dict:
    import torch.distributed as dist

    from scoregrad import distributed

    def latency(fn, repeats=200) -> float:
        for _ in range(20):
            fn()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - t0) / repeats

    small, grad, big = torch.zeros(8), torch.zeros(gradient_floats), torch.zeros(1 << 20)
    out = [torch.zeros(8) for _ in range(distributed.world_size())]
    A = torch.randn(256, 256)

    def busy() -> None:  # about a millisecond of compute, as between two optimiser steps
        for _ in range(20):
            A @ A

    alone = latency(busy, 50)
    return {
        # an exchange between bursts of compute, as in training, less the compute itself: what a
        # collective costs when every vCPU is busy (far more than when they idle, on this VM)
        "gradient_exchange_busy": latency(lambda: (busy(), distributed.all_reduce_sum([grad])), 50) - alone,
        "all_reduce_small": latency(lambda: dist.all_reduce(small)),
        "all_gather_small": latency(lambda: dist.all_gather(out, small)),
        # one round of the log-depth all-gather that exchanges ES losses (with 2 processes, all of it)
        "all_gather_log_round": latency(lambda: distributed.all_gather_log(small)),
        "gradient_exchange": latency(lambda: distributed.all_reduce_sum([grad])),
        "all_reduce_4MB": latency(lambda: dist.all_reduce(big), 20),
        "gradient_bytes": 4 * gradient_floats,
    }


def worker_machine() -> dict:
    """Each process alone, no collective: what this machine gives W processes of the same work.

    ``es_seconds``: 480 evaluations of :func:`es_function`; ``mujoco_seconds``: 16 HalfCheetah-v5 envs,
    300 random steps. Run by 1 and by W processes at once, the ratio is the machine's own ceiling on
    parallel efficiency (2 vCPUs that share a physical core give far less than 2x).
    """
    import gymnasium as gym
    import numpy as np

    X = torch.randn(480, ES_DIM)
    t0 = time.perf_counter()
    es_function(X)
    es_seconds = time.perf_counter() - t0
    envs = gym.make_vec("HalfCheetah-v5", num_envs=16, vectorization_mode="sync")
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(300):
        envs.step(rng.uniform(-1, 1, (16, 6)).astype(np.float32))
    return {"es_seconds": es_seconds, "mujoco_seconds": time.perf_counter() - t0, "seconds": 0.0}


def run_worker(kind: str, out: Path) -> None:
    from scoregrad import distributed

    torch.set_num_threads(1)
    distributed.init()
    w = distributed.world_size()  # PPO: weak scaling, each process keeps the envs one process has
    if kind == "ppo-cartpole":
        result = worker_ppo("CartPole-v1", 100_000 * w, {"num_envs": 32 * w}, preset=True)
    elif kind == "ppo-mujoco":
        result = worker_ppo("HalfCheetah-v5", 40_960 * w, {**MUJOCO, "num_envs": 16 * w}, preset=False)
    elif kind == "ppo-mujoco-solve":
        result = worker_ppo("InvertedPendulum-v5", 100_000 * w, {**MUJOCO, "num_envs": 16 * w}, preset=False)
    elif kind == "es":
        result = worker_es()
    elif kind == "machine":
        result = worker_machine()
    else:
        result = worker_comm(int(os.environ.get("GRADIENT_FLOATS", "10000")))
    if distributed.is_main():
        out.write_text(json.dumps({**result, "processes": distributed.world_size()}))
    distributed.barrier()


# ----------------------------------------------------------------------------------------- driver
def launch(kind: str, procs: int, directory: Path) -> dict:
    out = directory / f"{kind}-{procs}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, __file__, "--worker", kind, "--json", str(out)], check=True, env=env)
    return json.loads(out.read_text())


def model(constants: dict, processes: list[int], k: int | None = None) -> dict:
    """Predicted parallel efficiency (weak scaling: each process keeps the work it has with 2).

    ES (losses only cross the network), per generation with ``k`` candidates per process, ``P = W k``:
        T(W) = k t + a(P) + u(P) + ceil(log2 W) a_p,  E(W) = T(1) / T(W)
    where ``t`` is one evaluation, ``a(P)`` building one's own candidates (windows of the noise table),
    ``u(P)`` the update for the whole population, which every process makes (it rebuilds all
    perturbations from the table to make the same update, bit for bit), both measured at two
    population sizes and interpolated linearly (a fixed cost per generation plus a cost per
    candidate), and ``a_p`` one round of the log-depth all-gather of the losses (Bruck's;
    latency-bound: 8 bytes per candidate). As ``k`` grows, ``E`` tends to ``t / (t + W u')``, ``u'``
    the update's cost per candidate: the update every process repeats bounds it, then the network.
    PPO, per iteration with a fixed number of envs per process:
        T(W) = X + m x(W) + 3 (W - 1) a_g,   E(W) = X / T(W)
    where ``X`` is one process's compute per iteration (collection and its share of the update,
    measured with 2 processes less their measured communication), ``m`` the optimiser steps per
    iteration, each exchanging ``b`` gradient bytes: ``x(W) = (W - 1) x_2`` (``x_2``: one exchange
    between two processes, measured between bursts of compute) while
    ``W b <= 1 MB`` (all-gather and a local sum, as :func:`scoregrad.distributed.all_reduce_sum`
    does), else a ring all-reduce ``2 (W - 1) (a_r + b / (W B))``; and three per-iteration all-gathers
    (rollouts, episodes, normalisers). ``a_g``/``a_r``: latency of one step of an all-gather/all-reduce
    (measured with 2 processes), ``B``: bandwidth.
    """
    import math

    c = constants
    a_r, a_g, bandwidth = c["all_reduce_small"] / 2, c["all_gather_small"], c["bandwidth"]
    k = c["es_candidates_per_process"] if k is None else k
    t, a_p = c["eval_seconds"], c["all_gather_log_round"]
    (p0, p1), asks, updates = c["populations"], c["ask_seconds"], c["update_seconds"]

    def linear(values: list[float], population: int) -> float:
        return values[0] + (population - p0) * (values[1] - values[0]) / (p1 - p0)

    def generation(w: int) -> float:
        p = w * k
        return k * t + linear(asks, p) + linear(updates, p) + math.ceil(math.log2(w)) * a_p

    out = {}
    for w in processes:
        out[w] = {"es": generation(1) / generation(w)}
        if "ppo" in c:
            ppo = c["ppo"]
            b = ppo["gradient_bytes"]
            if w * b <= 1 << 20:  # one step per other process, at the latency measured while computing
                exchange = (w - 1) * c.get("gradient_exchange_busy", a_g + b / bandwidth)
            else:
                exchange = 2 * (w - 1) * (a_r + b / (w * bandwidth))
            ppo_t = ppo["compute"] + ppo["updates"] * exchange + 3 * (w - 1) * a_g
            out[w]["ppo"] = ppo["compute"] / ppo_t
    return out


def _medians(runs: list[dict]) -> dict:
    """Each number's median over the repeats (None where any repeat has none)."""
    return {
        k: statistics.median(r[k] for r in runs) if all(r.get(k) is not None for r in runs) else None
        for k in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", default="machine,comm,es,ppo-mujoco,ppo-mujoco-solve,ppo-cartpole")
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--name", default="scaling")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (workload, processes); medians")
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.json)
        return
    import tempfile

    kinds, procs = args.only.split(","), [int(p) for p in args.procs.split(",")]
    results: dict[str, dict[int, dict]] = {}
    runs: dict[str, dict[int, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # 1 and W processes alternate, `repeats` times: this VM's speed drifts by up to 2x within minutes
        for _ in range(args.repeats):
            for kind in kinds:
                for w in procs if kind != "comm" else [max(procs)]:
                    runs.setdefault(kind, {}).setdefault(w, []).append(launch(kind, w, Path(tmp)))
    for kind, by_w in runs.items():  # each measurement's median over the repeats
        results[kind] = {w: _medians(rs) for w, rs in by_w.items()}
    rows = []
    for kind, by_w in results.items():
        if kind in ("comm", "machine"):
            continue
        rate = "generations_per_s" if kind == "es" else "steps_per_s"
        base = by_w[min(by_w)][rate]
        for w, r in sorted(by_w.items()):
            rows.append(
                {
                    "workload": kind,
                    "processes": w,
                    "rate": r[rate],
                    "unit": rate.replace("_per_s", "/s"),
                    "seconds": r["seconds"],
                    "efficiency": r[rate] / (w * base),
                    "solve_s": r.get("seconds_to_solve") or "-",
                    "final_return": r.get("final_return", "-"),
                }
            )
    columns = ["workload", "processes", "rate", "unit", "seconds", "efficiency", "solve_s", "final_return"]
    formats = {"rate": ".1f", "seconds": ".1f", "efficiency": ".2f", "solve_s": ".1f", "final_return": ".1f"}
    if "machine" in results:
        m = results["machine"]
        for key in ("es_seconds", "mujoco_seconds"):
            ceiling = {w: m[min(m)][key] / m[w][key] for w in sorted(m)}
            print(f"machine ceiling ({key.split('_')[0]}: each process alone, same work):", ceiling)
    if rows:
        print(table(rows, columns, formats))
    payload: dict = {
        "results": {k: {str(w): r for w, r in v.items()} for k, v in results.items()},
        "runs": {k: {str(w): r for w, r in v.items()} for k, v in runs.items()},
        "rows": rows,
    }
    if "comm" in results and "es" in results:
        comm = results["comm"][max(procs)]
        constants: dict = {
            **{
                k: comm[k]
                for k in (
                    "all_reduce_small",
                    "all_gather_small",
                    "all_gather_log_round",
                    "gradient_exchange",
                    "gradient_exchange_busy",
                )
            },
            "bandwidth": (1 << 22) / max(comm["all_reduce_4MB"] - comm["all_reduce_small"], 1e-9),
            "es_candidates_per_process": ES_POP // max(procs),
            **serial_es_costs(),
        }
        if "ppo-mujoco" in results:
            w2 = results["ppo-mujoco"][max(procs)]
            per_iteration = w2["seconds"] / w2["iterations"]
            constants["ppo"] = {
                "updates": w2["updates"] / w2["iterations"],
                "gradient_bytes": 4 * w2["parameters"],
                # compute per iteration with 2 processes, less what the model counts as communication
                "compute": per_iteration
                - w2["updates"] / w2["iterations"] * comm["gradient_exchange_busy"]
                - 3 * comm["all_gather_small"],
            }
        processes = [2, 8, 64, 512]
        predicted = model(constants, processes)
        # ES with larger populations per process (OpenAI's runs: thousands of candidates)
        for k in (8, 64):
            for w, p in model(constants, processes, k=k).items():
                predicted[w][f"es_k{k}"] = p["es"]
        payload.update(constants=constants, predicted=predicted)
        print("\ncost model constants:", json.dumps(constants, indent=1))
        keys = [key for key in ("es", "es_k8", "es_k64", "ppo") if key in predicted[2]]
        print(
            table(
                [{"processes": w, **p} for w, p in predicted.items()],
                ["processes", *keys],
                {key: ".2f" for key in keys},
            )
        )
    markdown = markdown_table(rows, columns, formats) if rows else None
    save(args.name, payload, markdown=markdown, packages=["torch", "gymnasium"])
    print(json.dumps(machine(["torch"]), indent=1))


if __name__ == "__main__":
    main()
