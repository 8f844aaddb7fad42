"""Score-function nodes: REINFORCE with DiCE, any baseline independent of the node's own sample."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from scoregrad.baselines import Baseline, NoBaseline, check_baseline
from scoregrad.scg.node import Node
from scoregrad.surrogate import magic_box, zero_forward

if TYPE_CHECKING:
    from scoregrad.scg.credit import Credit

__all__ = ["ScoreFunctionNode"]


class ScoreFunctionNode(Node):
    """Samples without gradient; its log-probability is boxed into every cost downstream of it.

    The baseline term ``(1 - box(log p)) * b`` has value 0 and zero-mean derivatives of every order
    (Mao et al., 2019). Baselines follow the core protocol, over the node's own plate.
    """

    kind = "score_function"
    boxed = True

    def __init__(self, *args: Any, baseline: Baseline | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.baseline = baseline if baseline is not None else NoBaseline()

    def draw(self, num_samples: int | None) -> None:
        plate, self.shape = self._sample_shape(num_samples)
        with torch.no_grad():
            self.value = self.dist.sample(plate)
        self.plate = "mean" if num_samples else None
        self.log_prob = self.dist.log_prob(self.value)

    def terms(self, credit: Credit) -> Tensor:
        if isinstance(self.baseline, NoBaseline) or not credit.has_costs(self):
            return credit.zero
        if self.baseline.uses_other_samples and (self.plate is None or self.shape[0] < 2):
            raise ValueError(
                f"node {self.name!r}: baseline {self.baseline!r} uses the other samples of the node's plate; "
                "give the node num_samples >= 2"
            )
        # The baseline protocol takes (num_samples, *batch_shape): give plate-less nodes a plate of one.
        own_plate = self.plate is not None
        values = credit.values(self)
        values = values if own_plate else values.unsqueeze(0)
        baseline, fit_loss = self.baseline(values, context=self.context)
        baseline = check_baseline(baseline, values, f"node {self.name!r}: baseline", source=self.baseline)
        if baseline is not None and not own_plate:
            baseline = torch.broadcast_to(baseline, (1, *self.shape)).squeeze(0)
        total = credit.zero
        if baseline is not None:
            total = credit.finish(self, (1.0 - magic_box(self.log_prob)) * baseline.detach(), own_plate=True)
        if fit_loss is not None:
            total = total + zero_forward(fit_loss.sum())
        return total
