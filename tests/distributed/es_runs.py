"""ES runs, by one process or under torchrun; rank 0 saves OUT/es.safetensors (centres and losses)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from scoregrad import distributed, rl
from scoregrad import es as search


def ellipsoid(X: torch.Tensor) -> torch.Tensor:
    scales = torch.logspace(0, 3, X.shape[1], dtype=X.dtype)
    return (scales * X**2).sum(1)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    x0 = torch.linspace(-1, 1, 12, dtype=torch.float64)
    saved = {}
    # a budget below one generation: no candidate is evaluated, every process returns x0
    saved["no_generation.x"] = search.minimize(ellipsoid, x0, method="openes", popsize=10, budget=5).x
    for noise in ("generator", "table"):
        for method in ("openes", "snes", "xnes", "pgpe"):
            res = search.minimize(ellipsoid, x0, method=method, popsize=10, budget=300, seed=4, noise=noise)
            saved[f"{method}.{noise}.x"] = res.x
            saved[f"{method}.{noise}.mean"] = res.strategy.mean.detach().clone()
        agent = rl.train(
            "CartPole-v1", "es", total_steps=3000, seed=2, popsize=8, vectorization_mode="sync",
            progress=False, torch_threads=1, noise=noise,
        )  # fmt: skip
        saved.update({f"{noise}.policy.{k}": v.contiguous() for k, v in agent.policy.state_dict().items()})
        saved[f"{noise}.obs_mean"] = torch.as_tensor(agent.obs_normalizer.stats.mean)
    if distributed.is_main():
        save_file(saved, str(out / "es.safetensors"))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
