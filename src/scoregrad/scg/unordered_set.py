"""Unordered-set nodes for Categorical variables (Kool, van Hoof & Welling, 2020)."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from scoregrad.estimators.discrete import gumbel_top_k
from scoregrad.estimators.registry import require
from scoregrad.scg.node import Node
from scoregrad.surrogate import magic_box

if TYPE_CHECKING:
    from scoregrad.scg.credit import Credit

__all__ = ["UnorderedSet", "UnorderedSetNode", "unordered_set_weights"]


class UnorderedSet:
    """Unordered-set estimator for Categorical nodes (Kool, van Hoof & Welling, 2020).

    Draws ``num_samples = k`` *distinct* categories (Gumbel-top-k) and weights each by
    ``p(s) R(S, s)``, with the leave-one-out ratio ``R(S, s) = p^{D\\s}(S \\ s) / p(S)`` of
    probabilities of the unordered set. The weighted sum is an unbiased estimate of the expected
    cost, and its gradient (through ``p(s)``) is the unordered-set policy gradient; the built-in
    baseline (their eq. 17-18, second-order leave-one-out) keeps it unbiased. Set probabilities are
    summed over the ``k!`` orderings exactly, so ``k <= 6``.
    """

    name = "unordered_set"
    max_k = 6

    def __repr__(self) -> str:
        return "UnorderedSet()"


def _set_probability(p: Tensor, rest: Tensor, members: Tensor, perms: Tensor) -> Tensor:
    """Probability of drawing the members of ``S`` (``members``) as an unordered set without replacement.

    Args:
        p: probabilities of the ``k`` sampled categories, ``(k, *batch)``, float64.
        rest: probability mass outside ``S``, ``(*batch)``.
        members: bool ``(k,)``: which of the sampled positions form the set ``A``; the others are
            removed from the domain (``p^{D \\ B}(A)`` for ``B = S \\ A``).
        perms: all orderings of ``range(k)``, ``(k!, k)``.
    """
    size = int(members.sum())
    if size == 0:
        return torch.ones_like(rest)
    ordered = p[perms]  # (k!, k, *batch)
    included = members[perms].reshape(perms.shape + (1,) * (p.dim() - 1)).to(p.dtype)
    masked = ordered * included
    # Mass still available at step j: everything outside S plus the members not drawn before j.
    remaining = rest + masked.flip(1).cumsum(1).flip(1)
    factors = torch.where(included > 0, ordered / remaining, torch.ones_like(ordered))
    orderings = math.factorial(p.shape[0]) / math.factorial(size)  # each order of A appears this often
    return factors.prod(1).sum(0) / orderings


def unordered_set_weights(log_p: Tensor) -> tuple[Tensor, Tensor]:
    """Leave-one-out ratios of the unordered-set estimator (Kool, van Hoof & Welling, 2020).

    Args:
        log_p: log-probabilities of the ``k`` distinct sampled categories, ``(k, *batch)``.

    Returns:
        ``(ratio, second)``, detached, float64: ``ratio[s] = R(S, s) = p^{D\\s}(S\\s) / p(S)`` of shape
        ``(k, *batch)``, and ``second[s, s'] = R^{D\\s}(S, s')``, shape ``(k, k, *batch)``:
        ``p^{D\\{s,s'}}(S\\{s,s'}) / p^{D\\s}(S\\s)`` for ``s' != s`` and 1 on the diagonal. The
        baseline for ``s`` is ``sum_{s'} p(s') second[s, s'] f(s')``.
    """
    k = log_p.shape[0]
    p = log_p.detach().double().exp()
    rest = (1 - p.sum(0)).clamp_min(0.0)
    perms = torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long, device=p.device)
    everyone = torch.ones(k, dtype=torch.bool, device=p.device)
    p_set = _set_probability(p, rest, everyone, perms)
    without = []
    for s in range(k):
        members = everyone.clone()
        members[s] = False
        without.append(_set_probability(p, rest, members, perms))
    p_without = torch.stack(without)  # (k, *batch)
    ratio = p_without / p_set
    second = torch.ones((k, k) + tuple(p.shape[1:]), dtype=p.dtype, device=p.device)
    for s in range(k):
        for t in range(k):
            if s == t:
                continue
            members = everyone.clone()
            members[s] = members[t] = False
            second[s, t] = _set_probability(p, rest, members, perms) / p_without[s]
    return ratio, second


class UnorderedSetNode(Node):
    kind = "unordered_set"

    def draw(self, num_samples: int | None) -> None:
        require("unordered_set", self.dist, where=f"node {self.name!r}: ")
        categories = self.dist.logits.shape[-1]
        if num_samples is None or not 2 <= num_samples <= min(categories, UnorderedSet.max_k):
            raise ValueError(
                f"node {self.name!r}: 'unordered_set' draws num_samples distinct categories: need 2 <= num_samples "
                f"<= min(number of categories = {categories}, {UnorderedSet.max_k}), got {num_samples}"
            )
        with torch.no_grad():
            self.value = gumbel_top_k(self.dist.logits, num_samples)
        self.log_prob = self.dist.log_prob(self.value)
        ratio, second = unordered_set_weights(self.log_prob)
        self.weight = self.log_prob.exp() * ratio.to(self.log_prob.dtype)
        self.second = second.to(self.log_prob.dtype)
        _, self.shape = self._sample_shape(num_samples)
        self.plate = "sum"

    def terms(self, credit: Credit) -> Tensor:
        values = credit.values(self)
        p = self.log_prob.detach().exp()
        # B_s = sum_{s'} p(s') R^{D\s}(S, s') f(s')  (Kool et al., 2020, eq. 18)
        baseline = (self.second * (p * values).unsqueeze(0)).sum(1)
        term = (1.0 - magic_box(self.log_prob)) * baseline * self.weight.detach()
        return credit.finish(self, term, own_plate=True)
