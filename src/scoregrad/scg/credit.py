"""Credit assignment: plates, reductions and DiCE weighting over the nodes a cost depends on.

With ``W_c`` the score-function ancestors of cost ``c`` (Schulman et al., 2015; DiCE: Foerster et
al., 2018; baselines in the form of Mao et al., 2019)::

    L = sum_c box(sum_{w in W_c} log p(w)) * c  +  sum_w (1 - box(log p(w))) * box(sum_{u in W_w} log p(u)) * b_w

Each cost is averaged over its sampled plates and summed over the rest (weighted plates, batch).
:class:`Credit` holds the graph's nodes and (possibly rewritten) costs while the surrogate is built,
and gives each node what its :meth:`~scoregrad.scg.node.Node.terms` needs: the costs downstream of
it (:meth:`Credit.values`) and the upstream weighting and reduction of a term (:meth:`Credit.finish`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoregrad.scg.node import Node, Term, bits
from scoregrad.surrogate import score_function_surrogate

__all__ = ["Credit"]


class Credit:
    """The nodes and costs of one graph, and the reductions that credit costs to nodes."""

    def __init__(self, nodes: list[Node], terms: list[Term]) -> None:
        self.nodes, self.terms = nodes, terms
        self.zero = terms[0].value.new_zeros(())

    def plates(self, mask: int, ndim: int) -> dict[int, str]:
        """Dimension -> reduction (``"mean"``/``"sum"``) of the plates of the nodes in ``mask``."""
        plates: dict[int, str] = {}
        for index in bits(mask):
            node = self.nodes[index]
            if node.plate is None or len(node.shape) > ndim:  # no plate, or collapsed (VIMCO)
                continue
            dim = ndim - len(node.shape)
            if plates.setdefault(dim, node.plate) != node.plate:
                raise ValueError(
                    f"node {node.name!r}'s plate lines up with a plate of another kind at dimension {dim}; give "
                    "one of them a different num_samples or batch shape"
                )
        return plates

    def reduce(self, value: Tensor, mask: int) -> Tensor:
        """Mean over sampled plates, sum over everything else (weighted plates, batch)."""
        means = [dim for dim, how in self.plates(mask, value.dim()).items() if how == "mean"]
        if means:
            value = value.mean(means, keepdim=True)
        return value.sum()

    def reduce_to(self, value: Tensor, shape: torch.Size, mask: int) -> Tensor:
        """Reduce a downstream cost to a node's ``(plate, *batch)`` shape (plates: mean; else sum)."""
        plates = self.plates(mask, value.dim())
        lead = value.dim() - len(shape)
        dims = list(range(lead)) + [
            lead + i for i, size in enumerate(shape) if size == 1 and value.shape[lead + i] != 1
        ]
        means = [d for d in dims if plates.get(d) == "mean"]
        sums = [d for d in dims if plates.get(d) != "mean"]
        if means:
            value = value.mean(means, keepdim=True)
        if sums:
            value = value.sum(sums, keepdim=True)
        return value.reshape(value.shape[lead:]).expand(shape)

    def weighted(self, value: Tensor, mask: int) -> Tensor:
        """DiCE: ``box(sum of boxed log-probs) * prod(node weights) * value`` over the nodes in ``mask``."""
        log_prob = None
        for index in bits(mask):
            node = self.nodes[index]
            if node.boxed:
                lp = node.log_prob
                if lp.dim() > value.dim():  # a collapsed plate (VIMCO): the joint log-prob of all samples
                    lp = lp.sum(list(range(lp.dim() - value.dim())))
                log_prob = lp if log_prob is None else log_prob + lp
            elif node.weight is not None:
                value = value * node.weight
        return value if log_prob is None else score_function_surrogate(log_prob, value)

    def cost_total(self) -> Tensor:
        """The costs' part of the surrogate: each cost weighted by its nodes and reduced."""
        total = self.zero
        for term in self.terms:
            total = total + self.reduce(self.weighted(term.value, term.mask), term.mask)
        return total

    def values(self, node: Node) -> Tensor:
        """Each sample's downstream cost (detached), shape ``node.shape``: what the node's baseline tracks."""
        values = self.terms[0].value.new_zeros(node.shape)
        keep = node.ancestors | node.bit
        for term in self.terms:
            if not term.mask & node.bit:
                continue
            value = term.value.detach()
            for index in bits(term.mask & ~keep):
                if self.nodes[index].weight is not None:
                    value = value * self.nodes[index].weight.detach()
            values = values + self.reduce_to(value, node.shape, term.mask)
        return values

    def has_costs(self, node: Node) -> bool:
        """Whether any cost depends on ``node``."""
        return any(term.mask & node.bit for term in self.terms)

    def finish(self, node: Node, term: Tensor, own_plate: bool) -> Tensor:
        """Weight a node's term by its upstream nodes and reduce it (over its own plate too if ``own_plate``)."""
        term = self.weighted(term, node.ancestors)
        return self.reduce(term, node.ancestors | (node.bit if own_plate else 0))
