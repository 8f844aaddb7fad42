"""Scale-out: 1 and 2 processes under torchrun (gloo) for PPO and ES, and a cost model for more.

    python benchmarks/scaling.py                       # everything (about 15 minutes on 2 cores)
    python benchmarks/scaling.py --only es,comm --procs 1,2

For each workload the driver launches ``torchrun --standalone --nproc_per_node=W`` on this script in
worker mode, once per ``W``, one at a time; the worker times the training itself (not the start-up)
and rank 0 writes its measurements. Workloads:

* ``ppo-cartpole``: PPO with the CartPole-v1 preset, 100k steps: steps/s, time to solve (the 20
  most recent episodes average >= 475), final deterministic return (20 episodes);
* ``ppo-mujoco``: PPO on HalfCheetah-v5 (env stepping dominates): 8 envs x 256 steps, 10 epochs of 4
  minibatches, 41k steps: steps/s, split into collection and update;
* ``es``: OpenAI-ES on a 1000-D function whose evaluation costs about 1 ms (8 matrix-vector products
  with a fixed 1000 x 1000 matrix), 96 candidates, 15 generations: generations/s;
* ``comm``: the collectives' cost here: latency of an all-reduce/all-gather of a few numbers, of a
  PPO gradient, and bandwidth.

Parallel efficiency is ``rate(W) / (W rate(1))``. The cost model (printed, saved, and in the README)
predicts it at 8, 64 and 512 processes from the measured constants; see :func:`model`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, markdown_table, save, table  # noqa: E402

ES_DIM, ES_POP, ES_GENERATIONS, ES_MATVECS = 1000, 96, 15, 8
MUJOCO = dict(num_envs=8, num_steps=256, update_epochs=10, num_minibatches=4, norm_obs=True, norm_reward=True)


# ----------------------------------------------------------------------------------------- workers
def worker_ppo(env: str, steps: int, overrides: dict, preset: bool) -> dict:
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
    trainer = Trainer(env, "ppo", config_for("ppo", **settings), seed=0, total_steps=steps)
    update_seconds, solved_at = [0.0], [None]
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
        if solved_at[0] is None and len(r) == r.maxlen and sum(r) / len(r) >= 475:
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

    start = time.perf_counter()
    res = search.minimize(
        es_function, torch.zeros(ES_DIM), method="openes", sigma0=0.05, popsize=ES_POP,
        budget=ES_POP * ES_GENERATIONS, seed=0,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return {
        "generations": len(res.history),
        "seconds": seconds,
        "generations_per_s": len(res.history) / seconds,
    }


def serial_es_costs() -> dict:
    """One process: seconds per candidate of the function (t) and of ask+tell+step (s, done by every process)."""
    from scoregrad import es as search

    X = torch.randn(ES_POP, ES_DIM)
    t0 = time.perf_counter()
    es_function(X)
    t = (time.perf_counter() - t0) / ES_POP
    es = search.OpenES(torch.zeros(ES_DIM), sigma=0.05, popsize=ES_POP, seed=0)
    losses = torch.randn(ES_POP)
    t0 = time.perf_counter()
    for _ in range(10):
        es.ask()
        es.tell(losses)
        es.optimizer.step()
    s = (time.perf_counter() - t0) / (10 * ES_POP)
    return {"eval_seconds": t, "serial_seconds_per_candidate": s}


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
    return {
        "all_reduce_small": latency(lambda: dist.all_reduce(small)),
        "all_gather_small": latency(lambda: dist.all_gather(out, small)),
        "all_reduce_gradient": latency(lambda: dist.all_reduce(grad)),
        "all_reduce_4MB": latency(lambda: dist.all_reduce(big), 20),
        "gradient_bytes": 4 * gradient_floats,
    }


def run_worker(kind: str, out: Path) -> None:
    from scoregrad import distributed

    torch.set_num_threads(1)
    distributed.init()
    if kind == "ppo-cartpole":
        result = worker_ppo("CartPole-v1", 100_000, {}, preset=True)
    elif kind == "ppo-mujoco":
        result = worker_ppo("HalfCheetah-v5", 40_960, MUJOCO, preset=False)
    elif kind == "es":
        result = worker_es()
    else:
        result = worker_comm(int(os.environ.get("GRADIENT_FLOATS", "10000")))
    if distributed.is_main():
        out.write_text(json.dumps({**result, "processes": distributed.world_size()}))


# ----------------------------------------------------------------------------------------- driver
def launch(kind: str, procs: int, directory: Path) -> dict:
    out = directory / f"{kind}-{procs}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cmd, __file__, "--worker", kind, "--json", str(out)], check=True, env=env)
    return json.loads(out.read_text())


def model(constants: dict, processes: list[int]) -> dict:
    """Predicted parallel efficiency (weak scaling: each process keeps the work it has with 2).

    ES (losses only cross the network), per generation with ``k`` candidates per process:
        T(W) = k t + k W s + (W - 1) a_g,  E(W) = (k t + k s) / T(W)
    where ``t`` is one evaluation, ``s`` the ask/tell/step work per candidate that every process does
    for the whole population (it rebuilds all perturbations from seeds), ``a_g`` one step of the ring
    all-gather of the losses (latency-bound: 8 bytes per candidate).
    PPO, per iteration with a fixed number of envs per process:
        T(W) = C + U + R + m (2 (W - 1) a_r + 2 (W - 1) / W * b / B) + (W - 1) a_g
    where ``C`` and ``U`` are one process's collection and update compute (measured with 2 processes),
    ``R`` the union-batch work every process repeats, ``m`` the optimiser steps (all-reduces of ``b``
    gradient bytes, ring algorithm: 2 (W - 1) steps of latency ``a_r``, bandwidth ``B``).
    """
    c = constants
    a_r, a_g, bandwidth = c["all_reduce_small"] / 2, c["all_gather_small"], c["bandwidth"]
    k, t, s = c["es_candidates_per_process"], c["eval_seconds"], c["serial_seconds_per_candidate"]
    ppo = c["ppo"]
    out = {}
    for w in processes:
        es_t = k * t + k * w * s + (w - 1) * a_g
        comm = ppo["updates"] * (2 * (w - 1) * a_r + 2 * (w - 1) / w * ppo["gradient_bytes"] / bandwidth)
        ppo_t = ppo["compute"] + comm + (w - 1) * a_g
        out[w] = {"es": (k * t + k * s) / es_t, "ppo": ppo["compute"] / ppo_t}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", default="comm,es,ppo-mujoco,ppo-cartpole")
    parser.add_argument("--procs", default="1,2")
    parser.add_argument("--name", default="scaling")
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.json)
        return
    import tempfile

    kinds, procs = args.only.split(","), [int(p) for p in args.procs.split(",")]
    results: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            results[kind] = {
                w: launch(kind, w, Path(tmp)) for w in (procs if kind != "comm" else [max(procs)])
            }
    rows = []
    for kind, by_w in results.items():
        if kind == "comm":
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
    print(table(rows, columns, formats))
    payload: dict = {
        "results": {k: {str(w): r for w, r in v.items()} for k, v in results.items()},
        "rows": rows,
    }
    if "comm" in results and "es" in results and "ppo-mujoco" in results:
        comm = results["comm"][max(procs)]
        serial = serial_es_costs()
        w2 = results["ppo-mujoco"][max(procs)]
        per_iteration = w2["seconds"] / w2["iterations"]
        constants = {
            **{k: comm[k] for k in ("all_reduce_small", "all_gather_small", "all_reduce_gradient")},
            "bandwidth": 2 * (1 << 22) / max(comm["all_reduce_4MB"] - comm["all_reduce_small"], 1e-9),
            "es_candidates_per_process": ES_POP // max(procs),
            **serial,
            "ppo": {
                "updates": w2["updates"] / w2["iterations"],
                "gradient_bytes": 4 * w2["parameters"],
                # compute per iteration with 2 processes, less what the model counts as communication
                "compute": per_iteration
                - w2["updates"] / w2["iterations"] * comm["all_reduce_gradient"]
                - comm["all_gather_small"],
            },
        }
        predicted = model(constants, [2, 8, 64, 512])
        payload.update(constants=constants, predicted=predicted)
        print("\ncost model constants:", json.dumps(constants, indent=1))
        print(
            table(
                [{"processes": w, "es": p["es"], "ppo": p["ppo"]} for w, p in predicted.items()],
                ["processes", "es", "ppo"],
                {"es": ".2f", "ppo": ".2f"},
            )
        )
    save(args.name, payload, markdown=markdown_table(rows, columns, formats), packages=["torch", "gymnasium"])
    print(json.dumps(machine(["torch"]), indent=1))


if __name__ == "__main__":
    main()
