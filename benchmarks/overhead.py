"""Overhead of `sg.expectation` against a hand-written REINFORCE surrogate with a leave-one-out baseline.

Both sides draw the same samples (same seed, same calls to the distribution), so their gradients must agree
to float precision; the script asserts it before timing. Timing is forward + backward per gradient, the two
implementations interleaved in one process (alternating who goes first), after warm-up; medians over
repeats. With one torch thread the thread's CPU time (`time.thread_time`) measures the work itself and is
robust to other processes sharing the cores; wall time is reported beside it.

Problems:
  categorical: Categorical(logits) with 1000 classes, batch 512, 16 samples; f = a fixed reward table lookup.
  normal-256:  Independent(Normal(loc, scale), 1) with 256 dims, batch 64, 16 samples; f = a threshold count.

Run: python benchmarks/overhead.py [--repeats 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from common import save, table
from torch.distributions import Categorical, Independent, Normal

import scoregrad as sg

NUM_SAMPLES = 16


def categorical_problem():
    logits = torch.randn(512, 1000, requires_grad=True)
    reward = torch.randn(1000)

    def make_dist():
        return Categorical(logits=logits)

    return [logits], make_dist, lambda x: reward[x]


def normal_problem():
    loc = torch.randn(64, 256, requires_grad=True)
    log_scale = torch.zeros(64, 256, requires_grad=True)

    def make_dist():
        return Independent(Normal(loc, log_scale.exp()), 1)

    return [loc, log_scale], make_dist, lambda x: (x > 0.5).float().sum(-1)


def ours(params, make_dist, f):
    value = sg.expectation(f, make_dist(), NUM_SAMPLES, estimator="score_function", baseline="leave_one_out")
    return torch.autograd.grad(value.sum(), params)


def hand_written(params, make_dist, f):
    dist = make_dist()
    samples = dist.sample((NUM_SAMPLES,))
    log_prob = dist.log_prob(samples)
    reward = f(samples)
    baseline = (reward.sum(0, keepdim=True) - reward) / (NUM_SAMPLES - 1)
    surrogate = (log_prob * (reward - baseline)).mean(0)
    return torch.autograd.grad(surrogate.sum(), params)


def median_times(problem, repeats: int) -> dict[str, float]:
    """Median CPU (thread) and wall seconds per gradient for each implementation."""
    params, make_dist, f = problem
    for _ in range(10):  # warm-up
        ours(params, make_dist, f)
        hand_written(params, make_dist, f)
    times = {key: [] for key in ("ours cpu", "hand cpu", "ours wall", "hand wall")}
    pair = [("ours", ours), ("hand", hand_written)]
    for repeat in range(repeats):
        for name, implementation in pair if repeat % 2 else pair[::-1]:  # alternate who goes first
            cpu, wall = time.thread_time(), time.perf_counter()
            implementation(params, make_dist, f)
            times[f"{name} cpu"].append(time.thread_time() - cpu)
            times[f"{name} wall"].append(time.perf_counter() - wall)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="30 repeats")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 30 if args.quick else args.repeats

    rows = []
    for name, make_problem in (
        ("categorical 1000 x 512, 16 samples", categorical_problem),
        ("normal 256-dim x 64, 16 samples", normal_problem),
    ):
        torch.manual_seed(0)
        problem = make_problem()
        params, make_dist, f = problem
        torch.manual_seed(1)
        ours_gradient = ours(params, make_dist, f)
        torch.manual_seed(1)
        hand_gradient = hand_written(params, make_dist, f)
        for a, b in zip(ours_gradient, hand_gradient, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
        medians = median_times(problem, repeats)
        rows.append(
            {
                "problem": name,
                "sg.expectation ms": 1e3 * medians["ours cpu"],
                "hand-written ms": 1e3 * medians["hand cpu"],
                "ratio": medians["ours cpu"] / medians["hand cpu"],
                "ratio (wall)": medians["ours wall"] / medians["hand wall"],
            }
        )

    print(
        f"CPU time per gradient (forward + backward), median of {repeats} interleaved repeats, "
        f"{args.threads} thread(s); gradients checked equal"
    )
    formats = {"sg.expectation ms": ".3f", "hand-written ms": ".3f", "ratio": ".3f", "ratio (wall)": ".3f"}
    print(table(rows, list(rows[0]), formats))

    figure, axis = plt.subplots(figsize=(6, 3.5))
    positions = range(len(rows))
    axis.bar(
        [p - 0.2 for p in positions],
        [r["sg.expectation ms"] for r in rows],
        width=0.4,
        label="sg.expectation",
    )
    axis.bar(
        [p + 0.2 for p in positions], [r["hand-written ms"] for r in rows], width=0.4, label="hand-written"
    )
    axis.set_xticks(list(positions), [r["problem"] for r in rows], fontsize=8)
    axis.set_ylabel("CPU ms per gradient (median)")
    axis.legend()
    save("overhead", {"repeats": repeats, "threads": args.threads, "rows": rows}, figure)


if __name__ == "__main__":
    main()
