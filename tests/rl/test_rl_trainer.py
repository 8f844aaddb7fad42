"""End-to-end: training reaches a return, checkpoints resume bitwise, bad input is refused."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from scoregrad import rl
from scoregrad.rl.checkpoint import latest_checkpoint

CP = "CartPole-v1"


def _weights(agent):
    return {k: v.clone() for k, v in agent.policy.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ppo_preset_solves_cartpole_within_its_budget():
    # the preset is tuned for BUDGETS["CartPole-v1"] = 100k steps (58/60 seeds solved there, README)
    agent = rl.train(CP, algo="ppo", total_steps=100_000, seed=0, progress=False)
    mean, std = rl.evaluate(agent, CP, episodes=20, seed=1000)
    assert mean >= 475, (mean, std)


@pytest.mark.parametrize("algo", ["a2c", "reinforce"])
def test_a2c_and_reinforce_improve_on_cartpole(algo):
    agent = rl.train(CP, algo=algo, total_steps=30_000, seed=0, progress=False)
    mean, _ = rl.evaluate(agent, CP, episodes=10, seed=1000)
    assert mean >= 100  # a random policy scores about 22


@pytest.mark.parametrize("baseline", ["none", "mean", "leave_one_out"])
@pytest.mark.parametrize("weights", ["reward_to_go", "return"])
def test_every_reinforce_variant_trains(baseline, weights):
    agent = rl.train(
        CP, algo="reinforce", total_steps=4096, seed=1, progress=False, baseline=baseline, weights=weights
    )
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())


def test_same_seed_same_weights_and_different_seed_different_weights():
    a = rl.train(CP, total_steps=2048, seed=5, progress=False)
    b = rl.train(CP, total_steps=2048, seed=5, progress=False)
    c = rl.train(CP, total_steps=2048, seed=6, progress=False)
    assert _equal(_weights(a), _weights(b))
    assert not _equal(_weights(a), _weights(c))


def test_save_load_round_trip_acts_identically(tmp_path):
    agent = rl.train(CP, total_steps=2048, seed=0, progress=False, norm_obs=True)
    agent.save(tmp_path / "agent")
    loaded = rl.load(tmp_path / "agent")
    assert _equal(_weights(agent), _weights(loaded))
    obs = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), loaded.act(obs, deterministic=True))
    single = loaded.act(obs[0], deterministic=True)
    assert np.ndim(single) == 0 and gym.spaces.Discrete(2).contains(int(single))
    assert rl.evaluate(agent, CP, 5) == rl.evaluate(loaded, CP, 5)
    meta = json.loads((latest_checkpoint(tmp_path / "agent") / "checkpoint.json").read_text())
    assert meta["obs_normalizer"]["stats"]["count"] > 1000  # normaliser statistics travel with it


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_interrupted_then_resumed_run_is_bitwise_identical(tmp_path, algo):
    kwargs = dict(
        algo=algo, total_steps=8 * 64 * 6, seed=3, progress=False, norm_obs=True, num_envs=8, num_steps=64
    )
    straight = rl.train(CP, **kwargs)

    def interrupt_after_three(trainer):
        if trainer.iteration == 3:
            raise KeyboardInterrupt

    half = rl.train(CP, out=tmp_path, callback=interrupt_after_three, **kwargs)
    assert half.trainer.rollout.global_step == 8 * 64 * 3
    resumed = rl.resume(tmp_path)
    assert resumed.trainer.rollout.global_step == kwargs["total_steps"]
    assert _equal(_weights(straight), _weights(resumed))
    s_opt, r_opt = straight.trainer.optimizer.state_dict(), resumed.trainer.optimizer.state_dict()
    assert all(
        torch.equal(s_opt["state"][i]["exp_avg"], r_opt["state"][i]["exp_avg"]) for i in s_opt["state"]
    )


class _InterruptAt(gym.Wrapper):
    """Raises KeyboardInterrupt at the ``at``-th step counted over every env sharing ``count``."""

    def __init__(self, env, count, at):
        super().__init__(env)
        self.count, self.at = count, at

    def step(self, action):
        self.count["steps"] += 1
        if self.count["steps"] == self.at:
            raise KeyboardInterrupt
        return self.env.step(action)


def test_ctrl_c_mid_rollout_saves_a_checkpoint_that_resumes(tmp_path):
    count = {"steps": 0}

    def factory():  # the 800th env step of the run is in its second iteration (512 steps each)
        return _InterruptAt(gym.make(CP), count, 4 * 200)

    agent = rl.train(
        factory, total_steps=4 * 128 * 2, seed=0, progress=False, out=tmp_path, num_envs=4, num_steps=128
    )
    assert agent.trainer.rollout.global_step == 4 * 128  # state of the last completed iteration
    ck = latest_checkpoint(tmp_path)
    assert (ck / "checkpoint.json").exists() and (ck / "model.safetensors").exists()
    loaded = rl.load(tmp_path)
    assert _equal(_weights(agent), _weights(loaded))
    with pytest.warns(RuntimeWarning, match="not bitwise identical"):  # env wrappers differ now
        resumed = rl.resume(tmp_path, env=lambda: gym.make(CP))
    assert resumed.trainer.rollout.global_step == 4 * 128 * 2


@pytest.mark.parametrize("where", ["before the rows", "after the rows"])
def test_ctrl_c_while_an_iteration_is_logged_loses_no_log_row(tmp_path, monkeypatch, where):
    # An interrupt after the update but before the iteration's rows are written used to save the
    # present state: the resumed run went on after that iteration and its rows were never written.
    from scoregrad.rl.logger import RunLogger

    log, calls = RunLogger.log, {"n": 0}

    def interrupted_log(self, step, *args):
        calls["n"] += 1
        if calls["n"] == 3 and where == "before the rows":
            raise KeyboardInterrupt
        log(self, step, *args)
        if calls["n"] == 3:
            raise KeyboardInterrupt

    kwargs = dict(total_steps=4 * 64 * 6, seed=0, progress=False, num_envs=4, num_steps=64)
    monkeypatch.setattr(RunLogger, "log", interrupted_log)
    half = rl.train(CP, out=tmp_path, **kwargs)
    assert half.trainer.rollout.global_step == 4 * 64 * 2  # the iteration being logged is undone
    monkeypatch.setattr(RunLogger, "log", log)
    rl.resume(tmp_path)
    steps = [int(line.split(",")[0]) for line in (tmp_path / "updates.csv").read_text().splitlines()[1:]]
    assert steps == list(range(4 * 64, 4 * 64 * 6 + 1, 4 * 64))  # one row per iteration, none twice


class _BadReward(gym.Wrapper):
    def __init__(self, env, at, value=float("nan")):
        super().__init__(env)
        self.count, self.at, self.value = 0, at, value

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        self.count += 1
        return obs, (self.value if self.count == self.at else r), te, tr, info


def test_non_finite_reward_stops_training_naming_step_and_env_with_weights_untouched():
    made = []

    def factory():
        made.append(1)
        env = gym.make(CP)
        # call 1 is rl.train reading the spaces (rl.defaults.probe_spaces); call 4 makes env index 2
        return _BadReward(env, 200) if len(made) == 4 else env

    snapshots = []
    trainer_box = {}

    def remember(trainer):
        trainer_box["t"] = trainer
        snapshots.append(_weights(trainer.agent))

    with pytest.raises(rl.NonFiniteError, match=r"non-finite reward at env step \d+ .*env index 2"):
        rl.train(
            factory, total_steps=10_000, seed=0, progress=False, num_envs=4, num_steps=64, callback=remember
        )
    trainer = trainer_box["t"]
    assert all(torch.isfinite(p).all() for p in trainer.agent.policy.parameters())
    assert _equal(snapshots[-1], _weights(trainer.agent))  # no update after the last good iteration


def test_non_finite_reward_can_be_skipped():
    agent = rl.train(
        lambda: _BadReward(gym.make(CP), 50, float("inf")),
        total_steps=2048,
        seed=0,
        progress=False,
        num_envs=2,
        on_non_finite="skip",
    )
    assert all(torch.isfinite(p).all() for p in agent.policy.parameters())


def test_non_finite_gradient_never_reaches_the_weights():
    trainer = rl.Trainer(CP, "ppo", rl.config_for("ppo"), seed=0, total_steps=1024)
    before = _weights(trainer.agent)
    loss = sum(p.sum() for p in trainer.agent.policy.parameters()) * float("nan")
    with pytest.raises(rl.NonFiniteError, match="weights were not changed"):
        trainer.step(loss, {}, trainer.step.share(1))
    assert _equal(before, _weights(trainer.agent))


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(rl.CheckpointError, match="no scoregrad checkpoint"):
        rl.load(tmp_path)
    agent = rl.train(CP, total_steps=1024, seed=0, progress=False)
    ck = agent.save(tmp_path / "a")
    blob = (ck / "model.safetensors").read_bytes()
    (ck / "model.safetensors").write_bytes(blob[:-10] + b"0123456789")
    with pytest.raises(rl.CheckpointError, match="SHA-256"):
        rl.load(tmp_path / "a")
    (ck / "checkpoint.json").write_text('{"hello": 1}')
    with pytest.raises(rl.CheckpointError, match="not a scoregrad.rl checkpoint"):
        rl.load(tmp_path / "a")
    (ck / "checkpoint.json").write_bytes(b"\x00\xff garbage")
    with pytest.raises(rl.CheckpointError, match="JSON"):
        rl.load(tmp_path / "a")


def test_checkpoint_files_are_not_pickles(tmp_path):
    agent = rl.train(CP, total_steps=1024, seed=0, progress=False)
    ck = agent.save(tmp_path)
    from safetensors import safe_open

    with safe_open(str(ck / "model.safetensors"), "pt") as f:
        assert "policy.actor.0.weight" in set(f.keys())
    json.loads((ck / "checkpoint.json").read_text())
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".tmp*"))


def test_env_can_be_an_instance_or_a_factory():
    agent = rl.train(gym.make(CP), total_steps=1024, seed=0, progress=False, num_envs=2)
    assert agent.env_id == CP
    agent = rl.train(lambda: gym.make(CP), total_steps=1024, seed=0, progress=False, num_envs=2)
    assert rl.evaluate(agent, lambda: gym.make(CP), episodes=3)[0] > 0


def test_continuous_actions_with_tanh_squash_and_normalisation_run_on_pendulum():
    agent = rl.train(
        "Pendulum-v1",
        total_steps=2048,
        seed=0,
        progress=False,
        squash=True,
        state_dependent_std=True,
        num_envs=2,
    )
    action = agent.act(np.zeros(3, np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0


class _MaskedChoice(gym.Env):
    """Pick one of 4 actions; only action 2 is ever allowed (mask in info)."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {"action_mask": np.array([False, False, True, False])}

    def step(self, action):
        assert action == 2, f"masked action {action} was taken"
        return (
            np.zeros(2, np.float32),
            1.0,
            True,
            False,
            {"action_mask": np.array([False, False, True, False])},
        )


