"""Variance of gradient estimators on N(mu=1, sigma=1): the study of Mohamed, Rosca, Figurnov & Mnih
(JMLR 2020), §3, Figure 2.

For f in {(x-k)^2, exp(-k x^2), cos(k x)} over a grid of k, the single-sample variance of the gradient
estimate for mu and sigma, for: score function, score function with the optimal baseline, pathwise, and
coupled measure-valued. Each variance comes from R independent draws made in one call (a batch of R
identical copies); the bias against the closed-form gradient is printed in standard errors as a check.

The optimal baseline needs several samples (its coefficients are estimated leave-one-out from the other
samples), so its row is the variance of the 16-sample estimate times 16: the variance per function
evaluation, comparable with the single-sample rows. The measure-valued row is per draw of the coupled pairs (5 evaluations of f).

Run: python benchmarks/variance.py            (R = 200,000 draws per point, about 3 minutes)
     python benchmarks/variance.py --quick    (R = 20,000)
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from common import save, table
from torch.distributions import Normal

import scoregrad as sg

MU, SIGMA = 1.0, 1.0
K_GRID = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0]

# f(k) for the estimators, and E[f] in closed form (differentiated by autograd for the exact gradient).
FUNCTIONS = {
    "(x-k)^2": (lambda k: lambda x: (x - k) ** 2, lambda k, m, s: (m - k) ** 2 + s**2),
    "exp(-kx^2)": (
        lambda k: lambda x: torch.exp(-k * x**2),
        lambda k, m, s: torch.exp(-k * m**2 / (1 + 2 * k * s**2)) / torch.sqrt(1 + 2 * k * s**2),
    ),
    "cos(kx)": (
        lambda k: lambda x: torch.cos(k * x),
        lambda k, m, s: torch.cos(k * m) * torch.exp(-(k**2) * s**2 / 2),
    ),
}
ESTIMATORS = {
    "score function": {"estimator": "score_function", "num_samples": 1},
    "score function + optimal baseline": {
        "estimator": "score_function",
        "baseline": "optimal",
        "num_samples": 16,
    },
    "pathwise": {"estimator": "pathwise", "num_samples": 1},
    "measure-valued (coupled)": {"estimator": "measure_valued", "num_samples": 1},
}


def exact_gradient(expectation_of, k: float) -> torch.Tensor:
    m = torch.tensor(MU, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(SIGMA, dtype=torch.float64, requires_grad=True)
    return torch.stack(torch.autograd.grad(expectation_of(k, m, s), [m, s]))


def gradient_draws(f, draws: int, estimator: str, num_samples: int, baseline=None) -> torch.Tensor:
    mu = torch.full((draws,), MU, requires_grad=True)
    sigma = torch.full((draws,), SIGMA, requires_grad=True)
    value = sg.expectation(f, Normal(mu, sigma), num_samples, estimator=estimator, baseline=baseline)
    return torch.stack(torch.autograd.grad(value.sum(), [mu, sigma]), -1).double()  # (draws, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20,000 draws per point instead of 200,000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    draws = 20_000 if args.quick else 200_000
    torch.manual_seed(args.seed)

    rows = []
    for f_name, (make_f, expectation_of) in FUNCTIONS.items():
        for k in K_GRID:
            exact = exact_gradient(expectation_of, k)
            for label, options in ESTIMATORS.items():
                stats = sg.diagnostics.summarize(gradient_draws(make_f(k), draws, **options), exact)
                variance = stats.variance * options["num_samples"]  # per function evaluation, see docstring
                bias, standard_error = stats.bias, stats.standard_error
                # A zero-variance estimator is judged by its bias alone (float rounding, not noise).
                z = torch.where(standard_error > 1e-9, stats.z_score, bias / 1e-6)
                rows.append(
                    {
                        "f": f_name,
                        "k": k,
                        "estimator": label,
                        "var_mu": variance[0].item(),
                        "var_sigma": variance[1].item(),
                        "max_abs_z": z.abs().max().item(),
                        "grad_mu": exact[0].item(),
                        "grad_sigma": exact[1].item(),
                    }
                )

    print(f"Single-sample gradient variance, N(mu={MU}, sigma={SIGMA}), {draws} draws per point")
    print(
        table(
            rows,
            ["f", "k", "estimator", "grad_mu", "var_mu", "grad_sigma", "var_sigma", "max_abs_z"],
            {
                "k": "g",
                "var_mu": ".3g",
                "var_sigma": ".3g",
                "max_abs_z": ".2f",
                "grad_mu": ".3f",
                "grad_sigma": ".3f",
            },
        )
    )

    figure, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    for column, f_name in enumerate(FUNCTIONS):
        for row_index, parameter in enumerate(("mu", "sigma")):
            axis = axes[row_index, column]
            for label in ESTIMATORS:
                points = [r for r in rows if r["f"] == f_name and r["estimator"] == label]
                axis.plot(
                    [r["k"] for r in points],
                    [max(r[f"var_{parameter}"], 1e-12) for r in points],
                    marker="o",
                    label=label,
                )
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_title(f"f = {f_name}, gradient in {parameter}")
            axis.set_xlabel("k")
            axis.set_ylabel("variance")
            axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    figure.suptitle(f"Gradient variance on N({MU}, {SIGMA}) (Mohamed et al. 2020, Fig. 2)")
    save("variance", {"draws": draws, "rows": rows}, figure)


if __name__ == "__main__":
    main()
