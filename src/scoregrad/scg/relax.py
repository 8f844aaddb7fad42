"""RELAX and REBAR nodes for Bernoulli variables: a learned control variate, trained on the same backward."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from scoregrad.estimators.discrete import (
    bernoulli_logits,
    conditional_logistic_logits,
    logistic_logits,
    uniform_like,
)
from scoregrad.scg.node import Node
from scoregrad.surrogate import inject_gradient

if TYPE_CHECKING:
    from scoregrad.scg.credit import Credit

__all__ = ["RELAX", "REBAR", "RELAXNode"]


class RELAX:
    """RELAX for Bernoulli nodes (Grathwohl et al., 2018, "Backpropagation through the Void").

    With ``z = logits + logistic noise``, ``b = 1[z > 0]`` and ``z~ ~ p(z | b)`` (the core's
    :func:`~scoregrad.estimators.discrete.conditional_logistic_logits`), the gradient of the logits is
    ``(f(b) - c(z~)) d log p(b) + d c(z) - d c(z~)`` for any differentiable control ``c``: unbiased
    whatever ``c`` is. ``c`` is evaluated on the relaxed sample ``sigmoid(z / temperature)`` and
    trained, together with the temperature, to minimise the sum of squares of that gradient (over
    logits and batch: the per-example proxy for the variance of the parameter gradient). The
    gradient of that loss reaches :meth:`parameters` on the same ``backward()``; give them to an
    optimizer.

    Args:
        control: ``nn.Module`` mapping relaxed samples ``(n, *batch_shape, *event_shape)`` to
            ``(n, *batch_shape)`` (or ``(n, *batch_shape, 1)``); called as ``control(relaxed, context)``
            when the node has a ``context``. A plain callable needs ``parameters``.
        temperature: initial relaxation temperature (learned in log space).
        parameters: the control's trainable tensors, when ``control`` is not an ``nn.Module``. Keep
            the model's own parameters out: the variance loss would be injected into them.
    """

    name = "relax"

    def __init__(
        self,
        control: nn.Module | Callable[..., Tensor],
        temperature: float = 0.5,
        parameters: Iterable[Tensor] | None = None,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"RELAX: temperature must be positive, got {temperature}")
        if not callable(control):
            raise TypeError(f"RELAX: control must be an nn.Module or callable, got {type(control).__name__}")
        if parameters is None and not isinstance(control, nn.Module) and type(self) is RELAX:
            raise TypeError(
                "RELAX: the control is not an nn.Module, so its trainable tensors cannot be found; pass them as "
                "parameters=[...] (or parameters=[] for a fixed control)"
            )
        self.control = control
        self._parameters = None if parameters is None else list(parameters)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))

    def control_value(self, relaxed: Tensor, context: Any) -> Tensor:
        return self.control(relaxed, context) if context is not None else self.control(relaxed)

    def parameters(self) -> Iterator[nn.Parameter]:
        """The control variate's parameters and the log-temperature (for an optimizer)."""
        yield self.log_temperature
        if self._parameters is not None:
            yield from self._parameters
        elif isinstance(self.control, nn.Module):
            yield from self.control.parameters()

    def __repr__(self) -> str:
        return f"RELAX(control={self.control!r})"


class REBAR(RELAX):
    """REBAR (Tucker et al., 2017): RELAX whose control is ``eta * f(sigmoid(z / temperature))``.

    Args:
        relaxed_cost: the downstream cost as a differentiable function of relaxed samples,
            ``(n, *batch_shape, *event_shape) -> (n, *batch_shape)``; usually the same model code as
            the hard path. Only ``eta`` and the temperature are trained by the variance loss.
        temperature: initial temperature.
        eta: initial scale of the control variate.
    """

    name = "rebar"

    def __init__(
        self, relaxed_cost: Callable[..., Tensor], temperature: float = 0.5, eta: float = 1.0
    ) -> None:
        super().__init__(relaxed_cost, temperature)
        self.eta = nn.Parameter(torch.tensor(float(eta)))

    def control_value(self, relaxed: Tensor, context: Any) -> Tensor:
        return self.eta * super().control_value(relaxed, context)

    def parameters(self) -> Iterator[nn.Parameter]:
        yield self.log_temperature
        yield self.eta

    def __repr__(self) -> str:
        return f"REBAR(eta={self.eta.item():.3g}, temperature={self.log_temperature.exp().item():.3g})"


class RELAXNode(Node):
    kind = "relax"

    def draw(self, num_samples: int | None) -> None:
        self.logits = bernoulli_logits(self.dist, self.config.name)
        self.u = uniform_like((num_samples or 1, *self.logits.shape), self.logits)
        self.hard = (logistic_logits(self.logits.detach(), self.u) > 0).to(self.logits.dtype)
        self.value = self.hard if num_samples is not None else self.hard.squeeze(0)
        _, self.shape = self._sample_shape(num_samples)
        self.plate = "mean" if num_samples else None

    def terms(self, credit: Credit) -> Tensor:
        term, auxiliary = self._relax_term(credit.values(self))
        return credit.finish(self, term, own_plate=False) + auxiliary

    def _relax_term(self, values: Tensor) -> tuple[Tensor, Tensor]:
        config: RELAX = self.config
        logits, u, hard = self.logits, self.u, self.hard
        n = hard.shape[0]
        batch_ndim = len(self.dist.batch_shape)
        values = values if self.plate is not None else values.unsqueeze(0)  # (n, *batch)
        leaf = logits.detach().requires_grad_(True)
        temperature = config.log_temperature.exp()
        with torch.enable_grad():
            z = logistic_logits(leaf, u)
            z_tilde = conditional_logistic_logits(leaf, hard, uniform_like(u.shape, u))
            c_z = self._control(torch.sigmoid(z / temperature), n)
            c_tilde = self._control(torch.sigmoid(z_tilde / temperature), n)
            d_z = torch.autograd.grad(c_z.sum(), leaf, create_graph=True)[0]
            d_tilde = torch.autograd.grad(c_tilde.sum(), leaf, create_graph=True)[0]
            score = hard - torch.sigmoid(leaf)  # d log Bernoulli(b; logits) / d logits
            signal = (values - c_tilde).reshape(values.shape + (1,) * (score.dim() - values.dim()))
            gradient = (signal * score).mean(0) + (d_z - d_tilde) / n
            variance_loss = gradient.pow(2).sum()
            params = [p for p in config.parameters() if p.requires_grad]
            param_grads = torch.autograd.grad(variance_loss, params, allow_unused=True)
        auxiliary = logits.new_zeros(())
        for param, grad in zip(params, param_grads, strict=True):
            if grad is not None:
                auxiliary = auxiliary + inject_gradient(param, grad).sum()
        return inject_gradient(logits, gradient.detach(), batch_ndim), auxiliary

    def _control(self, relaxed: Tensor, n: int) -> Tensor:
        config: RELAX = self.config
        out = config.control_value(relaxed, self.context)
        expected = torch.Size([n]) + self.dist.batch_shape
        if out.shape != expected and out.shape == expected + (1,):
            out = out.squeeze(-1)
        if out.shape != expected:
            raise ValueError(
                f"node {self.name!r}: the {config.name} control returned shape {tuple(out.shape)}, expected "
                f"{tuple(expected)} = (num_samples, *batch_shape)"
            )
        return out
