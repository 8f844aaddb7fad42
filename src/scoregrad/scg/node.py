"""The node protocol: what every stochastic node of a graph does, whatever its estimator.

A node is drawn once (:meth:`Node.draw`: its samples and whatever state its estimator needs) and,
when the surrogate is built, contributes its own zero-valued terms given the costs downstream of it
(:meth:`Node.terms`: baselines, injected gradients, auxiliary losses). Two class attributes say how
the credit assignment treats it: ``boxed`` (its log-probability enters the DiCE magic box of the
costs that depend on it) and, through ``weight``, whether it multiplies them by a differentiable
weight instead (exact enumeration, unordered sets). A new graph estimator is one subclass in one
short file, registered in :data:`scoregrad.scg.nodes.NODES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution

if TYPE_CHECKING:
    from scoregrad.scg.credit import Credit

__all__ = ["Node", "Term", "bits", "shape_error"]


@dataclass
class Term:
    """A registered cost: its value and the bit mask of the nodes it depends on."""

    name: str
    value: Tensor
    mask: int


class Node:
    """One stochastic node. Subclasses implement :meth:`draw` and, if they add terms, :meth:`terms`.

    Attributes set by :meth:`draw`:
        value: the samples (what ``g.sample`` returns).
        shape: ``(plate?, *batch_shape)``, the shape of ``log_prob`` and of the node's downstream costs.
        plate: how the node's own leading plate is reduced: ``"mean"`` (sampled), ``"sum"`` (weighted)
            or None (no plate).
        log_prob: log-probability of the samples (for boxed and weighted nodes).
        weight: a differentiable weight that multiplies downstream costs (exact, unordered set).
    """

    #: the registry name of the node's estimator
    kind: ClassVar[str] = ""
    #: whether the node's log-probability enters the DiCE magic box of its downstream costs
    boxed: ClassVar[bool] = False

    def __init__(
        self, name: str, index: int, dist: Distribution, ancestors: int, config: Any, context: Any = None
    ) -> None:
        self.name, self.index, self.dist, self.ancestors = name, index, dist, ancestors
        self.config, self.context = config, context  # the estimator object; what a baseline/control gets
        self.value: Tensor
        self.shape: torch.Size
        self.plate: str | None = None
        self.log_prob: Tensor | None = None
        self.weight: Tensor | None = None

    @property
    def bit(self) -> int:
        return 1 << self.index

    def draw(self, num_samples: int | None) -> None:
        """Sample ``value`` and set ``shape``, ``plate`` and the estimator's state."""
        raise NotImplementedError

    def rewrite_terms(self, terms: list[Term], credit: Credit) -> list[Term]:
        """Replace the costs that depend on this node before the surrogate is built (VIMCO does)."""
        return terms

    def terms(self, credit: Credit) -> Tensor:
        """The node's own zero-valued surrogate terms, given the costs downstream of it."""
        return credit.zero

    def _sample_shape(self, num_samples: int | None) -> tuple[torch.Size, torch.Size]:
        """``(plate_shape, shape)`` for ``num_samples``: the plate prepended to the batch shape."""
        plate = torch.Size([] if num_samples is None else [num_samples])
        return plate, plate + self.dist.batch_shape


def bits(mask: int) -> Iterator[int]:
    """The indices of the set bits of ``mask``, ascending."""
    index = 0
    while mask:
        if mask & 1:
            yield index
        mask >>= 1
        index += 1


def shape_error(what: str, shape: torch.Size, node: Node) -> str:
    return (
        f"{what} has shape {tuple(shape)} but depends on node {node.name!r}, whose samples have "
        f"(plate, *batch_shape) = {tuple(node.shape)}: keep those as its trailing dimensions (plates stack on "
        "the left) and sum only event dimensions away (Independent(dist, 1) makes a latent vector an event)"
    )