def test_action_masks_from_info_are_respected():
    rl.train(_MaskedChoice, total_steps=512, seed=0, progress=False, num_envs=2, num_steps=32)


def test_action_mask_callable_is_respected():
    rl.train(
        _MaskedChoice,
        total_steps=512,
        seed=0,
        progress=False,
        num_envs=2,
        num_steps=32,
        action_mask_fn=lambda obs: np.tile([False, False, True, False], (len(obs), 1)),
    )


def test_unsupported_observation_space_fails_with_a_useful_message():
    class DictEnv(gym.Env):
        observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(rl.UnsupportedSpaceError, match="Dict.*FlattenObservation"):
        rl.train(DictEnv, total_steps=64, progress=False, num_envs=1)


def test_run_directory_has_csv_tensorboard_and_png(tmp_path):
    rl.train(CP, total_steps=4096, seed=0, progress=False, out=tmp_path)
    assert (tmp_path / "episodes.csv").read_text().startswith("step,wall_time,return,length")
    assert len((tmp_path / "updates.csv").read_text().splitlines()) > 1
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_unknown_config_option_is_an_error():
    with pytest.raises(TypeError, match="unknown ppo config option"):
        rl.train(CP, total_steps=64, progress=False, num_env=4)
    with pytest.raises(ValueError, match="baseline must be one of"):
        rl.train(CP, algo="reinforce", total_steps=64, progress=False, baseline="median")


