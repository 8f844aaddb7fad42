"""The effect of antithetic sampling and fitness shaping (sg.es), on gradient noise and on convergence.

1. Gradient noise: OpenES at a fixed centre (x0 ~ U(-1, 1)^D, sigma 0.1, P = 20, no optimiser
   step) on the sphere and the ellipsoid (condition 1e6), D = 100: over 300 generations, the median
   over coordinates of the generation gradient's signal-to-noise ratio reported by
   ``es.gradient_stats()`` (``snr * sqrt(repeats)``), and the cosine between each generation's
   gradient and the true gradient ``grad E[f]`` (closed form for these quadratics), also with
   the centre 200 times closer to the optimum (where sigma exceeds the distance).
2. Convergence: SNES (CSA) on the same functions, D = 100, 3 seeds, budget 100,000: evaluations
   to f < 1e-8 for each combination.

Run: python benchmarks/es_ablation.py
"""

from __future__ import annotations

import statistics

import torch
from common import RESULTS, save, table

import scoregrad as sg

D = 100
COND = 1e6 ** (torch.arange(D, dtype=torch.float64) / (D - 1))
FUNCTIONS = {"sphere": torch.ones(D, dtype=torch.float64), "ellipsoid": COND}
SHAPINGS = [None, "centered_rank", "nes"]


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for fname, c in FUNCTIONS.items():

        def f(X, c=c):
            return (c * X**2).sum(-1)

        x0 = 2 * torch.rand(D, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
        true = 2 * c * x0  # grad E f for a quadratic: 2 C m (sigma only shifts the value)
        for antithetic in (False, True):
            for shaping in SHAPINGS:
                es = sg.es.OpenES(x0, sigma=0.1, popsize=20, antithetic=antithetic, shaping=shaping, seed=0)
                snr, cosine = [], []
                for _ in range(300):
                    es.tell(f(es.ask()))
                    stats = es.gradient_stats()
                    snr.append(float(stats.snr.median()) * stats.repeats**0.5)
                    cosine.append(float(torch.nn.functional.cosine_similarity(es.mean.grad, true, dim=0)))
                # Near the optimum (|m| ~ sigma / 20): the even part of f dominates the differences.
                near = sg.es.OpenES(
                    x0 / 200, sigma=0.1, popsize=20, antithetic=antithetic, shaping=shaping, seed=0
                )
                cosine_near = []
                for _ in range(300):
                    near.tell(f(near.ask()))
                    cosine_near.append(
                        float(torch.nn.functional.cosine_similarity(near.mean.grad, true / 200, dim=0))
                    )
                evaluations = []
                for seed in range(3):
                    start = (
                        2 * torch.rand(D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                        - 1
                    )
                    try:
                        res = sg.es.minimize(
                            f, start, method="snes", sigma0=0.5, budget=100_000, seed=seed, target=1e-8,
                            antithetic=antithetic, shaping=shaping,
                            popsize=sg.es.default_popsize(D) + sg.es.default_popsize(D) % 2,
                        )  # fmt: skip
                        evaluations.append(res.evaluations if res.reached_target else None)
                    except ValueError:  # e.g. losses overflowed to inf with unshaped steps
                        evaluations.append(None)
                reached = [e for e in evaluations if e is not None]
                rows.append(
                    {
                        "function": fname,
                        "antithetic": str(antithetic),
                        "shaping": str(shaping),
                        "OpenES gradient SNR (median)": f"{statistics.median(snr):.2f}",
                        "cosine to grad E f (mean)": f"{statistics.mean(cosine):.3f}",
                        "cosine near optimum": f"{statistics.mean(cosine_near):.3f}",
                        "SNES reached": f"{len(reached)}/3",
                        "SNES evaluations (median)": f"{statistics.median(reached):,.0f}" if reached else "-",
                    }
                )
                print(table([rows[-1]], list(rows[-1])).splitlines()[-1], flush=True)
    text = table(rows, list(rows[0]))
    print(text)
    save("es_ablation", {"command": "python benchmarks/es_ablation.py", "rows": rows})
    (RESULTS / "es_ablation.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
