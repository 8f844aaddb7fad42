"""Baselines and control variates for score-function estimators.

A baseline ``b`` is subtracted from the cost in the score-function estimator,
``(f(x) - b) * grad log p(x)``. Since ``E[grad log p(x)] = 0`` this leaves the estimate unbiased
whenever ``b`` does not depend on the sample ``x`` it is paired with, and it lowers the variance
when ``b`` tracks ``f``.

One protocol serves them all: a baseline is called with the sampled costs ``values`` of shape
``(num_samples, *batch_shape)`` and returns ``(b, fit_loss)``: ``b`` has the shape of ``values``
(or broadcasts to it), and ``fit_loss`` (one per batch element, or a scalar) is what the library adds to the surrogate with zero
forward value so that one ``backward()`` also trains a learned baseline (or ``None``).

Which orders of derivative stay unbiased (single stochastic node, DiCE surrogate):

===================  ==============  =================================================================================
baseline             unbiased for    why
===================  ==============  =================================================================================
none, constant       every order     ``b`` is a constant
moving_average       every order     ``b`` is computed from earlier calls only (a ``MovingAverage`` object)
leave_one_out        every order     ``b_i`` uses the other samples, independent of ``x_i`` (iid only)
optimal              every order     coefficients are leave-one-out; the control variate has zero mean
learned              every order     ``b`` depends on the context, not on ``x``
===================  ==============  =================================================================================

The variance reduction is designed for the first derivative; higher derivatives remain unbiased
but are not made less noisy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "Baseline",
    "NoBaseline",
    "Constant",
    "MovingAverage",
    "LeaveOneOut",
    "Optimal",
    "Learned",
    "resolve_baseline",
    "BASELINES",
    "check_baseline",
    "broadcasts_to",
]


@runtime_checkable
class Baseline(Protocol):
    """``baseline(values, context=None) -> (b, fit_loss)``; see the module docstring."""

    #: True when ``b_i`` is computed from the other samples of the same call (needs iid samples).
    uses_other_samples: bool

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]: ...


class NoBaseline:
    """Plain REINFORCE: no baseline."""

    uses_other_samples = False

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        return None, None

    def __repr__(self) -> str:
        return "NoBaseline()"


class Constant:
    """A fixed baseline value chosen by the user.

    Args:
        value: the number (or tensor broadcastable to ``values``) to subtract.
    """

    uses_other_samples = False
    finite_by_construction = True  # finite whenever the costs are (checked at the door)

    def __init__(self, value: float | Tensor = 0.0) -> None:
        if not bool(torch.isfinite(torch.as_tensor(value, dtype=torch.float64)).all()):
            raise ValueError(f"baseline must be finite; got {value!r}")
        self.value = value

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        return torch.as_tensor(self.value, dtype=values.dtype, device=values.device), None

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"


class MovingAverage:
    """Exponential moving average of past costs (Williams, 1992; Mnih & Gregor, 2014).

    The value used in a call is the average *before* that call's samples are folded in, so it
    never depends on the current samples and the estimator stays unbiased. State lives in this
    object and persists across calls; create a new one to reset it.

    Args:
        decay: weight of the old average, in [0, 1).
        per_element: keep one average per batch element (the batch shape must then stay fixed
            across calls). The default keeps a single scalar, shared by the whole batch, which also
            works when the batch size changes from call to call (minibatches of data).
    """

    uses_other_samples = False
    finite_by_construction = True  # finite whenever the costs are (checked at the door)

    def __init__(self, decay: float = 0.9, per_element: bool = False) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"MovingAverage: decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.per_element = per_element
        self.average: Tensor | None = None

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        observed = values.detach().mean(0) if self.per_element else values.detach().mean()
        if self.average is not None and self.average.shape != observed.shape:
            raise ValueError(
                f"MovingAverage(per_element=True): batch shape changed from {tuple(self.average.shape)} "
                f"to {tuple(observed.shape)}; use per_element=False or a new baseline"
            )
        current = torch.zeros_like(observed) if self.average is None else self.average
        self.average = (
            observed if self.average is None else self.decay * current + (1 - self.decay) * observed
        )
        return current, None

    def __repr__(self) -> str:
        return f"MovingAverage(decay={self.decay})"


def leave_one_out_mean(values: Tensor, dim: int = 0) -> Tensor:
    """For each sample, the mean of the *other* samples along ``dim`` (RLOO; Kool et al., 2019)."""
    n = values.shape[dim]
    if n < 2:
        raise ValueError(f"leave_one_out needs num_samples >= 2 along dim {dim}, got {n}")
    return (values.sum(dim, keepdim=True) - values) / (n - 1)


class LeaveOneOut:
    """Leave-one-out baseline (RLOO): ``b_i`` is the mean cost of the other samples.

    Kool, van Hoof & Welling (2019), "Buy 4 REINFORCE Samples, Get a Baseline for Free!". Unbiased
    because the samples are independent; needs ``num_samples >= 2`` and an iid sampler.
    """

    uses_other_samples = True
    finite_by_construction = True  # finite whenever the costs are (checked at the door)

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        return leave_one_out_mean(values.detach(), 0), None

    def __repr__(self) -> str:
        return "LeaveOneOut()"


class Optimal:
    """The score itself as a control variate, one coefficient per distribution parameter.

    For each scalar parameter ``theta_k`` of the distribution (``loc`` and ``scale`` of a Normal,
    each logit of a Categorical) the estimate is ``(f(x_i) - c_{k,i}) * s_k(x_i)`` with
    ``s_k = d log p / d theta_k`` and the variance-minimising coefficient
    ``c_k = E[f s_k^2] / E[s_k^2]`` (Weaver & Tao, 2001; Mohamed et al., 2020, §7.4).

    **Unbiasedness.** ``c_{k,i}`` is estimated *leave-one-out*, from the samples ``j != i`` only, so
    it is independent of ``x_i``; since ``E[s_k(x_i)] = 0`` the control variate has mean zero and the
    estimator is exactly unbiased (not just asymptotically). Needs ``num_samples >= 2`` and iid
    samples. The gradient reaches upstream tensors through the distribution's own parameter tensors
    (see :func:`scoregrad.estimators.score_function.parameter_scores`).

    **When it helps.** The coefficients are themselves estimated, and noisy with few samples: with
    ``num_samples=2`` each coefficient is just the other sample's cost (the leave-one-out baseline),
    and when ``E[f]`` is small next to ``f``'s spread (``cos(kx)`` for ``k >= 1`` under N(1, 1),
    say) the estimate is noisier per evaluation than no baseline at all. Use 8 or more samples.
    """

    uses_other_samples = True

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        # The estimator calls ``coefficients`` instead; a scalar baseline cannot express it.
        return None, None

    @staticmethod
    def coefficients(values: Tensor, squared_scores: Tensor) -> Tensor:
        """Leave-one-out ``c_{k,i} = sum_{j!=i} f_j s_jk^2 / sum_{j!=i} s_jk^2``.

        Args:
            values: ``(num_samples, *batch_shape)``.
            squared_scores: ``(num_samples, *batch_shape, *param_shape)``.
        """
        n = values.shape[0]
        if n < 2:
            raise ValueError(f"baseline 'optimal' needs num_samples >= 2, got {n}")
        extra = squared_scores.dim() - values.dim()
        v = values.detach().reshape(values.shape + (1,) * extra)
        weighted = v * squared_scores
        numerator = weighted.sum(0, keepdim=True) - weighted
        denominator = squared_scores.sum(0, keepdim=True) - squared_scores
        # Where no other sample carries score (denominator 0) there is nothing to learn from: use 0.
        safe = denominator > 0
        return torch.where(
            safe, numerator / torch.where(safe, denominator, torch.ones_like(denominator)), 0.0
        )

    def __repr__(self) -> str:
        return "Optimal()"


class Learned:
    """A learned baseline ``b(context)``, trained to minimise ``(f - b)^2`` (NVIL; Mnih & Gregor, 2014).

    Args:
        model: an ``nn.Module`` or callable. It is called as ``model(context)`` when the caller
            passes a context (the input of an amortised model, say) and as ``model()`` otherwise,
            and must return a tensor broadcastable to ``values`` (``(*batch_shape)``, ``(*batch_shape, 1)``
            or ``(num_samples, *batch_shape)``).

    The squared error is returned as ``fit_loss``; scoregrad adds it to the surrogate with zero
    forward value, so ``loss.backward()`` trains the baseline's parameters alongside the model and an
    ordinary optimizer step updates both. ``b`` itself enters the score term detached.
    """

    uses_other_samples = False

    def __init__(self, model: nn.Module | Callable[..., Tensor]) -> None:
        if not callable(model):
            raise TypeError(f"Learned: model must be an nn.Module or callable, got {type(model).__name__}")
        self.model = model

    def __call__(self, values: Tensor, *, context: Any = None) -> tuple[Tensor | None, Tensor | None]:
        prediction = torch.as_tensor(self.model(context) if context is not None else self.model())
        if prediction.dim() == values.dim() and prediction.shape[-1] == 1 and values.shape[-1] != 1:
            prediction = prediction.squeeze(-1)  # an nn.Linear(..., 1) head: (*batch_shape, 1)
        try:
            prediction = torch.broadcast_to(prediction, values.shape)
        except RuntimeError as error:
            raise ValueError(
                f"Learned baseline returned shape {tuple(prediction.shape)}, which does not broadcast to the "
                f"values' shape {tuple(values.shape)} (num_samples, *batch_shape)"
            ) from error
        # One regression loss per batch element, like the estimate it is added to.
        fit_loss = (values.detach() - prediction).pow(2).mean(0)
        return prediction.detach(), fit_loss

    def __repr__(self) -> str:
        return f"Learned({self.model!r})"


BASELINES: dict[str, Callable[[], Baseline]] = {
    "none": NoBaseline,
    "leave_one_out": LeaveOneOut,
    "optimal": Optimal,
}


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when ``shape`` broadcasts to exactly ``target`` (plain Python: ``torch.broadcast_shapes``
    runs its reference implementation, ~90 us a call, and raises instead of answering no)."""
    if len(shape) > len(target):
        return False
    return all(s == t or s == 1 for s, t in zip(reversed(shape), reversed(target), strict=False))


