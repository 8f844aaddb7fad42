"""Under torchrun with W processes: Bruck's all-gather and the ES losses exchange against what each
process sent (W = 3: not a power of two, so the last round sends fewer blocks), the object gather with
pickles of different lengths, and collectives that wait longer than the spin before blocking; rank 0
writes OUT/ok."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from scoregrad import distributed


def main(out: Path) -> None:
    w = distributed.init()
    r = distributed.rank()
    mine = torch.arange(5, dtype=torch.float64) + 10 * r
    gathered = distributed.all_gather_log(mine)
    expected = torch.stack([torch.arange(5, dtype=torch.float64) + 10 * q for q in range(w)])
    assert torch.equal(gathered, expected), (r, gathered)
    # 7 losses over 3 processes: shares of 2, 2 and 3; float32 losses come back exactly
    total = 7
    own = distributed.shard(total)
    values = torch.linspace(-1, 1, total, dtype=torch.float32) / 3
    losses = distributed.gather_losses(values[own], total)
    assert losses.dtype == torch.float32 and torch.equal(losses, values), (r, losses)
    best = distributed.broadcast(torch.full((3,), float(r)), src=w - 1)
    assert torch.equal(best, torch.full((3,), float(w - 1))), (r, best)
    # objects of different pickled lengths on each process (the gather pads to the longest)
    objects = distributed.all_gather_objects({"rank": r, "episodes": [float(q) for q in range(3 * r)]})
    assert objects == [{"rank": q, "episodes": [float(x) for x in range(3 * q)]} for q in range(w)], objects
    # the last process arrives after the others' spin has ended, so they block: the result is the same
    if r == w - 1:
        time.sleep(3 * distributed.SPIN_SECONDS)
    summed = [torch.full((4,), float(r + 1))]
    distributed.all_reduce_sum(summed)
    assert torch.equal(summed[0], torch.full((4,), float(w * (w + 1) // 2))), (r, summed)
    distributed.barrier()
    if distributed.is_main():
        (out / "ok").write_text(str(w))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
