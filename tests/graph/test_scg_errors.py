"""Errors at the door: clear TypeErrors and ValueErrors that name the cost or node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal

import scoregrad as sg


def test_cost_that_is_not_a_tensor_is_a_type_error_naming_it():
    with sg.graph() as g:
        g.sample("z", Bernoulli(logits=torch.zeros(3)))
        with pytest.raises(TypeError, match="cost 'loss' must be a torch.Tensor, got float"):
            g.cost("loss", 1.5)
        with pytest.raises(TypeError, match="got ndarray"):
            g.cost("loss", np.ones(3))


def test_cost_with_wrong_shape_for_its_plate_names_cost_and_node():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(5)), num_samples=4)
        with pytest.raises(
            ValueError, match=r"cost 'summed' has shape \(4,\) but depends on node 'z'.*\(4, 5\)"
        ):
            g.cost("summed", z.sum(-1))
        with pytest.raises(ValueError, match="cost 'averaged' has shape"):
            g.cost("averaged", z.mean(0))
        g.cost("fine", z * 2)


def test_cost_that_depends_on_no_sample_may_have_any_shape():
    with sg.graph() as g:
        g.sample("z", Bernoulli(logits=torch.zeros(5)), num_samples=4)
        g.cost("regulariser", torch.ones(7, 2))
    assert g.surrogate().item() == 14.0


def test_duplicate_names_are_value_errors():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(2)))
        with pytest.raises(ValueError, match="node name 'z' is used twice"):
            g.sample("z", Bernoulli(logits=torch.zeros(2)))
        g.cost("c", z)
        with pytest.raises(ValueError, match="cost name 'c' is used twice"):
            g.cost("c", z)


def test_nan_cost_error_names_the_cost():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(3)))
        with pytest.raises(ValueError, match=r"cost 'log_likelihood' has 1 non-finite value\(s\) of 3"):
            g.cost("log_likelihood", z + torch.tensor([0.0, 0.0, float("nan")]))


def test_capability_and_configuration_errors():
    with sg.graph() as g:
        with pytest.raises(
            TypeError, match="node 'b': estimator 'pathwise' needs rsample; Bernoulli has none"
        ):
            g.sample("b", Bernoulli(logits=torch.zeros(2)), estimator="pathwise")
        with pytest.raises(ValueError, match="baseline= applies to score-function nodes only, not 'arm'"):
            g.sample("c", Bernoulli(logits=torch.zeros(2)), 2, estimator="arm", baseline=0.5)
        with pytest.raises(ValueError, match="must be even"):
            g.sample("d", Bernoulli(logits=torch.zeros(2)), 3, estimator="disarm")
        with pytest.raises(TypeError, match="Bernoulli"):
            g.sample("e", Normal(torch.zeros(2), 1.0), 2, estimator="arm")
        with pytest.raises(ValueError, match="leave num_samples=None"):
            g.sample("f", Bernoulli(logits=torch.zeros(2)), 2, estimator="exact")
        with pytest.raises(ValueError, match="unknown estimator 'reinforce'"):
            g.sample("h", Bernoulli(logits=torch.zeros(2)), estimator="reinforce")
        with pytest.raises(TypeError, match="dist must be a torch.distributions.Distribution"):
            g.sample("i", torch.zeros(2))
        z = g.sample("loo", Bernoulli(logits=torch.zeros(2)), baseline="leave_one_out")
        g.cost("c", z)
    with pytest.raises(ValueError, match="node 'loo': baseline LeaveOneOut\\(\\) uses the other samples"):
        g.surrogate()


def test_graph_must_be_used_inside_with_and_once():
    g = sg.graph()
    with pytest.raises(RuntimeError, match="inside `with sg.graph"):
        g.sample("z", Bernoulli(logits=torch.zeros(2)))
    with g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(2)))
    with pytest.raises(RuntimeError, match="inside `with sg.graph"):
        g.cost("late", z)
    with pytest.raises(ValueError, match="no costs"):
        g.surrogate()
    with pytest.raises(RuntimeError, match="used once"), g:
        pass


def test_core_estimator_objects_configure_nodes():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(3)), 4, estimator=sg.ScoreFunction("leave_one_out"))
        w = g.sample("w", Bernoulli(logits=torch.zeros(3)), estimator=sg.Exact(max_support=4))
        g.cost("c", z)
        g.cost("d", w)
    assert g.surrogate().shape == ()
    assert g.dependencies() == {"c": ["z"], "d": ["w"]}


def test_surrogate_is_built_once_and_closes_the_graph():
    with sg.graph() as g:
        z = g.sample("z", Bernoulli(logits=torch.zeros(3)), 2, baseline=sg.baselines.MovingAverage())
        g.cost("c", z)
        loss = g.surrogate()
        assert g.surrogate() is loss  # a second call does not update the moving average again
        with pytest.raises(RuntimeError, match="after g.surrogate"):
            g.cost("late", z)


def test_relaxation_nodes_return_hard_or_relaxed_samples_with_gradient():
    """Straight-through and Gumbel-softmax nodes are pathwise through a relaxation (biased, for comparison)."""
    logits = torch.zeros(4, requires_grad=True)
    with sg.graph() as g:
        hard = g.sample("hard", Bernoulli(logits=logits), 3, estimator="straight_through")
        soft = g.sample("soft", Bernoulli(logits=logits), 3, estimator=sg.GumbelSoftmax(temperature=0.5))
        g.cost("c", hard * 2.0 + soft)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    assert bool(((soft > 0) & (soft < 1)).all())
    (grad,) = torch.autograd.grad(g.surrogate(), logits)
    assert bool((grad != 0).all())
