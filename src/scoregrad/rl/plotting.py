"""Learning-curve plot of a run directory (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["plot_run"]


def plot_run(out: str | Path, path: str | Path | None = None) -> Path:
    """Plot episode returns (and a moving average) from ``out/episodes.csv`` into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    src = out / "episodes.csv"
    if not src.exists():
        raise FileNotFoundError(f"{src} not found: is {out} a scoregrad run directory?")
    with src.open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["step"]) for r in rows])
    rets = np.array([float(r["return"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, rets, ".", alpha=0.25, ms=3, label="episode return")
    if len(rets) >= 2:
        k = max(1, min(20, len(rets) // 5))
        smooth = np.convolve(rets, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, "-", label=f"moving mean ({k})")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(out.name)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path) if path is not None else out / "learning_curve.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
