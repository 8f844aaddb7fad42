"""Run logs: a tqdm progress bar, TensorBoard scalars, and CSVs of episodes and updates.

The CSVs are crash-safe in the sense that matters for resuming: every row is flushed at the end of
its iteration, and a resumed run first cuts each file back to the checkpoint's env step (rows
logged after the last checkpoint belong to work that is about to be redone) and restores a header
a killed run may have lost, so a run directory never holds duplicated or headerless rows.
TensorBoard events after that step are purged the same way (``SummaryWriter(purge_step=...)``).
"""

from __future__ import annotations

import csv
import io
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from scoregrad.rl.checkpoint import atomic_write

__all__ = ["RunLogger", "EPISODE_COLUMNS", "UPDATE_COLUMNS", "truncate_csv"]

EPISODE_COLUMNS = ["step", "wall_time", "return", "length"]
EVALUATION_COLUMNS = ["step", "wall_time", "mean_return", "std_return", "best_return"]
STAT_COLUMNS = ("policy_loss", "value_loss", "entropy", "approx_kl")


def update_columns(stat_columns: tuple[str, ...] = STAT_COLUMNS) -> list[str]:
    """The header of ``updates.csv`` for the given update statistics."""
    return ["step", "wall_time", "steps_per_s", *stat_columns, "learning_rate"]


UPDATE_COLUMNS = update_columns()


def truncate_csv(path: Path, header: list[str], max_step: int) -> int:
    """Rewrite ``path`` as ``header`` plus the rows whose ``step`` is at most ``max_step``.

    Rows that are torn (wrong column count) or whose first field is not an integer step (an old
    header, a half-written line) are dropped. Returns the number of rows kept.
    """
    rows: list[list[str]] = []
    if path.exists():
        with path.open(newline="") as f:
            for row in csv.reader(f):
                if len(row) != len(header) or not row[0].lstrip("-").isdigit():
                    continue
                if int(row[0]) <= max_step:
                    rows.append(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue().encode())
    return len(rows)


class RunLogger:
    """Progress bar, TensorBoard and CSV logs of one run.

    Args:
        out: run directory, or None for the progress bar alone.
        progress: show the progress bar.
        total: the step count the bar runs to.
        initial: the env step the run starts (or resumes) at.
        wall_time: seconds of training already spent before this process (a resumed run's clock
            continues from there).
        resume: cut existing logs back to ``initial`` instead of starting new ones.
        stat_columns: the update statistics written to ``updates.csv`` (the policy-gradient losses by
            default; ES runs log their return mean/max, gradient norm and sigma).
        evaluations: also keep ``evaluations.csv`` (periodic evaluations: keep_best, eval_every).
    """

    def __init__(
        self,
        out: Path | None,
        progress: bool,
        total: int,
        initial: int,
        wall_time: float = 0.0,
        resume: bool = False,
        stat_columns: tuple[str, ...] = STAT_COLUMNS,
        evaluations: bool = False,
    ):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", disable=not progress, dynamic_ncols=True)
        self.writer = None
        self.episode_csv = self.update_csv = self.evaluation_csv = None
        self._files: list[Any] = []
        self.last_step, self.last_time = initial, time.perf_counter()
        self.wall_time_offset = wall_time
        self._start = time.perf_counter()
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.stat_columns = tuple(stat_columns)
        files = [("episodes.csv", EPISODE_COLUMNS), ("updates.csv", update_columns(self.stat_columns))]
        if evaluations:
            files.append(("evaluations.csv", EVALUATION_COLUMNS))
        for name, header in files:
            path = out / name
            if resume or not path.exists():
                truncate_csv(path, header, initial if resume else -1)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"), purge_step=initial if resume else None)
        except ImportError:
            warnings.warn(
                "tensorboard is not installed; no event files (pip install tensorboard)", stacklevel=3
            )
        self.episode_csv = self._open(out / "episodes.csv")
        self.update_csv = self._open(out / "updates.csv")
        if evaluations:
            self.evaluation_csv = self._open(out / "evaluations.csv")

    def _open(self, path: Path):
        f = path.open("a", newline="")
        self._files.append(f)
        return csv.writer(f)

    def elapsed(self) -> float:
        """Training wall time so far, including the time before a resume."""
        return self.wall_time_offset + time.perf_counter() - self._start

    def log(
        self,
        step: int,
        finished: list[tuple[int, float, int]],
        recent_returns: Any,
        stats: dict[str, float],
        learning_rate: float,
    ) -> None:
        """Log one iteration: the episodes it finished and its update statistics; flushes the CSVs."""
        now, elapsed = time.perf_counter(), self.elapsed()
        sps = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        self.bar.update(step - self.bar.n)
        recent = float(np.mean(recent_returns)) if recent_returns else float("nan")
        self.bar.set_postfix({"sps": f"{sps:.0f}", "return": f"{recent:.1f}"}, refresh=False)
        if self.episode_csv is not None:
            for s, r, n in finished:
                self.episode_csv.writerow([s, f"{elapsed:.3f}", r, n])
            self.update_csv.writerow(
                [step, f"{elapsed:.3f}", f"{sps:.0f}"]
                + [stats.get(k, "") for k in self.stat_columns]
                + [learning_rate]
            )
            for f in self._files:  # a killed run keeps every finished iteration's rows
                f.flush()
        if self.writer is not None:
            for s, r, n in finished:
                self.writer.add_scalar("charts/episode_return", r, s)
                self.writer.add_scalar("charts/episode_length", n, s)
            for k, v in stats.items():
                self.writer.add_scalar(f"losses/{k}", v, step)
            self.writer.add_scalar("charts/steps_per_s", sps, step)
            self.writer.add_scalar("charts/learning_rate", learning_rate, step)

    def log_evaluation(self, step: int, mean: float, std: float, best: float | None) -> None:
        """Log one periodic evaluation (``best``: the best mean so far with keep_best, else None)."""
        if not self.bar.disable:
            text = f"step {step}: evaluation return {mean:.1f} ± {std:.1f}"
            self.bar.write(text if best is None else f"{text} (best {best:.1f})")
        if self.evaluation_csv is not None:
            self.evaluation_csv.writerow(
                [step, f"{self.elapsed():.3f}", mean, std, "" if best is None else best]
            )
            for f in self._files:
                f.flush()
        if self.writer is not None:
            self.writer.add_scalar("eval/mean_return", mean, step)
            if best is not None:
                self.writer.add_scalar("eval/best_return", best, step)

    def close(self, out: Path | None) -> None:
        """Close the files; draw the learning curve when ``out`` is given."""
        self.bar.close()
        for f in self._files:
            f.close()
        if self.writer is not None:
            self.writer.close()
        if out is not None and (out / "episodes.csv").exists():
            from scoregrad.rl.plotting import plot_run

            try:
                plot_run(out)
            except ImportError:
                warnings.warn("matplotlib is not installed; no learning-curve PNG", stacklevel=2)
