"""The one benchmark harness: machine metadata, timing, tables, evaluation of peers, result files.

Every script in ``benchmarks/`` describes the machine with :func:`machine` (one schema: date, CPU,
memory, versions, threads), times with :func:`median_seconds`, prints :func:`table` /
:func:`markdown_table`, and writes JSON (+ markdown + PNG) with :func:`save`. Variances and standard
errors come from ``scoregrad.diagnostics`` (``summarize``/``gradient_statistics``), scoregrad agents
are evaluated with ``rl.evaluate``, and peers (Stable-Baselines3) with :func:`evaluate_predict`, the
same loop.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine(packages: Sequence[str] = ()) -> dict[str, Any]:
    """The metadata every result file carries: date, machine, versions (torch, numpy, gymnasium,
    scoregrad, and ``packages``), and torch's thread count."""
    versions = {p: _version(p) for p in ("scoregrad", "torch", "numpy", "gymnasium", *packages)}
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {k: v for k, v in versions.items() if v is not None},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cells(rows: list[dict], columns: list[str], formats: dict[str, str]) -> list[list[str]]:
    return [
        [format(row[c], formats.get(c, "")) if not isinstance(row[c], str) else row[c] for c in columns]
        for row in rows
    ]


def table(rows: list[dict], columns: list[str], formats: dict[str, str] | None = None) -> str:
    """A plain-text table; ``formats`` maps a column to a format spec such as ``".3g"``."""
    cells = _cells(rows, columns, formats or {})
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def markdown_table(rows: list[dict], columns: list[str], formats: dict[str, str] | None = None) -> str:
    """The same rows as a markdown table (for the README)."""
    cells = _cells(rows, columns, formats or {})
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(lines)


def save(
    name: str | Path,
    payload: dict,
    figure: Any = None,
    markdown: str | None = None,
    packages: Sequence[str] = (),
) -> Path:
    """Write ``<name>.json`` (with :func:`machine`), and ``<name>.md`` / ``<name>.png`` when given.

    ``name`` is a bare name (written under ``benchmarks/results/``) or a path ending in ``.json``.
    """
    path = Path(name)
    if path.suffix != ".json":
        path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(packages), **payload}
    path.write_text(json.dumps(payload, indent=1))
    written = [path.name]
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown + "\n")
        written.append(path.with_suffix(".md").name)
    if figure is not None:
        figure.savefig(path.with_suffix(".png"), dpi=120, bbox_inches="tight")
        written.append(path.with_suffix(".png").name)
    print(f"wrote {path.parent}/{{{','.join(written)}}}")
    return path


def evaluate_predict(
    predict: Callable[[Any], Any], env_id: str, episodes: int = 20, seed: int = 1000
) -> tuple[float, float]:
    """Mean and std return of a peer's policy, ``predict(obs_batch) -> actions``, over ``episodes``
    episodes run in parallel from ``envs.reset(seed=seed)`` (env ``i`` seeded ``seed + i``, or one
    generator for a native vector env such as CartPole's), exactly as ``rl.evaluate`` runs ours."""
    import numpy as np

    from scoregrad.rl import make_vector_env

    envs = make_vector_env(env_id, episodes, "auto")
    try:
        obs, _ = envs.reset(seed=seed)
        total, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = envs.step(predict(obs))
            total += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
    finally:
        envs.close()
    return float(total.mean()), float(total.std())
