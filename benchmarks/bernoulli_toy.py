"""The Bernoulli toy of REBAR (Tucker et al., 2017) and RELAX (Grathwohl et al., 2018).

Minimise E_{b ~ Bernoulli(sigmoid(phi))}[(b - t)^2] over the logit phi, for t = 0.45 and t = 0.499. The
gradient sigmoid'(phi) (1 - 2t) is tiny for t = 0.499, so a noisy estimator cannot tell which way to go.

(a) Variance and bias of each estimator's gradient at several logits, from R independent draws in one call.
    Every row uses 2 evaluations of f per estimate (num_samples=2), except `exact` (2 support points) and
    measure_valued (2 evaluations per draw by construction), so the rows compare at equal cost.
(b) Optimisation: Adam (lr 0.01) for 5000 steps, 16 independent runs at once (a batch of 16 logits), the
    exact objective recorded along the way; the curves are the median over runs.

Run: python benchmarks/bernoulli_toy.py           (about a minute)
     python benchmarks/bernoulli_toy.py --quick   (1000 steps)
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from common import save, table
from torch.distributions import Bernoulli

import scoregrad as sg

TARGETS = (0.45, 0.499)
LOGITS = (-2.0, -1.0, 0.0, 1.0, 2.0)
ESTIMATORS = {
    "score_function": {"estimator": "score_function"},
    "score_function + leave_one_out": {"estimator": "score_function", "baseline": "leave_one_out"},
    "arm": {"estimator": "arm"},
    "disarm": {"estimator": "disarm"},
    "measure_valued": {"estimator": "measure_valued"},
    "exact": {"estimator": "exact"},
    "gumbel_softmax (biased)": {"estimator": "gumbel_softmax"},
    "straight_through (biased)": {"estimator": "straight_through"},
}
NUM_SAMPLES = 2


def objective(t: float):
    return lambda b: (b - t) ** 2


def exact_gradient(phi: torch.Tensor, t: float) -> torch.Tensor:
    p = torch.sigmoid(phi)
    return p * (1 - p) * ((1 - t) ** 2 - t**2)


def exact_value(phi: torch.Tensor, t: float) -> torch.Tensor:
    p = torch.sigmoid(phi)
    return p * (1 - t) ** 2 + (1 - p) * t**2


def num_samples_for(options: dict) -> int:
    # measure_valued evaluates f at b = 1 and b = 0 for each draw: one draw is already 2 evaluations.
    return 1 if options["estimator"] in ("measure_valued", "exact") else NUM_SAMPLES


def variance_study(draws: int) -> list[dict]:
    rows = []
    for t in TARGETS:
        for logit in LOGITS:
            exact = exact_gradient(torch.tensor(logit), t).item()
            for label, options in ESTIMATORS.items():
                phi = torch.full((draws,), logit, requires_grad=True)
                value = sg.expectation(
                    objective(t), Bernoulli(logits=phi), num_samples_for(options), **options
                )
                (gradient,) = torch.autograd.grad(value.sum(), phi)
                stats = sg.diagnostics.summarize(gradient, torch.tensor([exact]))
                se = stats.standard_error.item()
                rows.append(
                    {
                        "t": t,
                        "logit": logit,
                        "estimator": label,
                        "exact": exact,
                        "mean": stats.mean.item(),
                        "variance": stats.variance.item(),
                        "bias_in_se": stats.z_score.item() if se > 1e-12 else 0.0,
                        "snr": stats.snr.item(),
                    }
                )
    return rows


def optimise(steps: int, runs: int, seed: int) -> dict:
    curves = {}
    for t in TARGETS:
        for label, options in ESTIMATORS.items():
            torch.manual_seed(seed)
            phi = torch.zeros(runs, requires_grad=True)
            optimizer = torch.optim.Adam([phi], lr=0.01)
            record_every = max(1, steps // 100)
            history, start = [], time.perf_counter()
            for step in range(steps + 1):
                if step % record_every == 0:
                    history.append((step, exact_value(phi.detach(), t).median().item()))
                optimizer.zero_grad()
                value = sg.expectation(
                    objective(t), Bernoulli(logits=phi), num_samples_for(options), **options
                )
                value.sum().backward()
                optimizer.step()
            curves[f"t={t} {label}"] = {
                "t": t,
                "estimator": label,
                "steps": [s for s, _ in history],
                "objective": [v for _, v in history],
                "final_objective": history[-1][1],
                "optimum": min((1 - t) ** 2, t**2),
                "seconds": time.perf_counter() - start,
            }
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1000 optimisation steps and 20,000 draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # tiny tensors: threads only add contention
    draws, steps = (20_000, 1000) if args.quick else (200_000, 5000)

    rows = variance_study(draws)
    print(
        f"(a) Gradient of E[(b - t)^2] in the logit, {draws} draws, {NUM_SAMPLES} evaluations of f per estimate"
    )
    print(
        table(
            rows,
            ["t", "logit", "estimator", "exact", "mean", "variance", "snr", "bias_in_se"],
            {
                "t": "g",
                "logit": "g",
                "exact": ".5f",
                "mean": ".5f",
                "variance": ".3e",
                "snr": ".3g",
                "bias_in_se": ".1f",
            },
        )
    )

    curves = optimise(steps, runs=16, seed=args.seed)
    summary = [
        {
            "t": c["t"],
            "estimator": c["estimator"],
            "final objective (median of 16)": c["final_objective"],
            "optimum": c["optimum"],
            "seconds": c["seconds"],
        }
        for c in curves.values()
    ]
    print(f"\n(b) Adam, lr 0.01, {steps} steps, 16 runs")
    print(
        table(
            summary,
            list(summary[0]),
            {"final objective (median of 16)": ".5f", "optimum": ".5f", "seconds": ".1f", "t": "g"},
        )
    )

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for label in ESTIMATORS:
        points = [r for r in rows if r["estimator"] == label and r["t"] == TARGETS[0]]
        axes[0].plot(
            [r["logit"] for r in points], [max(r["variance"], 1e-12) for r in points], marker="o", label=label
        )
    axes[0].set_yscale("log")
    axes[0].set_xlabel("logit")
    axes[0].set_ylabel("gradient variance")
    axes[0].set_title(f"(a) variance, t = {TARGETS[0]} (zero drawn at 1e-12)")
    for axis, t in zip(axes[1:], TARGETS, strict=True):
        for curve in curves.values():
            if curve["t"] == t:
                axis.plot(curve["steps"], curve["objective"], label=curve["estimator"])
        axis.axhline(min((1 - t) ** 2, t**2), color="black", linestyle=":", linewidth=1)
        axis.set_xlabel("step")
        axis.set_title(f"(b) Adam on t = {t}")
    axes[1].set_ylabel("exact objective (median of 16 runs)")
    axes[0].legend(fontsize=7)
    save("bernoulli_toy", {"draws": draws, "steps": steps, "variance": rows, "curves": curves}, figure)


if __name__ == "__main__":
    main()