def test_user_actor_module_trains_and_reloads_into_the_same_architecture(tmp_path):
    from torch import nn

    def make_policy():
        space = gym.make(CP)
        actor = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
        return rl.ActorCritic(space.observation_space, space.action_space, actor=actor)

    agent = rl.train(CP, total_steps=2048, seed=0, progress=False, policy=make_policy())
    agent.save(tmp_path)
    with pytest.raises(rl.CheckpointError, match="custom actor"):
        rl.load(tmp_path)
    loaded = rl.load(tmp_path, policy=make_policy())
    assert _equal(_weights(agent), _weights(loaded))


def _solve_callback(result):
    def check(trainer):
        if trainer.rollout.global_step - result.get("last", 0) >= 2048:
            result["last"] = trainer.rollout.global_step
            mean, _ = rl.evaluate(trainer.agent, CP, episodes=20, seed=1000)
            if mean >= 475:
                result["solved_at"] = trainer.rollout.global_step
                return True
        return False

    return check


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "a2c", "reinforce"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_algorithm_solves_cartpole_within_its_budget(algo, seed):
    result: dict = {}
    rl.train(CP, algo=algo, total_steps=300_000, seed=seed, progress=False, callback=_solve_callback(result))
    assert "solved_at" in result, f"{algo} seed {seed} did not reach 475 in 300k steps"


