"""Scale out on ``torch.distributed``: the few collective pieces that RL, ES and sequence training share.

Launch any scoregrad program with ``torchrun`` (``torchrun --standalone --nproc_per_node=2 -m scoregrad
train ...``, or ``scoregrad train ... --nproc 2``, which runs torchrun for you). Every trainer calls
:func:`init`, which joins the process group that torchrun describes in the environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``...; gloo on CPU, NCCL where CUDA is present) and does nothing in a plain
process, so the same code runs on one process or many. What each trainer exchanges, and when:

* **RL** (:mod:`scoregrad.rl.trainer`): each process steps its share of ``num_envs`` (which counts envs
  over all processes); its actions are drawn from *its rows of one draw for all envs*
  (:class:`ShardedGenerator`), so that ``W`` processes x ``N/W`` envs run the same rollout as one
  process with ``N`` envs (for per-env-seeded vector envs). Per iteration: one all-gather of the
  rollouts (:func:`all_gather_cat`), so every process holds the union batch; per optimiser step, one
  flat all-reduce of the gradients of each process's share of the minibatch (:func:`all_reduce_sum`).
* **ES** (:mod:`scoregrad.es`): the population is split across processes, which exchange only losses
  (:func:`gather_losses`, in ``ceil(log2 W)`` rounds), as in Salimans et al. (2017): noise is
  seed-addressed, so each process builds only its own candidates (``es.ask(rows=shard(P))``).
* **Sequences** (:mod:`scoregrad.seq`): ``DistributedDataParallel`` over prompts.

Only rank 0 writes the run directory (:func:`is_main`), with a :func:`barrier` after each checkpoint.

Measured here (2 CPU cores, gloo over loopback): a collective costs about 1 ms whatever its size up to
~100 kB, so the trainers make a constant number of them per iteration or per optimiser step, never one
per env step.
"""

from __future__ import annotations

import atexit
import datetime
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "init",
    "launched",
    "is_initialized",
    "world_size",
    "rank",
    "is_main",
    "barrier",
    "shard",
    "local_count",
    "all_reduce_sum",
    "all_gather_cat",
    "all_gather_objects",
    "all_gather_log",
    "gather_losses",
    "broadcast",
    "evaluate_population",
    "ShardedGenerator",
    "ProcessGroupError",
    "DEFAULT_TIMEOUT",
    "SPIN_SECONDS",
]

#: Below this many bytes gathered in all, :func:`all_reduce_sum` all-gathers and sums locally.
GATHER_BYTES = 1 << 20

#: Seconds a collective waits for the other processes before the job fails (``--timeout``).
DEFAULT_TIMEOUT = 300.0

#: Seconds a process polls a gloo collective (yielding its core between polls) before it blocks.
SPIN_SECONDS = 0.02


class ProcessGroupError(RuntimeError):
    """Another process stopped, failed or did not answer within the timeout during a collective."""


