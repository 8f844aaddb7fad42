"""Shared by the benchmark scripts: machine description, tables, and result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def table(rows: list[dict], columns: list[str], formats: dict[str, str] | None = None) -> str:
    """A plain-text table; ``formats`` maps a column to a format spec such as ``".3g"``."""
    formats = formats or {}
    cells = [
        [format(row[c], formats.get(c, "")) if not isinstance(row[c], str) else row[c] for c in columns]
        for row in rows
    ]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def save(name: str, payload: dict, figure=None) -> None:
    """Write ``results/<name>.json`` (with the machine description) and ``results/<name>.png``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2))
    if figure is not None:
        figure.savefig(RESULTS / f"{name}.png", dpi=120, bbox_inches="tight")
    print(f"wrote {RESULTS / (name + '.json')}" + (f" and {name}.png" if figure is not None else ""))
