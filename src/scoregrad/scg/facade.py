"""The :class:`StochasticGraph` facade: ``with sg.graph() as g``, ``g.sample``, ``g.cost``, ``g.surrogate``.

It records nodes and costs while dependency tracking is on (:mod:`.tracking`), and builds the
surrogate from the node protocol (:mod:`.node`) and the credit assignment (:mod:`.credit`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from scoregrad.baselines import broadcasts_to
from scoregrad.estimators.base import check_finite
from scoregrad.scg.credit import Credit
from scoregrad.scg.node import Node, Term, bits, shape_error
from scoregrad.scg.nodes import resolve
from scoregrad.scg.score_function import ScoreFunctionNode
from scoregrad.scg.tracking import DependencyTracker, distribution_mask

__all__ = ["StochasticGraph", "graph"]


class StochasticGraph:
    """A stochastic computation graph, built by ordinary model code inside ``with``.

    Use :func:`graph` to create one. Methods: :meth:`sample`, :meth:`cost`, :meth:`surrogate`, and
    :meth:`dependencies` to inspect the credit assignment that was found.

    Args:
        credit_assignment: ``False`` multiplies every cost by every score-function node's
            log-probability (the plain estimator with the total cost): unbiased but noisier. For
            comparison only.
    """

    def __init__(self, credit_assignment: bool = True) -> None:
        self.credit_assignment = credit_assignment
        self._tracker = DependencyTracker()
        self._nodes: dict[str, Node] = {}
        self._costs: dict[str, Term] = {}
        self._open = False
        self._used = False
        self._surrogate: Tensor | None = None

    # -- context manager ------------------------------------------------------------------------

    def __enter__(self) -> StochasticGraph:
        if self._used:
            raise RuntimeError(
                "a stochastic graph is used once: create a new one with sg.graph() for each step"
            )
        self._used = self._open = True
        self._tracker.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._open = False
        self._tracker.__exit__(*exc)

    def _check_open(self, what: str) -> None:
        if self._surrogate is not None:
            raise RuntimeError(
                f"g.{what} after g.surrogate(): the surrogate is built from what was registered before"
            )
        if not self._open:
            raise RuntimeError(
                f"g.{what} must be called inside `with sg.graph() as g:` (dependencies are tracked only there)"
            )

    # -- sampling -------------------------------------------------------------------------------

    def sample(
        self,
        name: str,
        dist: Distribution,
        num_samples: int | None = None,
        *,
        estimator: Any = None,
        baseline: Any = None,
        context: Any = None,
    ) -> Tensor:
        """Draw a stochastic node.

        Args:
            name: unique node name.
            dist: any ``torch.distributions.Distribution``; its parameters may depend on earlier
                samples (that is how the graph's edges are found).
            num_samples: size of a new plate prepended to ``dist.batch_shape`` (``None``: no plate,
                one sample per batch element). Counts function evaluations for ``"arm"`` and
                ``"disarm"`` (pairs, so even) and distinct categories for ``"unordered_set"``.
            estimator: ``None`` (pathwise when ``dist.has_rsample``, else score function), a name
                (``"score_function"``, ``"pathwise"``, ``"exact"``, ``"arm"``, ``"disarm"``,
                ``"vimco"``, ``"unordered_set"``, ``"straight_through"``, ``"gumbel_softmax"``), a
                core estimator object (``sg.ScoreFunction(baseline)``, ``sg.Exact(max_support)``,
                ``sg.StraightThrough(temperature)``, ...) or :class:`VIMCO`, :class:`RELAX`,
                :class:`REBAR`, :class:`UnorderedSet`.
            baseline: for score-function nodes: ``"leave_one_out"`` (over this node's plate), a number,
                an ``nn.Module``/callable (learned, NVIL) or a baseline object such as a
                ``sg.baselines.MovingAverage()`` kept across graphs.
            context: passed to a learned baseline (``model(context)``) or a RELAX control.

        Returns:
            The samples, ``(num_samples, *batch_shape, *event_shape)`` (no leading plate when
            ``num_samples`` is None; the support points for ``"exact"``). Score-function samples
            carry no gradient; pathwise and relaxed ones do.
        """
        self._check_open("sample")
        if not isinstance(name, str) or not name:
            raise TypeError(f"node name must be a non-empty str, got {name!r}")
        if name in self._nodes:
            raise ValueError(f"node name {name!r} is used twice in this graph; node names must be unique")
        if not isinstance(dist, Distribution):
            raise TypeError(
                f"node {name!r}: dist must be a torch.distributions.Distribution, got {type(dist).__name__}"
            )
        if num_samples is not None and (
            isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1
        ):
            raise ValueError(
                f"node {name!r}: num_samples must be a positive int or None, got {num_samples!r}"
            )
        node_class, config, resolved_baseline = resolve(name, dist, estimator, baseline)
        ancestors = distribution_mask(self._tracker, dist)
        extra = {"baseline": resolved_baseline} if issubclass(node_class, ScoreFunctionNode) else {}
        node = node_class(name, len(self._nodes), dist, ancestors, config, context, **extra)
        node.draw(num_samples)
        self._check_batch_shape(node)
        self._nodes[name] = node
        self._tracker.mark(node.value, node.bit | ancestors)
        return node.value

    def _check_batch_shape(self, node: Node) -> None:
        for index in bits(node.ancestors):
            parent = self._node_by_index(index)
            if not broadcasts_to(tuple(parent.shape), tuple(node.shape)):
                raise ValueError(
                    shape_error(f"node {node.name!r}'s (plate, *batch_shape)", node.shape, parent)
                )

    def _node_by_index(self, index: int) -> Node:
        return list(self._nodes.values())[index]

    # -- costs ----------------------------------------------------------------------------------

    def cost(self, name: str, value: Tensor) -> None:
        """Register a cost (to be minimised in expectation).

        Args:
            name: unique cost name (used in error messages and :meth:`dependencies`).
            value: a tensor keeping the ``(plate, *batch_shape)`` dimensions of every node it depends
                on as its trailing dimensions. A cost that depends on no sample may have any shape.

        Raises:
            TypeError: ``value`` is not a tensor.
            ValueError: duplicate name, wrong shape for its plates, or NaN/infinite values.
        """
        self._check_open("cost")
        if name in self._costs:
            raise ValueError(f"cost name {name!r} is used twice in this graph; cost names must be unique")
        if not isinstance(value, Tensor):
            raise TypeError(f"cost {name!r} must be a torch.Tensor, got {type(value).__name__}")
        mask = self._tracker.mask_of(value)
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        check_finite(value, f"cost {name!r} has")
        for index in bits(mask):
            node = self._node_by_index(index)
            if not broadcasts_to(tuple(node.shape), tuple(value.shape)):
                raise ValueError(shape_error(f"cost {name!r}", value.shape, node))
        self._costs[name] = Term(name, value, mask)

    def dependencies(self) -> dict[str, list[str]]:
        """For each cost, the stochastic nodes it was found to depend on (ancestors included)."""
        nodes = list(self._nodes.values())
        return {name: [nodes[i].name for i in bits(term.mask)] for name, term in self._costs.items()}

    # -- the surrogate --------------------------------------------------------------------------

    def surrogate(self) -> Tensor:
        """The DiCE surrogate: value = estimate of the total expected cost, gradient = the estimator.

        Sums over costs; each cost is averaged over its plates and summed over batch dimensions.
        Learned baselines' regression losses and RELAX/REBAR variance losses are attached with zero
        forward value, so one ``backward()`` trains them too.
        """
        if self._surrogate is not None:  # built once: baselines update their state when called
            return self._surrogate
        if not self._costs:
            raise ValueError("the graph has no costs: register at least one with g.cost(name, tensor)")
        nodes = list(self._nodes.values())
        terms = list(self._costs.values())
        if not self.credit_assignment:
            terms = self._everyone_gets_every_cost(terms, nodes)
        credit = Credit(nodes, terms)
        for node in nodes:  # VIMCO turns its costs into one bound
            credit.terms = node.rewrite_terms(credit.terms, credit)
        total = credit.cost_total()
        for node in nodes:
            total = total + node.terms(credit)
        self._surrogate = total
        return total

    @staticmethod
    def _everyone_gets_every_cost(terms: list[Term], nodes: list[Node]) -> list[Term]:
        everyone = sum(node.bit for node in nodes)
        shapes = [t.value.shape for t in terms] + [node.shape for node in nodes]
        try:
            shape = torch.broadcast_shapes(*shapes)
        except RuntimeError as error:
            raise ValueError(
                f"credit_assignment=False weights every cost by every node, but their shapes {[tuple(s) for s in shapes]} "
                f"(costs {[t.name for t in terms]}, then nodes {[n.name for n in nodes]}) do not broadcast"
            ) from error
        return [Term(t.name, t.value.expand(shape), t.mask | everyone) for t in terms]


def graph(credit_assignment: bool = True) -> StochasticGraph:
    """A new stochastic computation graph, used as ``with sg.graph() as g: ...; loss = g.surrogate()``.

    Args:
        credit_assignment: weight each score-function node only by the costs that depend on it
            (default). ``False`` gives the plain estimator with the total cost, for comparison.
    """
    return StochasticGraph(credit_assignment=credit_assignment)
