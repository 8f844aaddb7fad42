"""Stochastic computation graphs: several stochastic steps, each credited only with what it causes.

A model that samples more than once (a latent code, then a decoder; an attention location at every
step) is written as ordinary PyTorch code inside ``with sg.graph() as g``. ``g.sample`` draws a
stochastic node, ``g.cost`` registers a cost, and ``g.surrogate()`` returns one tensor whose value is
the estimate of the total expected cost and whose gradient is the estimator's::

    with sg.graph() as g:
        z = g.sample("z", Independent(Bernoulli(logits=encoder(x)), 1), num_samples=4,
                     baseline="leave_one_out")
        x_logits = decoder(z)
        g.cost("reconstruction", -Independent(Bernoulli(logits=x_logits), 1).log_prob(x))
        g.cost("kl", q.log_prob(z) - prior.log_prob(z))
    loss = g.surrogate()
    loss.backward()

**Credit assignment** (Schulman, Heess, Weber & Abbeel, 2015, "Gradient Estimation Using Stochastic
Computation Graphs"). A score-function node's log-probability is multiplied only into the costs that
depend on it. The dependence is found from the data flow, not declared: while the ``with`` block
is open a :class:`torch.overrides.TorchFunctionMode` sees every torch operation and tags each output
with the set of stochastic nodes its inputs came from (a bit mask), so integer samples used as
indices, thresholds, ``argmax`` and ``torch.where`` all keep their tags. A sample's tag includes its
ancestors' (found the same way from its distribution's parameters), so dependence is transitive.

**Surrogate** (DiCE: Foerster et al., 2018; baselines: Mao et al., 2019). With ``W_c`` the
score-function ancestors of cost ``c``::

    L = sum_c box(sum_{w in W_c} log p(w)) * c  +  sum_w (1 - box(log p(w))) * box(sum_{u in W_w} log p(u)) * b_w

Its value is the cost estimate, and derivatives of every order are unbiased whenever each baseline
``b_w`` is independent of ``w`` (none, constant, moving average, leave-one-out over the node's own
plate, learned). Exactly enumerated nodes multiply the terms by ``p(x)`` itself (exact at every
order). Nodes whose estimator injects a first-order gradient (ARM, DisARM, RELAX, REBAR, the
unordered-set estimator) give unbiased first derivatives only; see :data:`ESTIMATOR_ORDERS`.

**Layout.** :mod:`.tracking` finds the dependencies, :mod:`.credit` assigns costs to nodes (plates,
reductions, DiCE weighting), :mod:`.node` is the node protocol that each estimator family implements
in its own file (:mod:`.score_function`, :mod:`.vimco`, :mod:`.pathwise`, :mod:`.exact`, :mod:`.arm`,
:mod:`.relax`, :mod:`.unordered_set`), :mod:`.nodes` maps registry names to them, and :mod:`.facade`
is the :class:`StochasticGraph` users see.

**Shapes: plates stack on the left**, like torch's ``sample_shape``. ``num_samples=n`` prepends a
plate of ``n`` to the node's ``batch_shape``; a node sampled from a distribution that depends on an
earlier node inherits that node's plates through its parameters. A cost keeps the
``(num_samples, *batch_shape)`` dimensions of every node it depends on as its trailing dimensions
(sum the event dimensions away, e.g. with ``Independent(..., 1)``). The surrogate averages each cost
over its plates and sums the remaining (batch) dimensions.

**Limits of the dependency tracking.** Dependence that leaves torch is not seen: ``.item()``,
``.tolist()``, NumPy, and Python control flow on sample values (``if z.sum() > 0``). A cost built
that way would miss its score term and the estimate would be biased, so keep sample-dependent
computation in torch ops. In-place writes into a view do not tag its base. Tensors created before
the ``with`` block, and work done after it closes, are not tracked: sample and register costs inside.
"""

from __future__ import annotations

from scoregrad.scg.facade import StochasticGraph, graph
from scoregrad.scg.nodes import ESTIMATOR_ORDERS, NODES
from scoregrad.scg.relax import REBAR, RELAX
from scoregrad.scg.unordered_set import UnorderedSet, unordered_set_weights
from scoregrad.scg.vimco import VIMCO

__all__ = [
    "graph",
    "StochasticGraph",
    "VIMCO",
    "RELAX",
    "REBAR",
    "UnorderedSet",
    "ESTIMATOR_ORDERS",
    "NODES",
    "unordered_set_weights",
]
