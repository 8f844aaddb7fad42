"""Adaptive defaults (rl/defaults.py) and keep_best (periodic evaluation, RUN/best)."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest

from scoregrad import rl
from scoregrad.rl.config import ConfigError
from scoregrad.rl.defaults import defaults_for, settings_for, space_defaults
from scoregrad.rl.presets import PRESETS

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
UNIT_OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
DISCRETE = gym.spaces.Discrete(3)


def test_box_actions_get_continuous_control_ppo_defaults():
    d = space_defaults(BOX_OBS, BOX_ACT, "ppo")
    assert d == dict(
        num_envs=8, num_steps=256, update_epochs=10, num_minibatches=32, norm_reward=True, norm_obs=True
    )
    # 2048 transitions per update in minibatches of 64
    assert (
        d["num_envs"] * d["num_steps"] == 2048
        and d["num_envs"] * d["num_steps"] // d["num_minibatches"] == 64
    )


def test_discrete_actions_get_the_same_batch_shape_and_reward_scaling():
    d = space_defaults(BOX_OBS, DISCRETE, "ppo")
    assert d == dict(
        num_envs=8, num_steps=256, update_epochs=10, num_minibatches=32, norm_reward=True, norm_obs=True
    )


@pytest.mark.parametrize("obs", [UNIT_OBS, gym.spaces.Discrete(5), gym.spaces.Box(0, 255, (4,), np.uint8)])
def test_observations_already_in_unit_scale_or_not_float_are_not_normalised(obs):
    assert "norm_obs" not in space_defaults(obs, DISCRETE, "ppo")
    assert "norm_obs" not in space_defaults(obs, BOX_ACT, "ppo")


def test_wide_bounded_observations_are_normalised_for_ppo_only():
    wide = gym.spaces.Box(-28.0, 28.0, (6,), np.float32)  # Acrobot's velocities
    assert space_defaults(wide, DISCRETE, "ppo")["norm_obs"] is True
    for algo in ("a2c", "reinforce"):
        assert "norm_obs" not in space_defaults(wide, DISCRETE, algo)


def test_a2c_gets_short_rollouts_and_reinforce_its_dataclass():
    a2c = dict(num_steps=16, learning_rate=2e-3, gae_lambda=0.95, norm_adv=True)
    assert space_defaults(BOX_OBS, DISCRETE, "a2c") == a2c
    assert space_defaults(BOX_OBS, BOX_ACT, "a2c") == {**a2c, "norm_reward": True}
    assert space_defaults(BOX_OBS, DISCRETE, "reinforce") == {}
    assert space_defaults(BOX_OBS, BOX_ACT, "reinforce") == {"norm_reward": True}


def test_es_has_no_adaptive_defaults():
    assert space_defaults(BOX_OBS, BOX_ACT, "es") == {} and defaults_for("Pendulum-v1", "es") == {}


def test_defaults_for_reads_ids_factories_envs_and_vector_envs():
    expected = space_defaults(
        gym.spaces.Box(-8.0, 8.0, (3,), np.float32), gym.spaces.Box(-2.0, 2.0, (1,), np.float32), "ppo"
    )
    assert defaults_for("Pendulum-v1", "ppo") == expected
    assert defaults_for(lambda: gym.make("Pendulum-v1"), "ppo") == expected
    env = gym.make("Pendulum-v1")
    assert defaults_for(env, "ppo") == expected
    vec = gym.make_vec("Pendulum-v1", num_envs=2)
    assert defaults_for(vec, "ppo") == expected
    env.close()
    vec.close()


def test_a_preset_replaces_the_defaults_and_keywords_win():
    assert settings_for("CartPole-v1", "ppo") == PRESETS["CartPole-v1"]["ppo"]
    assert settings_for("CartPole-v1", "ppo", preset=False) == defaults_for("CartPole-v1", "ppo")
    agent = rl.train("CartPole-v1", "ppo", total_steps=2048, progress=False, preset=False, num_minibatches=4)
    cfg = agent.config
    assert (cfg.num_envs, cfg.num_steps, cfg.update_epochs, cfg.num_minibatches, cfg.norm_obs) == (
        8,
        256,
        10,
        4,
        True,
    )
    agent = rl.train("CartPole-v1", "ppo", total_steps=2048, progress=False)
    assert agent.config.num_envs == PRESETS["CartPole-v1"]["ppo"]["num_envs"] and not agent.config.norm_obs


# ---------------------------------------------------------------------------- keep_best
def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_keep_best_saves_the_best_evaluated_policy(tmp_path):
    out = tmp_path / "run"
    agent = rl.train(
        "CartPole-v1", "ppo", total_steps=16_384, seed=3, progress=False, out=out, keep_best=True, eval_every=2048,
        eval_episodes=5,
    )  # fmt: skip
    rows = _rows(out / "evaluations.csv")
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(2048, 16_384 + 1, 2048))  # every eval_every steps, the final policy included
    means = [float(r["mean_return"]) for r in rows]
    best = max(means)
    assert [float(r["best_return"]) for r in rows] == list(np.maximum.accumulate(means))
    tr = agent.trainer
    assert tr.best_return == best and tr.best_step == steps[means.index(best)]
    # RUN/best is an agent: evaluated the same way, it scores exactly the recorded best
    loaded = rl.load(out / "best")
    assert rl.evaluate(loaded, "CartPole-v1", episodes=5, seed=3 + 10**6)[0] == best
    assert rl.evaluate(agent.best, "CartPole-v1", episodes=5, seed=3 + 10**6)[0] == best
    assert agent.best is not agent and agent.best.policy is not agent.policy
    # the final model is saved as well, and it is the final policy (not the best)
    final = rl.load(out)
    assert rl.evaluate(final, "CartPole-v1", episodes=5, seed=3 + 10**6)[0] == means[-1]


def test_keep_best_survives_a_resume(tmp_path):
    out = tmp_path / "run"
    kwargs = dict(seed=1, progress=False, keep_best=True, eval_every=2048, eval_episodes=3)
    whole = rl.train("CartPole-v1", "ppo", total_steps=12_288, out=tmp_path / "whole", **kwargs)
    rl.train("CartPole-v1", "ppo", total_steps=12_288, out=out, callback=lambda t: t.iteration == 3, **kwargs)
    resumed = rl.resume(out)
    assert resumed.trainer.best_return == whole.trainer.best_return
    assert resumed.trainer.best_step == whole.trainer.best_step
    assert _rows(out / "evaluations.csv") == [
        {**r, "wall_time": s["wall_time"]}
        for r, s in zip(
            _rows(tmp_path / "whole" / "evaluations.csv"), _rows(out / "evaluations.csv"), strict=True
        )
    ]


def test_eval_episodes_without_evaluation_is_refused():
    with pytest.raises(ConfigError, match="eval_episodes"):
        rl.train("CartPole-v1", "ppo", total_steps=64, progress=False, eval_episodes=3)


def test_keep_best_needs_an_env_it_can_copy():
    vec = gym.make_vec("CartPole-v1", num_envs=2)
    with pytest.raises(ConfigError, match="keep_best"):
        rl.train(vec, "ppo", total_steps=64, progress=False, preset=False, num_envs=2, keep_best=True)
    vec.close()


def test_continuous_control_learns_with_the_defaults_alone():
    """preset=False gives Pendulum-v1 the Box defaults (its preset is not used); they must learn the
    swing-up (random policy about -1200; solved about -150) in 100k steps (about a minute on one core)."""
    agent = rl.train("Pendulum-v1", "ppo", total_steps=100_000, seed=0, progress=False, preset=False)
    assert agent.config.norm_reward and agent.config.norm_obs and agent.config.update_epochs == 10
    mean, _ = rl.evaluate(agent, "Pendulum-v1", episodes=10, seed=1000)
    assert mean > -400, mean


def test_cli_keep_best_writes_an_agent_that_eval_reads(tmp_path, capsys):
    from scoregrad.cli import main

    out = tmp_path / "run"
    argv = [
        "train",
        "CartPole-v1",
        "--steps",
        "4096",
        "--out",
        str(out),
        "--keep-best",
        "--eval-every",
        "2048",
    ]
    assert main([*argv, "--eval-episodes", "3", "--no-progress"]) == 0
    assert (out / "best").is_dir() and len(_rows(out / "evaluations.csv")) == 2
    assert main(["eval", str(out / "best"), "--episodes", "3"]) == 0
    assert (
        main(["train", "CartPole-v1", "--steps", "64", "--out", str(tmp_path / "r2"), "--eval-episodes", "3"])
        == 2
    )
    assert "eval_episodes" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env_id", "algo"), [(e, a) for e, by_algo in PRESETS.items() for a in by_algo], ids=lambda x: str(x)
)
def test_every_preset_is_a_valid_config(env_id, algo):
    from scoregrad.rl.config import config_for

    config = config_for(algo, **PRESETS[env_id][algo])  # unknown fields or bad values raise
    for name, value in PRESETS[env_id][algo].items():
        assert getattr(config, name) == value