@pytest.mark.slow
def test_ppo_improves_on_pendulum():
    agent = rl.train("Pendulum-v1", total_steps=100_000, seed=0, progress=False)
    mean, _ = rl.evaluate(agent, "Pendulum-v1", episodes=10)
    assert mean > -800  # a random policy scores about -1200


def test_target_kl_stops_the_epochs_early():
    common = dict(total_steps=8 * 64 * 2, seed=0, progress=False, num_envs=8, num_steps=64)
    full = rl.train(CP, update_epochs=4, num_minibatches=2, **common)
    early = rl.train(CP, update_epochs=4, num_minibatches=2, target_kl=1e-12, **common)
    assert full.trainer.num_updates == 2 * 4 * 2
    assert early.trainer.num_updates == 2 * 1 * 2  # each rollout stops after its first epoch


def test_reward_normalisation_state_is_checkpointed(tmp_path):
    agent = rl.train(CP, total_steps=2048, seed=0, progress=False, norm_reward=True, out=tmp_path)
    meta = json.loads((latest_checkpoint(tmp_path) / "checkpoint.json").read_text())
    saved = meta["training"]["reward_normalizer"]
    assert saved["stats"]["count"] > 100
    assert saved["stats"]["var"] == agent.trainer.reward_normalizer.stats.var.tolist()


def test_async_vector_env_trains_saves_and_warns_that_resume_restarts_episodes(tmp_path):
    with pytest.warns(RuntimeWarning, match="could not be captured"):
        agent = rl.train(
            CP, total_steps=1024, seed=0, progress=False, num_envs=2, vectorization_mode="async", out=tmp_path
        )
    assert agent.trainer.envs.closed
    assert rl.load(tmp_path).act(np.zeros(4, np.float32), deterministic=True) in (0, 1)


def test_resume_is_bitwise_identical_on_a_sync_vector_env(tmp_path):
    kwargs = dict(total_steps=4 * 64 * 4, seed=2, progress=False, num_envs=4, num_steps=64, norm_reward=True)
    straight = rl.train("Pendulum-v1", **kwargs)

    def stop_after_two(trainer):
        if trainer.iteration == 2:
            raise KeyboardInterrupt

    rl.train("Pendulum-v1", out=tmp_path, callback=stop_after_two, **kwargs)
    resumed = rl.resume(tmp_path)
    assert _equal(_weights(straight), _weights(resumed))


class _MatchTarget(gym.Env):
    """Reward = number of action components equal to a fixed target (one-step episodes)."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self, action_space, target):
        self.action_space = action_space
        self.target = np.asarray(target)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        reward = float(np.sum(np.asarray(action) == self.target))
        return np.zeros(2, np.float32), reward, True, False, {}


@pytest.mark.parametrize(
    "space, target",
    [(gym.spaces.MultiDiscrete([3, 4]), [2, 1]), (gym.spaces.MultiBinary(3), [1, 0, 1])],
)
def test_multidiscrete_and_multibinary_policies_learn_a_bandit(space, target):
    def factory():
        return _MatchTarget(space, target)

    agent = rl.train(
        factory, total_steps=8192, seed=0, progress=False, num_envs=4, num_steps=64, learning_rate=3e-3
    )
    action = agent.act(np.zeros(2, np.float32), deterministic=True)
    assert np.array_equal(np.asarray(action), np.asarray(target))
