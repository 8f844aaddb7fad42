"""The scoregrad command line: train, eval, plot, resume, and config fields as options."""

from __future__ import annotations

import json

import pytest

from scoregrad.cli import build_parser, main
from scoregrad.rl.checkpoint import latest_checkpoint


def test_train_eval_plot_round_trip(tmp_path, capsys):
    out = tmp_path / "cp"
    args = ["train", "CartPole-v1", "--algo", "ppo", "--steps", "2048", "--seed", "0", "--out", str(out)]
    assert main([*args, "--num-envs", "4", "--no-progress"]) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert trained["algo"] == "ppo"
    meta = json.loads((latest_checkpoint(out) / "checkpoint.json").read_text())
    assert meta["config"]["num_envs"] == 4 and meta["training"]["global_step"] == 2048
    assert main(["eval", str(out), "--episodes", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 3 and result["mean_return"] > 0
    (out / "learning_curve.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "learning_curve.png").exists()


def test_resume_continues_to_more_steps(tmp_path):
    out = tmp_path / "run"
    main(["train", "CartPole-v1", "--steps", "1024", "--out", str(out), "--num-envs", "4", "--no-progress"])
    main(["train", "CartPole-v1", "--out", str(out), "--resume", "--steps", "2048"])
    meta = json.loads((latest_checkpoint(out) / "checkpoint.json").read_text())
    assert meta["training"]["global_step"] == 2048


def test_every_config_field_is_an_option_with_help():
    parser = build_parser("reinforce")
    train = parser._subparsers._group_actions[0].choices["train"]
    options = {a.dest: a for a in train._actions}
    for name in ("num_envs", "learning_rate", "baseline", "weights", "norm_obs", "hidden_sizes"):
        assert name in options and options[name].help
    args = parser.parse_args(["train", "CartPole-v1", "--algo", "reinforce", "--baseline", "leave_one_out"])
    assert args.baseline == "leave_one_out"


def test_bad_algo_is_rejected():
    with pytest.raises(SystemExit):
        main(["train", "CartPole-v1", "--algo", "dqn"])


def test_ctrl_c_during_cli_training_saves_and_exits_130(tmp_path, monkeypatch):
    import scoregrad.rl.trainer as trainer_mod

    real = trainer_mod.Trainer._update
    calls = {"n": 0}

    def interrupting_update(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(trainer_mod.Trainer, "_update", interrupting_update)
    out = tmp_path / "run"
    code = main(["train", "CartPole-v1", "--steps", "100000", "--out", str(out), "--no-progress"])
    assert code == 130
    meta = json.loads((latest_checkpoint(out) / "checkpoint.json").read_text())
    assert meta["training"]["iteration"] == 1


def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys):
    run = tmp_path / "cp"
    assert main(["train", "CartPole-v1", "--steps", "2048", "--seed", "0", "--out", str(run)]) == 0
    (latest_checkpoint(run) / "model.safetensors").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    assert "scoregrad eval: error:" in capsys.readouterr().err
    assert main(["train", "NoSuchEnv-v0", "--steps", "100"]) == 2
    assert "NoSuchEnv" in capsys.readouterr().err


def test_options_come_from_the_config_dataclasses_with_each_algorithms_default():
    from scoregrad import cli
    from scoregrad.rl.config import options

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    by_dest = {a.dest: a for a in train._actions}
    for option in options():
        assert option.name in by_dest and option.help in by_dest[option.name].help
    assert "ppo: 128, a2c: 5, reinforce: 512" in by_dest["num_steps"].help
    assert by_dest["baseline"].choices == ("none", "mean", "leave_one_out", "value")
    assert not hasattr(cli, "_algo_from_argv")  # one parse, no hand scan of argv


def test_an_option_of_another_algorithm_is_a_one_line_usage_error(capsys):
    assert main(["train", "CartPole-v1", "--baseline", "mean", "--steps", "64"]) == 2
    assert "--baseline: not an option of --algo ppo" in capsys.readouterr().err
