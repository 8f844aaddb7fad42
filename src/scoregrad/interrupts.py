"""Signals for long runs: SIGTERM behaves like Ctrl-C, and saves are never cut in half.

``timeout``, ``docker stop`` and SLURM send SIGTERM; a person sends SIGINT (Ctrl-C). A training
loop wraps itself in :func:`terminate_as_interrupt`, so both raise a :class:`KeyboardInterrupt`
that the loop turns into a final checkpoint, and wraps each save in :func:`deferred_signals`, so a
second Ctrl-C pressed while the checkpoint is being written waits until it is complete. Exit
statuses follow the shell convention, ``128 + signal number``: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Terminated", "terminate_as_interrupt", "deferred_signals", "exit_status"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM inside :func:`terminate_as_interrupt`."""

    signum = int(signal.SIGTERM)


def exit_status(interrupt: BaseException) -> int:
    """The conventional exit status for an interrupt: 143 after SIGTERM, 130 after SIGINT."""
    return 128 + getattr(interrupt, "signum", int(signal.SIGINT))


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread."""
    if not _in_main_thread():  # signal handlers can only be installed from the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred_signals(reraise: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM until the block ends (a checkpoint save, say).

    Signals that arrive inside the block are recorded in the yielded list. When the block ends they
    are re-raised as ``KeyboardInterrupt``/:class:`Terminated` if ``reraise`` (the block's work is
    complete by then), or dropped if not (the caller is exiting anyway).
    """
    received: list[int] = []
    if not _in_main_thread():
        yield received
        return

    def record(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {s: signal.signal(s, record) for s in _SIGNALS}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received and reraise:
        raise Terminated() if received[0] == signal.SIGTERM else KeyboardInterrupt()