def check_baseline(
    baseline: Tensor | None, values: Tensor, where: str = "baseline", source: Any = None
) -> Tensor | None:
    """Check a baseline's value before it enters a surrogate: finite, and broadcastable to ``values``.

    Args:
        baseline: what a baseline returned (None for no baseline).
        values: the costs it is subtracted from, ``(num_samples, *batch_shape)``.
        where: how to name it in the error (``"baseline"``, ``"node 'z': baseline"``).
        source: the baseline object; the library's own baselines that are finite whenever the
            (already checked) costs are skip the finiteness check (one host sync less per call).
    """
    if baseline is None:
        return None
    if not broadcasts_to(tuple(baseline.shape), tuple(values.shape)):
        raise ValueError(
            f"{where} has shape {tuple(baseline.shape)}, which does not broadcast to the costs' shape "
            f"{tuple(values.shape)} (num_samples, *batch_shape)"
        )
    if not getattr(source, "finite_by_construction", False) and not bool(
        torch.isfinite(baseline.detach()).all()
    ):
        raise ValueError(f"{where} has non-finite values: {baseline.detach()}")
    return baseline


def resolve_baseline(baseline: str | float | Baseline | nn.Module | Callable | None) -> Baseline:
    """Turn a name, number, module or object into a baseline object.

    ``None`` and ``"none"`` give no baseline; a number gives :class:`Constant`; an ``nn.Module`` or a
    plain callable that is not already a baseline gives :class:`Learned`.
    """
    if baseline is None:
        return NoBaseline()
    if isinstance(baseline, str):
        if baseline == "constant":
            raise ValueError(
                "baseline 'constant' needs a value: pass a number or sg.baselines.Constant(value)"
            )
        if baseline == "moving_average":
            # A name cannot hold state: a fresh average per call has seen nothing and subtracts 0.
            raise ValueError(
                "baseline 'moving_average' by name would start a fresh average on every call, which is no "
                "baseline at all; create one sg.baselines.MovingAverage() and pass that object on every call"
            )
        if baseline not in BASELINES:
            raise ValueError(
                f"unknown baseline {baseline!r}; choose one of {sorted(BASELINES)}, a number, "
                "or an object such as sg.baselines.MovingAverage()"
            )
        return BASELINES[baseline]()
    if isinstance(baseline, (int, float)) or (
        isinstance(baseline, Tensor) and not isinstance(baseline, nn.Module)
    ):
        return Constant(baseline)
    if isinstance(baseline, (NoBaseline, Constant, MovingAverage, LeaveOneOut, Optimal, Learned)):
        return baseline
    if isinstance(baseline, nn.Module):
        return Learned(baseline)
    if isinstance(baseline, Baseline):
        return baseline
    if callable(baseline):
        return Learned(baseline)
    raise TypeError(
        f"baseline must be a name, a number, a Baseline, an nn.Module or a callable; got {baseline!r}"
    )
