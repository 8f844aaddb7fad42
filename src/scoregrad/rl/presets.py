"""Per-environment tuned settings: a table the user can read.

``PRESETS[env_id][algo]`` holds overrides of the algorithm's config defaults; ``rl.train`` applies
them unless ``preset=False``, and explicit keyword arguments win over them. Budgets are the step
counts the benchmarks in ``benchmarks/`` use. A preset stays only while it reaches its env's target on
every seed tried (README, "Configuration, defaults and presets"), with one exception: CartPole-v1 PPO,
no setting of which has solved every seed here. It was 12/13 seeds at 100k steps with
``learning_rate=1e-2`` (seed 13 ended at 275) and 29/29 with ``2e-2`` on the AMD VM of 2026-11-25, but
57/60 on the Intel VM of 2026-12-08 (seeds 5, 7 and 44 collapse to 229-265), where float-level
differences move the seeds; with ``clip_coef=0.1, gae_lambda=0.95`` (it was 0.2 and 0.9) it is 58/60
there, the two others ending just short at 471 and 472 (``benchmarks/rl_seeds.py --seeds 0 60``);
five variants tried on the same seeds (learning rate 3e-2, 8 epochs, an entropy bonus, gamma 0.99, 64
envs) solved 9 to 58 of them (``benchmarks/results/rl_seeds_sweep.md``).
LunarLander-v3's PPO preset was removed: at 1M steps it ended below 200 on every seed tried (72, 111,
90 on seeds 0, 3, 4; 174, 146, 129 on seeds 0-2 in an earlier session), while the defaults for its
spaces reach 282, 230, 283, 256 and 281 (seeds 0-4). HalfCheetah-v5's first preset (1 env x 2048
steps, otherwise the Box defaults) was removed too: seed 0 ended at 1811 (target 3000; 3702 in an
earlier session), the defaults at 1741 in half the time.
Its preset now is rl-baselines3-zoo's tuned PPO (hyperparams/ppo.yml, HalfCheetah-v3), translated: 4851,
5035 and 5840 on seeds 0-2 at 1M steps (``benchmarks/rl_suite.py``), at about 2.6x the defaults' CPU time
(20 epochs of 64-transition minibatches of a 256x256 network).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "BUDGETS", "preset_for"]

# fmt: off
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "CartPole-v1": {
        "ppo": dict(num_envs=32, num_steps=64, learning_rate=2e-2, update_epochs=4, num_minibatches=2,
                    gae_lambda=0.95, gamma=0.98, ent_coef=0.0, clip_coef=0.1, max_grad_norm=0.5),
        "a2c": dict(num_envs=16, num_steps=16, learning_rate=2e-3, gae_lambda=0.95, norm_adv=True),
        "reinforce": dict(num_envs=16, num_steps=128, learning_rate=1e-2, baseline="value"),
    },
    "Acrobot-v1": {
        "ppo": dict(num_envs=16, num_steps=64, learning_rate=2.5e-3, update_epochs=4, num_minibatches=2,
                    gae_lambda=0.9, gamma=0.99, norm_obs=True),
    },
    "Pendulum-v1": {
        "ppo": dict(num_envs=16, num_steps=256, learning_rate=1e-3, update_epochs=10, num_minibatches=32,
                    gae_lambda=0.95, gamma=0.9, clip_coef=0.2, norm_obs=True, norm_reward=True,
                    log_std_init=0.0, hidden_sizes=(64, 64)),
    },
    # rl-baselines3-zoo's tuned PPO for HalfCheetah (hyperparams/ppo.yml), translated: batch 64 of
    # 512 steps -> 8 minibatches; orthogonal init as everywhere here.
    "HalfCheetah-v5": {
        "ppo": dict(num_envs=1, num_steps=512, num_minibatches=8, update_epochs=20, gamma=0.98,
                    learning_rate=2.0633e-5, anneal_lr=False, ent_coef=0.000401762, clip_coef=0.1,
                    gae_lambda=0.92, max_grad_norm=0.8, vf_coef=0.58096, hidden_sizes=(256, 256),
                    activation="relu", log_std_init=-2.0, norm_obs=True, norm_reward=True,
                    clip_vloss=False),
    },
}
# fmt: on

BUDGETS: dict[str, int] = {
    "CartPole-v1": 100_000,
    "Acrobot-v1": 200_000,
    "Pendulum-v1": 300_000,
    "LunarLander-v3": 1_000_000,
    "HalfCheetah-v5": 1_000_000,
}


def preset_for(env_id: str | None, algo: str) -> dict[str, Any]:
    """The preset overrides for ``(env_id, algo)``, or ``{}``."""
    if env_id is None:
        return {}
    return dict(PRESETS.get(env_id, {}).get(algo, {}))
