"""One iteration of each RL algorithm, run by one process or by torchrun; rank 0 saves to OUT:
``<name>.safetensors`` (the parameters before and after) and ``<name>.json`` (the normalisers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from scoregrad import distributed
from scoregrad.rl.config import config_for
from scoregrad.rl.trainer import Trainer

#: name -> (env, algo, config overrides); 4 envs (sync vector env: one seed per env), 16 steps each.
RUNS = {
    "ppo": ("CartPole-v1", "ppo", {}),
    "a2c": ("CartPole-v1", "a2c", {"norm_adv": True}),
    "reinforce_loo": ("CartPole-v1", "reinforce", {"baseline": "leave_one_out"}),
    "reinforce_value": ("CartPole-v1", "reinforce", {"baseline": "value"}),
    "ppo_normalised": ("Pendulum-v1", "ppo", {"norm_obs": True, "norm_reward": True}),
}


def main(out: Path) -> None:
    torch.set_num_threads(1)
    for name, (env, algo, kw) in RUNS.items():
        config = config_for(
            algo, num_envs=4, num_steps=16, vectorization_mode="sync", progress=False, torch_threads=1, **kw
        )
        trainer = Trainer(env, algo, config, seed=3, total_steps=4 * 16)
        before = {f"before.{k}": v.clone() for k, v in trainer.agent.policy.state_dict().items()}
        agent = trainer.run()
        if distributed.is_main():
            after = {f"after.{k}": v.contiguous() for k, v in agent.policy.state_dict().items()}
            save_file({**before, **after}, str(out / f"{name}.safetensors"))
            norms = {"obs": agent.obs_normalizer, "reward": trainer.reward_normalizer}
            stats = {k: n.stats.state_dict() for k, n in norms.items() if n is not None}
            (out / f"{name}.json").write_text(json.dumps(stats))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
