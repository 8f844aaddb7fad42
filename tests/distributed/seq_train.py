"""A tiny sequence task trained by RLOO, by one process or under torchrun: reward = share of 2s in 4 tokens.

Each process writes OUT/params-<rank>.safetensors; rank 0 writes OUT/history.json and OUT/run/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from scoregrad import distributed, seq
from tests.seq.models import TinyRNNCached


def share_of_twos(prompts, completions: torch.Tensor) -> torch.Tensor:
    return (completions == 2).float().mean(1)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TinyRNNCached(vocab=3, hidden=16)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 3, (2,), generator=g) for _ in range(16)]
    trainer = seq.Trainer(
        model, share_of_twos, prompts,
        seq.SeqConfig(method="rloo", num_samples=4, prompts_per_step=4, max_new_tokens=4, learning_rate=0.01,
                      progress=False, torch_threads=1),
        steps=40, seed=0, out=out / "run",
    )  # fmt: skip
    trainer.run()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"params-{distributed.rank()}.safetensors"))
    if distributed.is_main():
        (out / "history.json").write_text(json.dumps(trainer.history))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
