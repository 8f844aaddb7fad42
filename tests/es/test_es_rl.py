"""Policy search on Gymnasium: rl.train(env, algo="es") and `scoregrad train ENV --algo es`."""

from __future__ import annotations

import json

import pytest
import torch

import scoregrad as sg
from scoregrad import rl
from scoregrad.cli import main


@pytest.mark.slow
def test_es_solves_cartpole_and_evaluates_with_rl_evaluate():
    agent = rl.train("CartPole-v1", algo="es", total_steps=60_000, seed=0, progress=False)
    mean, _ = rl.evaluate(agent, "CartPole-v1", episodes=10)
    assert mean >= 475, mean
    # The searched centre is the actor's weights.
    torch.testing.assert_close(
        sg.es.flat_parameters(agent.policy.actor), agent.trainer.strategy.mean.detach()
    )


@pytest.mark.parametrize("strategy", ["snes", "pgpe", "xnes"])
def test_every_strategy_runs_a_policy_search(strategy):
    agent = rl.train(
        "CartPole-v1", algo="es", total_steps=3_000, seed=0, progress=False, strategy=strategy,
        popsize=8, weight_decay=0.0, hidden_sizes=(8,), sigma=0.5, shaping="nes",
    )  # fmt: skip
    assert agent.trainer.iteration >= 1 and agent.trainer.rollout.global_step >= 3_000


def test_checkpoint_loads_and_resume_continues_the_same_run(tmp_path):
    options = dict(popsize=10, hidden_sizes=(16,), progress=False)
    straight = rl.train("Pendulum-v1", algo="es", total_steps=8_000, seed=3, **options)
    rl.train("Pendulum-v1", algo="es", total_steps=4_000, seed=3, out=tmp_path / "run", **options)
    loaded = rl.load(tmp_path / "run")
    assert loaded.algo == "es"
    resumed = rl.resume(tmp_path / "run", total_steps=8_000)
    assert resumed.trainer.iteration == straight.trainer.iteration
    for a, b in zip(straight.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (tmp_path / "run" / "episodes.csv").exists()


def test_cli_trains_with_algo_es(tmp_path, capsys):
    argv = [
        "train",
        "CartPole-v1",
        "--algo",
        "es",
        "--steps",
        "2000",
        "--popsize",
        "10",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main([*argv, "--no-progress", "--hidden-sizes", "8"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["algo"] == "es" and "eval_mean_return" in result


def test_es_config_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="weight_decay is an OpenES option"):
        rl.train("CartPole-v1", algo="es", total_steps=100, strategy="snes", progress=False)
    with pytest.raises(ValueError, match="strategy must be one of"):
        rl.train("CartPole-v1", algo="es", total_steps=100, strategy="cma", progress=False)
    with pytest.raises(ValueError, match="popsize must be even"):
        rl.train("CartPole-v1", algo="es", total_steps=100, popsize=9, progress=False)


def test_es_runs_log_their_own_statistics_to_updates_csv(tmp_path):
    rl.train("CartPole-v1", algo="es", total_steps=300, seed=0, popsize=4, out=tmp_path, progress=False)
    header, first = (tmp_path / "updates.csv").read_text().splitlines()[:2]
    assert header == "step,wall_time,steps_per_s,return_mean,return_max,grad_norm,sigma,learning_rate"
    values = dict(zip(header.split(","), first.split(","), strict=True))
    assert float(values["return_max"]) >= float(values["return_mean"]) > 0 and float(values["sigma"]) > 0
