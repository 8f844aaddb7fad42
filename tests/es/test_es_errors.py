"""Bad input fails at the door with an error that names the argument."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import scoregrad as sg


def test_non_finite_loss_names_the_candidate_index():
    es = sg.es.OpenES(torch.zeros(3), popsize=4, seed=0)
    losses = torch.zeros(4)
    es.ask()
    losses[3] = float("inf")
    with pytest.raises(ValueError, match=r"candidate index \[3\]"):
        es.tell(losses)


def test_all_non_finite_losses_cannot_be_ranked():
    es = sg.es.OpenES(torch.zeros(3), popsize=4, on_non_finite="worst")
    es.ask()
    with pytest.raises(ValueError, match="every candidate"):
        es.tell(torch.full((4,), float("nan")))


def test_wrong_length_losses():
    es = sg.es.SNES(torch.zeros(3), popsize=6)
    es.ask()
    with pytest.raises(ValueError, match=r"losses must have shape \(6,\)"):
        es.tell(torch.zeros(5))


def test_tell_before_ask():
    with pytest.raises(RuntimeError, match="ask"):
        sg.es.SNES(torch.zeros(3)).tell(torch.zeros(7))


def test_odd_popsize_with_antithetic():
    with pytest.raises(ValueError, match="popsize must be even with antithetic"):
        sg.es.OpenES(torch.zeros(3), popsize=5, antithetic=True)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), float("inf")])
def test_sigma_must_be_positive_and_finite(sigma):
    with pytest.raises(ValueError, match="sigma must be"):
        sg.es.SNES(torch.zeros(3), sigma=sigma)


def test_module_without_parameters():
    with pytest.raises(ValueError, match="x0: the module ReLU has no parameters"):
        sg.es.OpenES(nn.ReLU())


@pytest.mark.parametrize(
    ("x0", "error", "match"),
    [
        ([0.0, 1.0], TypeError, "x0 must be a 1-D floating tensor"),
        (torch.zeros(2, 2), ValueError, "x0 must be a non-empty 1-D tensor"),
        (torch.zeros(3, dtype=torch.long), TypeError, "x0 must be a floating tensor"),
    ],
)
def test_bad_x0(x0, error, match):
    with pytest.raises(error, match=match):
        sg.es.OpenES(x0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"popsize": 1}, "popsize must be an integer >= 2"),
        ({"shaping": "softmax"}, "shaping must be one of"),
        ({"on_non_finite": "skip"}, "on_non_finite must be"),
        ({"seed": 1.5}, "seed must be an int"),
        ({"lr": -1.0}, "lr must be > 0"),
        ({"lr": 0.1, "optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}, "pass lr= only with the default"),
        ({"optimizer": lambda p: None}, "optimizer must build a torch.optim.Optimizer"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sg.es.OpenES(torch.zeros(3), **{"popsize": 4, **kwargs})


def test_strategy_specific_arguments():
    with pytest.raises(ValueError, match="weight_decay"):
        sg.es.OpenES(torch.zeros(3), weight_decay=-1)
    with pytest.raises(ValueError, match="lr_sigma"):
        sg.es.SNES(torch.zeros(3), lr_sigma=0)
    with pytest.raises(ValueError, match="rank_one uses the step-size path"):
        sg.es.XNES(torch.zeros(3), sigma_adaptation="natural")
    with pytest.raises(ValueError, match="lr_shape"):
        sg.es.XNES(torch.zeros(3), lr_shape=-1)
    with pytest.raises(ValueError, match="step_ratio"):
        sg.es.PGPE(torch.zeros(3), optimizer=lambda p: torch.optim.SGD(p, lr=1))
    with pytest.raises(ValueError, match="max_sigma_change"):
        sg.es.PGPE(torch.zeros(3), max_sigma_change=0)
    with pytest.raises(ValueError, match="momentum"):
        sg.es.ClipUp([torch.zeros(3, requires_grad=True)], momentum=1.0)


def test_minimize_arguments():
    with pytest.raises(ValueError, match="method must be one of"):
        sg.es.minimize(lambda X: X.sum(-1), torch.zeros(3), method="ga")
    with pytest.raises(ValueError, match="budget must be a positive int"):
        sg.es.minimize(lambda X: X.sum(-1), torch.zeros(3), budget=0)


def test_state_dict_of_another_strategy_is_refused():
    with pytest.raises(ValueError, match="strategy 'snes'"):
        sg.es.OpenES(torch.zeros(3), popsize=4).load_state_dict(sg.es.SNES(torch.zeros(3)).state_dict())


def test_snes_two_point_adaptation_needs_random_candidates_beside_its_pair():
    assert sg.es.SNES(torch.zeros(3), popsize=2).sigma_adaptation == "csa"  # the default falls back
    assert sg.es.SNES(torch.zeros(3), popsize=4).sigma_adaptation == "tpa"
    with pytest.raises(ValueError, match="sigma_adaptation='tpa' needs popsize >= 4"):
        sg.es.SNES(torch.zeros(3), popsize=2, sigma_adaptation="tpa")
    with pytest.raises(ValueError, match="sigma_adaptation must be"):
        sg.es.SNES(torch.zeros(3), sigma_adaptation="tpa2")
