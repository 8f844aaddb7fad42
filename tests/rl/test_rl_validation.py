"""Nothing silent in scoregrad.rl: run directories, resume rules, config ranges, edited checkpoints,
evaluation limits, spaces, custom env ids and env-state restore each fail (or warn) with one clear line."""

from __future__ import annotations

import json
import textwrap

import gymnasium as gym
import pytest

from scoregrad import rl
from scoregrad.cli import main
from scoregrad.rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scoregrad.rl.config import ConfigError
from scoregrad.rl.rollout import get_env_state, make_vector_env, set_env_state
from scoregrad.rl.trainer import EvaluationError, ResumeMismatchError, RunExistsError

SMALL = ["--num-envs", "4", "--num-steps", "32", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cp"
    assert main(["train", "CartPole-v1", "--steps", "256", "--out", str(out), *SMALL]) == 0
    return out


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"scoregrad {command}: error:"), err
    return err[0]


def test_training_into_an_existing_run_is_refused_unless_resume_or_overwrite(run_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", "CartPole-v1", "--steps", "256", "--out", str(run_dir), *SMALL]) == 2
    assert "already holds a run" in _one_error_line(capsys, "train")
    with pytest.raises(RunExistsError, match="resume it"):
        rl.train("CartPole-v1", total_steps=256, out=run_dir, progress=False)
    copy = tmp_path / "copy"
    rl.train("CartPole-v1", total_steps=128, out=copy, progress=False, num_envs=4, num_steps=32)
    (copy / "notes.txt").write_text("mine")
    rl.train(
        "CartPole-v1", total_steps=256, out=copy, overwrite=True, progress=False, num_envs=4, num_steps=32
    )
    _, meta = load_checkpoint(copy)
    assert meta["training"]["global_step"] == 256 and len(rl.checkpoint.checkpoint_versions(copy)) == 1
    assert (copy / "notes.txt").read_text() == "mine"  # overwrite removes the run's files only
    rows = (copy / "updates.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == ["128", "256"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acrobot-v1"], "trained on 'CartPole-v1', not 'Acrobot-v1'"),
        (["CartPole-v1", "--learning-rate", "0.1"], "--learning-rate 0.1 differs"),
        (["CartPole-v1", "--algo", "a2c"], "uses --algo ppo, not a2c"),
        (["CartPole-v1", "--seed", "3"], "uses --seed 0, not 3"),
    ],
)
def test_resume_refuses_a_different_env_or_setting(run_dir, capsys, args, message):
    capsys.readouterr()
    assert main(["train", *args, "--out", str(run_dir), "--resume"]) == 2
    assert message in _one_error_line(capsys, "train")


