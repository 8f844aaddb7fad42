"""VIMCO nodes (Mnih & Rezende, 2016): a plate that forms an importance-weighted bound."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from scoregrad.scg.node import Term, bits, shape_error
from scoregrad.scg.score_function import ScoreFunctionNode
from scoregrad.surrogate import magic_box

if TYPE_CHECKING:
    from scoregrad.scg.credit import Credit

__all__ = ["VIMCO", "VIMCONode"]


class VIMCO:
    """VIMCO (Mnih & Rezende, 2016, "Variational Inference for Monte Carlo Objectives").

    Marks a node whose ``num_samples = K`` plate forms an importance-weighted bound. The costs that
    depend on the node are read as negative log-weights, ``-log w_k = sum_c c_k``; the objective for
    the plate is ``-log(1/K sum_k w_k)`` instead of the mean cost, and each sample's score is
    weighted by ``L - L_{-k}``, where ``L_{-k}`` replaces ``w_k`` by the geometric mean of the other
    weights. In DiCE form (``box(sum_k log q_k) (-L) + sum_k (1 - box(log q_k)) (-L_{-k})``) every
    derivative of the bound is unbiased. Needs ``num_samples >= 2``; the costs that depend on the
    node may depend on its ancestors but on no later stochastic node.
    """

    name = "vimco"

    def __repr__(self) -> str:
        return "VIMCO()"


class VIMCONode(ScoreFunctionNode):
    kind = "vimco"
    leave_one_out_bound: Tensor | None = None

    def draw(self, num_samples: int | None) -> None:
        if num_samples is None or num_samples < 2:
            raise ValueError(
                f"node {self.name!r}: 'vimco' needs num_samples >= 2 (the K of the bound), got {num_samples}"
            )
        super().draw(num_samples)
        self.plate = "sum"

    def rewrite_terms(self, terms: list[Term], credit: Credit) -> list[Term]:
        """The node's costs become one term, ``-log mean_k w_k``, collapsing the plate."""
        mine = [t for t in terms if t.mask & self.bit]
        if not mine:
            return terms
        allowed = self.ancestors | self.bit
        log_weight = mine[0].value.new_zeros(self.shape)
        mask = 0
        for term in mine:
            if term.mask & ~allowed:
                later = [credit.nodes[i].name for i in bits(term.mask & ~allowed)]
                raise ValueError(
                    f"cost {term.name!r} depends on VIMCO node {self.name!r} and on {later}, which are not its "
                    "ancestors; VIMCO needs the costs of its samples to be log-weights of that node alone"
                )
            if term.value.dim() != len(self.shape):
                raise ValueError(shape_error(f"cost {term.name!r}", term.value.shape, self))
            log_weight = log_weight - term.value
            mask |= term.mask
        k = self.shape[0]
        bound = torch.logsumexp(log_weight, 0) - math.log(k)
        # L_{-k}: w_k replaced by the geometric mean of the others (Mnih & Rezende, 2016, eq. 10).
        lw = log_weight.detach()
        others = (lw.sum(0, keepdim=True) - lw) / (k - 1)
        eye = torch.eye(k, dtype=torch.bool, device=lw.device).reshape((k, k) + (1,) * (lw.dim() - 1))
        replaced = torch.where(eye, others.unsqueeze(1), lw.unsqueeze(0))  # row j: w_j replaced
        self.leave_one_out_bound = torch.logsumexp(replaced, 1) - math.log(k)
        return [t for t in terms if not t.mask & self.bit] + [Term(f"vimco:{self.name}", -bound, mask)]

    def terms(self, credit: Credit) -> Tensor:
        if self.leave_one_out_bound is None:
            return credit.zero
        baseline = -self.leave_one_out_bound
        return credit.finish(self, (1.0 - magic_box(self.log_prob)) * baseline, own_plate=True)
