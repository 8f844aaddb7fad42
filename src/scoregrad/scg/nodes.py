"""Which node implements which estimator in a graph, and turning ``estimator=``/``baseline=`` into a node.

Names and capabilities come from the one registry (:mod:`scoregrad.estimators.registry`); this table
only says which :class:`~scoregrad.scg.node.Node` subclass draws each one. A new graph estimator is
a ``Node`` subclass in its own file plus one line here (and a ``Spec`` in the registry).
"""

from __future__ import annotations

from typing import Any

from torch.distributions import Distribution

from scoregrad.baselines import Baseline, NoBaseline, Optimal, resolve_baseline
from scoregrad.estimators import ESTIMATORS, ScoreFunction
from scoregrad.estimators.registry import SPECS, spec_of
from scoregrad.scg.arm import ARMNode
from scoregrad.scg.exact import ExactNode
from scoregrad.scg.node import Node
from scoregrad.scg.pathwise import PathwiseNode, RelaxationNode
from scoregrad.scg.relax import RELAXNode
from scoregrad.scg.score_function import ScoreFunctionNode
from scoregrad.scg.unordered_set import UnorderedSet, UnorderedSetNode
from scoregrad.scg.vimco import VIMCO, VIMCONode

__all__ = ["NODES", "ESTIMATOR_ORDERS", "resolve"]

NODES: dict[str, type[Node]] = {
    "score_function": ScoreFunctionNode,
    "pathwise": PathwiseNode,
    "exact": ExactNode,
    "arm": ARMNode,
    "disarm": ARMNode,
    "vimco": VIMCONode,
    "relax": RELAXNode,
    "rebar": RELAXNode,
    "unordered_set": UnorderedSetNode,
    "straight_through": RelaxationNode,
    "gumbel_softmax": RelaxationNode,
}

#: Which derivatives each node estimator leaves unbiased inside a graph (from the registry).
ESTIMATOR_ORDERS: dict[str, str] = {name: SPECS[name].unbiased for name in NODES}

# Names that make an estimator object by themselves (RELAX and REBAR need a control: objects only).
_BY_NAME = {
    **{n: c for n, c in ESTIMATORS.items() if n in NODES},
    "vimco": VIMCO,
    "unordered_set": UnorderedSet,
}


def resolve(name: str, dist: Distribution, estimator: Any, baseline: Any) -> tuple[type[Node], Any, Baseline]:
    """``(node class, estimator object, baseline)`` for a node, or a clear error naming the node."""
    if estimator is None:
        estimator = "pathwise" if dist.has_rsample else "score_function"
    if isinstance(estimator, str):
        if estimator not in _BY_NAME:
            raise ValueError(
                f"node {name!r}: unknown estimator {estimator!r}; choose one of {sorted(_BY_NAME)} "
                "or pass sg.RELAX(control) / sg.REBAR(relaxed_cost)"
            )
        estimator = ScoreFunction(baseline) if estimator == "score_function" else _BY_NAME[estimator]()
    spec = spec_of(estimator)
    if spec is None:
        raise TypeError(f"node {name!r}: estimator must be a name or an estimator object, got {estimator!r}")
    if spec.name not in NODES:
        raise TypeError(
            f"node {name!r}: estimator {spec.name!r} is not available in graphs; choose one of {sorted(NODES)}"
        )
    if isinstance(estimator, ScoreFunction):
        chosen = estimator.baseline if baseline is None else resolve_baseline(baseline)
        if isinstance(chosen, Optimal):
            raise ValueError(
                f"node {name!r}: baseline 'optimal' is not supported in graphs (it needs the parameters of a "
                "single distribution); use 'leave_one_out', a MovingAverage object or a learned baseline"
            )
        return NODES[spec.name], estimator, chosen
    if baseline is not None:
        raise ValueError(
            f"node {name!r}: baseline= applies to score-function nodes only, not {spec.name!r} "
            f"({ESTIMATOR_ORDERS[spec.name]}; its variance reduction is built in)"
        )
    return NODES[spec.name], estimator, NoBaseline()