def test_resume_accepts_the_settings_that_may_change(tmp_path):
    out = tmp_path / "run"
    rl.train("CartPole-v1", total_steps=128, out=out, progress=False, num_envs=4, num_steps=32)
    assert main(["train", "CartPole-v1", "--out", str(out), "--resume", "--steps", "256", "--checkpoint-every", "1",
                 "--no-progress", "--torch-threads", "1", "--num-envs", "4"]) == 0  # fmt: skip
    _, meta = load_checkpoint(out)
    assert meta["config"]["checkpoint_every"] == 1 and meta["training"]["global_step"] == 256
    with pytest.raises(ResumeMismatchError, match="cannot change \\['gamma'\\]"):
        rl.resume(out, gamma=0.5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--activation", "foo"], "argument --activation: invalid choice: 'foo'"),
        (["--on-non-finite", "skp"], "invalid choice: 'skp'"),
        (["--num-envs", "0"], "num_envs must be > 0; got 0"),
        (["--num-steps", "0"], "num_steps must be > 0; got 0"),
        (["--steps", "-5"], "total_steps must be a positive int; got -5"),
        (["--gamma", "1.5"], "gamma must be in [0, 1]; got 1.5"),
        (["--hidden-sizes", "0"], "hidden_sizes must be > 0; got (0,)"),
        (["--learning-rate", "nan"], "learning_rate must be a finite number; got nan"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(tmp_path, capsys, flags, message):
    with (
        pytest.raises(SystemExit)
        if flags[0] in ("--activation", "--on-non-finite")
        else _no_raise() as exit_info
    ):
        code = main(["train", "CartPole-v1", "--out", str(tmp_path / "x"), *flags])
    if exit_info is not None and hasattr(exit_info, "value"):
        code = exit_info.value.code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("scoregrad train: error:") and message in err[0], err
    else:
        assert message in _one_error_line(capsys, "train")
    assert code == 2
    assert not (tmp_path / "x").exists()  # nothing was started


class _no_raise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_config_values_are_checked_in_python_too():
    with pytest.raises(ConfigError, match="gamma must be in"):
        rl.config_for("ppo", gamma=-0.1)
    with pytest.raises(ConfigError, match="activation must be one of"):
        rl.PPOConfig(activation="swish")


def _edit(meta: dict, change) -> dict:
    meta = json.loads(json.dumps(meta))
    change(meta)
    return meta


EDITS = {
    "missing config": (lambda m: m.pop("config"), "lacks the key 'config'"),
    "missing algo": (lambda m: m.pop("algo"), "lacks the key 'algo'"),
    "missing training key": (lambda m: m["training"].pop("global_step"), "lacks the key 'global_step'"),
    "wrong type": (lambda m: m["training"].__setitem__("seed", "0"), "training.seed must be int"),
    "bad config value": (lambda m: m["config"].__setitem__("num_envs", -1), "num_envs must be > 0"),
    "unknown config field": (lambda m: m["config"].__setitem__("bogus", 1), "unknown ppo config option"),
    "unknown algo": (lambda m: m.__setitem__("algo", "dqn"), "algo must be one of"),
    "bad space": (
        lambda m: m["architecture"].__setitem__("action_space", {"type": "Tuple"}),
        "not a valid space",
    ),
    "config not an object": (lambda m: m.__setitem__("config", [1]), "config must be dict"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_edited_checkpoints_give_one_line_and_exit_2(run_dir, tmp_path, capsys, edit):
    tensors, meta = load_checkpoint(run_dir)
    change, message = EDITS[edit]
    edited = _edit(
        {k: v for k, v in meta.items() if k not in ("format", "version", "tensors_sha256")}, change
    )
    save_checkpoint(tmp_path, tensors, edited)
    capsys.readouterr()
    assert main(["eval", str(tmp_path), "--episodes", "1"]) == 2
    assert message in _one_error_line(capsys, "eval")
    assert main(["train", "CartPole-v1", "--out", str(tmp_path), "--resume"]) == 2
    assert message in _one_error_line(capsys, "train")


def test_corrupt_json_and_torn_pairs_give_one_line(run_dir, tmp_path, capsys):
    tensors, meta = load_checkpoint(run_dir)
    version = save_checkpoint(tmp_path, tensors, {k: v for k, v in meta.items() if k != "format"})
    (version / "checkpoint.json").write_text('{"config": ')
    capsys.readouterr()
    assert main(["eval", str(tmp_path)]) == 2
    assert "not valid JSON" in _one_error_line(capsys, "eval")


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one_with_a_warning(tmp_path, capsys):
    out = tmp_path / "run"
    rl.train(
        "CartPole-v1", total_steps=256, out=out, progress=False, num_envs=4, num_steps=32, checkpoint_every=1
    )
    older, newest = rl.checkpoint.checkpoint_versions(out)
    (newest / "model.safetensors").write_bytes(b"torn")
    with pytest.warns(RuntimeWarning, match=f"fell back to {older}"):
        _, meta = load_checkpoint(out)
    assert meta["training"]["global_step"] == 128
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scoregrad eval: warning: newest checkpoint unusable"), err


def test_eval_on_an_env_with_other_spaces_is_refused(run_dir, capsys):
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--env", "Acrobot-v1"]) == 2
    assert "observation space" in _one_error_line(capsys, "eval")


def test_evaluation_that_hits_its_step_cap_says_so(run_dir):
    agent = rl.load(run_dir)
    with pytest.warns(RuntimeWarning, match="3 of 3 evaluation episodes did not end within max_steps=5"):
        mean, _ = rl.evaluate(agent, "CartPole-v1", episodes=3, max_steps=5)
    assert mean == 5.0


class _NaNReward(gym.Wrapper):
    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float("nan"), terminated, truncated, info


def test_non_finite_evaluation_returns_raise(run_dir):
    agent = rl.load(run_dir)
    with pytest.raises(EvaluationError, match="evaluation episode 0 .* non-finite return"):
        rl.evaluate(agent, lambda: _NaNReward(gym.make("CartPole-v1")), episodes=2)


def test_custom_env_ids_with_a_module_prefix_work(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_envs.py").write_text(
        textwrap.dedent(
            """
            import gymnasium as gym
            gym.register("MyCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                         max_episode_steps=200)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = rl.train("my_envs:MyCartPole-v0", total_steps=256, progress=False, num_envs=4, num_steps=32)
    assert agent.trainer.rollout.global_step == 256
    out = tmp_path / "run"
    assert main(["train", "my_envs:MyCartPole-v0", "--steps", "256", "--out", str(out), *SMALL]) == 0
    assert main(["eval", str(out), "--episodes", "2"]) == 0
    assert main(["train", "no_such_module:Env-v0", "--steps", "256", *SMALL]) == 2
    assert "cannot import module 'no_such_module'" in capsys.readouterr().err


def test_env_state_restore_accepts_only_what_it_saved():
    envs = make_vector_env("Pendulum-v1", 2, "sync")
    envs.reset(seed=0)
    state = get_env_state(envs)
    set_env_state(envs, state)  # round trip is fine
    tampered = json.loads(json.dumps(state))
    tampered["envs"][0][-1]["reset"] = 1.0  # would shadow a method; not something it saves
    with pytest.raises(ValueError, match="unexpected \\['reset'\\]"):
        set_env_state(envs, tampered)
    tampered = json.loads(json.dumps(state))
    tampered["envs"][0][-1]["state"] = 3  # an array in the env
    with pytest.raises(ValueError, match="different type or shape"):
        set_env_state(envs, tampered)
    envs.close()


def test_checkpoint_schema_errors_name_the_key():
    with pytest.raises(CheckpointError, match="checkpoint.json lacks the key 'algo'"):
        rl.trainer.check_run_checkpoint({}, {})