def launched() -> bool:
    """True in a process started by ``torchrun`` (or anything that sets ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init(timeout: float | None = None, backend: str | None = None) -> int:
    """Join torchrun's process group (once); returns the number of processes (1 outside torchrun).

    Args:
        timeout: seconds any collective may wait for the others before the job fails with
            :class:`ProcessGroupError` (default :data:`DEFAULT_TIMEOUT`, or ``SCOREGRAD_TIMEOUT``).
        backend: ``"gloo"`` or ``"nccl"``; default NCCL where CUDA is available, else gloo.
    """
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    if is_initialized() or not launched():
        return world_size()
    import torch.distributed as dist

    if timeout is None:
        timeout = float(os.environ.get("SCOREGRAD_TIMEOUT", DEFAULT_TIMEOUT))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    atexit.register(_shutdown)  # a process that ends before the others must not abort in gloo's threads
    return world_size()


def _shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    if not is_initialized():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def rank() -> int:
    if not is_initialized():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def is_main() -> bool:
    """True on rank 0 (and in a plain process): the one process that writes files and prints."""
    return rank() == 0


@contextmanager
def _collective(what: str) -> Iterator[None]:
    """Turn a failed collective (a process died, raised, or timed out) into one clear error."""
    try:
        yield
    except RuntimeError as err:
        if isinstance(err, ProcessGroupError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ProcessGroupError(
            f"rank {rank()} of {world_size()}: {what} failed: another process stopped, failed or did not "
            f"answer within the timeout ({first})"
        ) from err


def _wait(work: Any) -> None:
    """Complete an asynchronous collective: poll it, yielding the core between polls, for up to
    :data:`SPIN_SECONDS`, then block.

    Measured here (gloo over loopback, 2 processes on 2 cores): after a blocking wait, the next ~1 ms of
    compute ran 45 % slower than with no wait at all (the core had idled), so a PPO update, which alternates a few ms of
    compute and a gradient exchange, ran its compute twice as slowly with 2 processes as with 1. Polling
    keeps the core busy through the short waits between optimiser steps, as MPI and NCCL do;
    ``os.sched_yield`` leaves the core to gloo's own thread, which moves the bytes. Long waits (a slow
    peer, a checkpoint) block after the spin. NCCL's work is waited on as usual.
    """
    if _spins():
        deadline = time.perf_counter() + SPIN_SECONDS
        while not work.is_completed() and time.perf_counter() < deadline:
            _yield_core()
    work.wait()


#: ``os.sched_yield`` where the platform has it (Linux, macOS); ``time.sleep(0)`` elsewhere (Windows)
_yield_core: Callable[[], None] = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))


def _spins() -> bool:
    import torch.distributed as dist

    return dist.get_backend() == "gloo" and SPIN_SECONDS > 0


def barrier() -> None:
    if world_size() == 1:
        return
    import torch.distributed as dist

    with _collective("barrier"):
        _wait(dist.barrier(async_op=True))


def shard(n: int, index: int | None = None, count: int | None = None) -> slice:
    """The contiguous rows ``[n*r//W, n*(r+1)//W)`` of ``n`` that process ``r`` of ``W`` handles."""
    r = rank() if index is None else index
    w = world_size() if count is None else count
    return slice(n * r // w, n * (r + 1) // w)


def local_count(total: int, what: str) -> int:
    """``total / world_size()``, refusing a ``total`` that does not split evenly (naming ``what``)."""
    w = world_size()
    if total % w:
        raise ValueError(f"{what}={total} must be divisible by the number of processes ({w})")
    return total // w


def all_reduce_sum(tensors: Sequence[Tensor]) -> None:
    """Sum ``tensors`` over processes, in place, in ONE flat all-reduce.

    Used for the gradients of each process's share of a minibatch (plus the few statistics that ride
    along), the way DDP's buckets do, but in one message: latency, not bandwidth, dominates small models.
    """
    if world_size() == 1 or not tensors:
        return
    import torch.distributed as dist

    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    flat = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
    if world_size() * flat.numel() * flat.element_size() <= GATHER_BYTES:
        # measured here (gloo, 2 processes, 44 kB): with blocking waits an all-gather and a local sum in
        # rank order took 0.8 ms where gloo's all-reduce took 2 ms; polled (_wait), both take 0.4-0.5 ms
        # (median). The sum is the same, bit for bit, on every process
        parts = [torch.empty_like(flat) for _ in range(world_size())]
        with _collective("all_gather"):
            _wait(dist.all_gather(parts, flat, async_op=True))
        flat = torch.stack(parts).sum(0)
    else:
        with _collective("all_reduce"):
            _wait(dist.all_reduce(flat, async_op=True))
    offset = 0
    for t in tensors:
        n = t.numel()
        t.detach().copy_(flat[offset : offset + n].view(t.shape))
        offset += n


def all_gather_cat(tensors: Sequence[Tensor], dim: int = 0) -> list[Tensor]:
    """Concatenate each tensor over processes along ``dim`` (rank order), in ONE all-gather.

    Every process passes tensors of the same shapes; dtypes are kept (the message is float64, exact for
    floats, bools and integers below 2**53).
    """
    if world_size() == 1:
        return list(tensors)
    import torch.distributed as dist

    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    out = [torch.empty_like(flat) for _ in range(world_size())]
    with _collective("all_gather"):
        _wait(dist.all_gather(out, flat, async_op=True))
    result = []
    offset = 0
    for t in tensors:
        n = t.numel()
        pieces = [o[offset : offset + n].view(t.shape).to(t.dtype) for o in out]
        result.append(torch.cat(pieces, dim=dim))
        offset += n
    return result


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (small objects between this job's processes: episode
    lists, env states, normalisation records).

    On gloo, ``torch.distributed.all_gather_object``'s two steps (the sizes, then the padded pickles),
    each completed by :func:`_wait`; pickle is safe here, as it is there: the bytes come from this job's own
    processes, never from a file.
    """
    w = world_size()
    if w == 1:
        return [obj]
    import pickle

    import torch.distributed as dist

    if not _spins():  # NCCL: torch's own, which moves the pickles through the GPU
        out: list[Any] = [None] * w
        with _collective("all_gather_object"):
            dist.all_gather_object(out, obj)
        return out
    data = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.int64)
    sizes = [torch.empty_like(size) for _ in range(w)]
    with _collective("all_gather_object"):
        _wait(dist.all_gather(sizes, size, async_op=True))
        longest = max(int(n) for n in sizes)
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: data.numel()] = data
        out = [torch.empty_like(padded) for _ in range(w)]
        _wait(dist.all_gather(out, padded, async_op=True))
    return [pickle.loads(o[: int(n)].numpy().tobytes()) for o, n in zip(out, sizes, strict=True)]


def all_gather_log(tensor: Tensor) -> Tensor:
    """``(W, *shape)``: every process's ``tensor`` (the same shape everywhere), in rank order.

    Bruck et al. (1997)'s all-gather: ``ceil(log2 W)`` rounds, in round ``j`` each process sends what it
    holds (at most ``2**j`` blocks) to rank ``r - 2**j`` and receives as much from rank ``r + 2**j``,
    over ``torch.distributed`` point-to-point messages. For small messages (an ES generation's losses)
    the cost is latency, so ``log2 W`` rounds instead of a ring's ``W - 1`` steps (gloo's all-gather)
    is what lets hundreds of processes exchange them (README, "Scaling out").
    """
    w = world_size()
    if w == 1:
        return tensor.unsqueeze(0)
    import torch.distributed as dist

    r = rank()
    held = tensor.detach().contiguous().unsqueeze(0)  # blocks of ranks r, r+1, ... (mod W)
    distance = 1
    with _collective("all_gather"):
        while distance < w:
            send = held[: min(distance, w - distance)].contiguous()
            received = torch.empty_like(send)
            # post the send, block on the receive (every process's send is already posted), then
            # complete the send: measured here, a tighter tail than batch_isend_irecv
            request = dist.isend(send, (r - distance) % w)
            dist.recv(received, (r + distance) % w)  # gloo's irecv completes only in wait(): no polling
            request.wait()
            held = torch.cat([held, received])
            distance *= 2
    return held.roll(r, dims=0)  # row j held rank (r + j) % W's block


def gather_losses(mine: Tensor, total: int) -> Tensor:
    """Every process's losses ``(total,)``, in rank order, from this process's :func:`shard` of them."""
    mine = torch.as_tensor(mine).reshape(-1)
    if world_size() == 1:
        return mine
    sizes = [shard(total, r).stop - shard(total, r).start for r in range(world_size())]
    if mine.numel() != sizes[rank()]:
        raise ValueError(f"losses: this process's share of {total} is {sizes[rank()]}, got {mine.numel()}")
    padded = torch.zeros(max(sizes), dtype=torch.float64)
    padded[: len(mine)] = mine.detach().to(torch.float64)  # exact for float32 and float64 losses
    gathered = all_gather_log(padded)
    return torch.cat([gathered[r, : sizes[r]] for r in range(world_size())]).to(mine.dtype)


def broadcast(tensor: Tensor, src: int) -> Tensor:
    """``tensor`` as held by process ``src``, on every process (a copy; ``tensor`` gives the shape)."""
    if world_size() == 1:
        return tensor
    import torch.distributed as dist

    out = tensor.detach().clone().contiguous()
    with _collective("broadcast"):
        _wait(dist.broadcast(out, src, async_op=True))
    return out


def evaluate_population(f: Callable[[Tensor], Tensor], X: Tensor) -> Tensor:
    """``f(X)`` for a population ``(P, D)``, each process evaluating its :func:`shard` of the rows.

    Every process holds the whole population (seed-addressed noise makes it the same everywhere) and
    gets back every loss ``(P,)``: the only thing that crosses the network is ``P`` numbers. (With
    ``es.ask(rows=shard(P))`` each process builds only its own rows; then :func:`gather_losses`.)
    """
    if world_size() == 1:
        return f(X)
    mine = torch.as_tensor(f(X[shard(X.shape[0])]), dtype=X.dtype)
    return gather_losses(mine, X.shape[0])


@dataclass(frozen=True)
class ShardedGenerator:
    """Draws that are this process's rows of one draw made for all processes.

    A draw of shape ``(B, ...)`` returns rows ``[rank*B, (rank+1)*B)`` of the ``(world*B, ...)`` draw
    that one process holding every process's rows would make with ``generator``; so ``W`` processes
    with ``B`` envs each sample exactly the actions of one process with ``W*B`` envs. The generator
    advances identically on every process (its state is the same everywhere and in checkpoints).
    """

    generator: torch.Generator
    index: int
    count: int

    def rows(
        self, draw: Callable[[tuple[int, ...], torch.Generator], Tensor], shape: Sequence[int]
    ) -> Tensor:
        b = shape[0]
        full = draw((b * self.count, *shape[1:]), self.generator)
        return full[self.index * b : (self.index + 1) * b]


def draw(
    sample: Callable[[tuple[int, ...], torch.Generator | None], Tensor],
    shape: Sequence[int],
    generator: torch.Generator | ShardedGenerator | None,
) -> Tensor:
    """``sample(shape, generator)``, or this process's rows of it for a :class:`ShardedGenerator`."""
    if isinstance(generator, ShardedGenerator):
        return generator.rows(sample, tuple(shape))
    return sample(tuple(shape), generator)
