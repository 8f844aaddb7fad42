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

import itertools
import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution
from torch.overrides import TorchFunctionMode

from scoregrad.baselines import Baseline, NoBaseline, Optimal, check_baseline, resolve_baseline
from scoregrad.estimators import ARM, DisARM, Exact, GumbelSoftmax, Pathwise, ScoreFunction, StraightThrough
from scoregrad.estimators.discrete import (
    bernoulli_logits,
    conditional_logistic_logits,
    gumbel_top_k,
    logistic_logits,
    relaxed_sample,
    uniform_like,
)
from scoregrad.estimators.exact import enumerate_support
from scoregrad.surrogate import inject_gradient, magic_box, score_function_surrogate, zero_forward

__all__ = [
    "graph",
    "StochasticGraph",
    "VIMCO",
    "RELAX",
    "REBAR",
    "UnorderedSet",
    "ESTIMATOR_ORDERS",
    "unordered_set_weights",
]

#: Which derivatives each node estimator leaves unbiased inside a graph.
ESTIMATOR_ORDERS: dict[str, str] = {
    "score_function": "every order (DiCE, with any baseline independent of the sample)",
    "pathwise": "every order (differentiates through rsample)",
    "exact": "every order (exact sum over the support)",
    "vimco": "every order of the importance-weighted bound (DiCE with leave-one-out baselines)",
    "arm": "first order",
    "disarm": "first order",
    "relax": "first order",
    "rebar": "first order",
    "unordered_set": "first order",
    "straight_through": "biased (relaxation)",
    "gumbel_softmax": "biased (relaxation)",
}


# --------------------------------------------------------------------------------------------------
# Dependency tracking
# --------------------------------------------------------------------------------------------------


class _DependencyTracker(TorchFunctionMode):
    """Tags every tensor produced by a torch op with the union of its inputs' node masks.

    Masks are ints (bit ``i`` = node ``i``), kept in a side table keyed by ``id`` with a weak
    reference to check identity, so samples stay plain tensors and nothing leaks after the graph.
    """

    def __init__(self) -> None:
        super().__init__()
        self._masks: dict[int, tuple[weakref.ref, int]] = {}

    def mask_of(self, obj: Any, depth: int = 0) -> int:
        if isinstance(obj, Tensor):
            entry = self._masks.get(id(obj))
            return entry[1] if entry is not None and entry[0]() is obj else 0
        if depth < 3 and isinstance(obj, (list, tuple)):
            mask = 0
            for item in obj:
                mask |= self.mask_of(item, depth + 1)
            return mask
        if depth < 3 and isinstance(obj, dict):
            return self.mask_of(list(obj.values()), depth + 1)
        return 0

    def mark(self, obj: Any, mask: int, depth: int = 0) -> None:
        if isinstance(obj, Tensor):
            self._masks[id(obj)] = (weakref.ref(obj), mask | self.mask_of(obj))
        elif depth < 3 and isinstance(obj, (list, tuple)):
            for item in obj:
                self.mark(item, mask, depth + 1)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self._masks:
            mask = self.mask_of(args) | self.mask_of(kwargs)
            if mask:
                self.mark(out, mask)
                if getattr(func, "__name__", "") == "__setitem__" and args:
                    self.mark(args[0], mask)
                if "out" in kwargs:
                    self.mark(kwargs["out"], mask)
        return out


def _distribution_mask(tracker: _DependencyTracker, obj: Any, depth: int = 0) -> int:
    """Nodes that a distribution's parameters depend on.

    Walks the tensors in its ``__dict__`` and, a few levels deep, the objects it holds: the base of
    ``Independent`` and ``TransformedDistribution``, transforms and their parameters, mixtures.
    """
    if isinstance(obj, Tensor):
        return tracker.mask_of(obj)
    if depth > 4:
        return 0
    if isinstance(obj, (list, tuple)):
        items = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, (nn.Module, type)):
        items = list(vars(obj).values())
    else:
        return 0
    mask = 0
    for item in items:
        mask |= _distribution_mask(tracker, item, depth + 1)
    return mask


# --------------------------------------------------------------------------------------------------
# Node estimators that exist only in graphs
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Unordered sets: exact set probabilities and the leave-one-out ratios
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------------


@dataclass
class _Node:
    name: str
    index: int
    kind: str
    config: Any
    dist: Distribution
    value: Tensor
    shape: torch.Size  # (plate?, *batch_shape): the shape of log_prob
    ancestors: int
    plate: str | None  # reduction over the node's own plate (leftmost dim): "mean", "sum" or None
    log_prob: Tensor | None = None
    weight: Tensor | None = None  # exact / unordered-set weights, carrying gradient
    baseline: Baseline = field(default_factory=NoBaseline)
    context: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bit(self) -> int:
        return 1 << self.index

    @property
    def boxed(self) -> bool:
        """Whether the node's log-probability enters the DiCE magic box."""
        return self.kind in ("score_function", "vimco")


@dataclass
class _Term:
    name: str
    value: Tensor
    mask: int


def _bits(mask: int) -> Iterator[int]:
    index = 0
    while mask:
        if mask & 1:
            yield index
        mask >>= 1
        index += 1


def _broadcasts_into(small: torch.Size, big: torch.Size) -> bool:
    """True when ``small`` broadcasts to exactly ``big`` (torch raises instead of answering no)."""
    if len(small) > len(big):
        return False
    try:
        return torch.broadcast_shapes(small, big) == big
    except RuntimeError:
        return False


def _shape_error(what: str, shape: torch.Size, node: _Node) -> str:
    return (
        f"{what} has shape {tuple(shape)} but depends on node {node.name!r}, whose samples have "
        f"(plate, *batch_shape) = {tuple(node.shape)}: keep those as its trailing dimensions (plates stack on "
        "the left) and sum only event dimensions away (Independent(dist, 1) makes a latent vector an event)"
    )


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
        self._tracker = _DependencyTracker()
        self._nodes: dict[str, _Node] = {}
        self._costs: dict[str, _Term] = {}
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
            baseline: for score-function nodes: ``"moving_average"``, ``"leave_one_out"`` (over this
                node's plate), a number, an ``nn.Module``/callable (learned, NVIL) or a baseline object.
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
        kind, config, resolved_baseline = self._resolve(name, dist, estimator, baseline)
        ancestors = _distribution_mask(self._tracker, dist)
        node = self._draw(name, len(self._nodes), kind, config, dist, num_samples, ancestors)
        node.baseline = resolved_baseline
        node.context = context
        self._check_batch_shape(node)
        self._nodes[name] = node
        self._tracker.mark(node.value, node.bit | ancestors)
        return node.value

    def _resolve(
        self, name: str, dist: Distribution, estimator: Any, baseline: Any
    ) -> tuple[str, Any, Baseline]:
        if estimator is None:
            estimator = "pathwise" if dist.has_rsample else "score_function"
        by_name = {
            "score_function": ScoreFunction,
            "pathwise": Pathwise,
            "exact": Exact,
            "arm": ARM,
            "disarm": DisARM,
            "vimco": VIMCO,
            "unordered_set": UnorderedSet,
            "straight_through": StraightThrough,
            "gumbel_softmax": GumbelSoftmax,
        }
        if isinstance(estimator, str):
            if estimator not in by_name:
                raise ValueError(
                    f"node {name!r}: unknown estimator {estimator!r}; choose one of {sorted(by_name)} "
                    "or pass sg.RELAX(control) / sg.REBAR(relaxed_cost)"
                )
            estimator = ScoreFunction(baseline) if estimator == "score_function" else by_name[estimator]()
        if isinstance(estimator, ScoreFunction):
            chosen = estimator.baseline if baseline is None else resolve_baseline(baseline)
            if isinstance(chosen, Optimal):
                raise ValueError(
                    f"node {name!r}: baseline 'optimal' is not supported in graphs (it needs the parameters of a "
                    "single distribution); use 'leave_one_out', 'moving_average' or a learned baseline"
                )
            return "score_function", estimator, chosen
        kinds = [
            (StraightThrough, "straight_through"),  # before GumbelSoftmax: it is a subclass
            (GumbelSoftmax, "gumbel_softmax"),
            (Pathwise, "pathwise"),
            (Exact, "exact"),
            (DisARM, "disarm"),
            (ARM, "arm"),
            (VIMCO, "vimco"),
            (REBAR, "rebar"),
            (RELAX, "relax"),
            (UnorderedSet, "unordered_set"),
        ]
        for cls, kind in kinds:
            if isinstance(estimator, cls):
                if baseline is not None:
                    raise ValueError(
                        f"node {name!r}: baseline= applies to score-function nodes only, not {kind!r} "
                        f"({ESTIMATOR_ORDERS[kind]}; its variance reduction is built in)"
                    )
                return kind, estimator, NoBaseline()
        raise TypeError(f"node {name!r}: estimator must be a name or an estimator object, got {estimator!r}")

    def _draw(
        self,
        name: str,
        index: int,
        kind: str,
        config: Any,
        dist: Distribution,
        num_samples: int | None,
        ancestors: int,
    ) -> _Node:
        n = 1 if num_samples is None else num_samples
        plate_shape = torch.Size([] if num_samples is None else [num_samples])
        shape = plate_shape + dist.batch_shape
        common = dict(name=name, index=index, kind=kind, config=config, dist=dist, ancestors=ancestors)

        def squeeze(x: Tensor) -> Tensor:
            return x if num_samples is not None else x.squeeze(0)

        if kind == "score_function" or kind == "vimco":
            if kind == "vimco" and n < 2:
                raise ValueError(
                    f"node {name!r}: 'vimco' needs num_samples >= 2 (the K of the bound), got {num_samples}"
                )
            with torch.no_grad():
                value = dist.sample(plate_shape)
            return _Node(
                **common,
                value=value,
                shape=shape,
                plate="sum" if kind == "vimco" else ("mean" if num_samples else None),
                log_prob=dist.log_prob(value),
            )
        if kind == "pathwise":
            if not dist.has_rsample:
                raise TypeError(
                    f"node {name!r}: estimator 'pathwise' needs rsample; {type(dist).__name__} has none. Use "
                    "'score_function' (any distribution), 'exact' (small discrete support) or a relaxation"
                )
            return _Node(
                **common, value=dist.rsample(plate_shape), shape=shape, plate="mean" if num_samples else None
            )
        if kind == "exact":
            if num_samples is not None:
                raise ValueError(
                    f"node {name!r}: 'exact' enumerates the support; leave num_samples=None (got {num_samples})"
                )
            support = enumerate_support(dist, config.max_support)
            log_prob = dist.log_prob(support)
            return _Node(
                **common,
                value=support,
                shape=log_prob.shape,
                plate="sum",
                log_prob=log_prob,
                weight=log_prob.exp(),
            )
        if kind in ("arm", "disarm"):
            logits = bernoulli_logits(dist, kind)
            if num_samples is None or num_samples < 2 or num_samples % 2:
                raise ValueError(
                    f"node {name!r}: estimator {kind!r} evaluates antithetic pairs: num_samples must be even and "
                    f">= 2, got {num_samples}"
                )
            pairs = num_samples // 2
            u = uniform_like((pairs, *logits.shape), logits)
            first, second, weight = config.antithetic_pair(logits.detach(), u)
            return _Node(
                **common,
                value=torch.cat([first, second], 0),
                shape=shape,
                plate="mean",
                extra={"logits": logits, "weight": weight, "pairs": pairs},
            )
        if kind in ("relax", "rebar"):
            logits = bernoulli_logits(dist, kind)
            u = uniform_like((n, *logits.shape), logits)
            hard = (logistic_logits(logits.detach(), u) > 0).to(logits.dtype)
            return _Node(
                **common,
                value=squeeze(hard),
                shape=shape,
                plate="mean" if num_samples else None,
                extra={"logits": logits, "u": u, "hard": hard},
            )
        if kind in ("straight_through", "gumbel_softmax"):
            relaxed, hard = relaxed_sample(dist, n, config.temperature, kind)
            value = config.relaxed_input(relaxed, hard)
            return _Node(**common, value=squeeze(value), shape=shape, plate="mean" if num_samples else None)
        if kind == "unordered_set":
            if not isinstance(dist, Categorical):
                raise TypeError(
                    f"node {name!r}: 'unordered_set' is for Categorical nodes, got {type(dist).__name__}"
                )
            categories = dist.logits.shape[-1]
            if num_samples is None or not 2 <= num_samples <= min(categories, UnorderedSet.max_k):
                raise ValueError(
                    f"node {name!r}: 'unordered_set' draws num_samples distinct categories: need 2 <= num_samples <= "
                    f"min(number of categories = {categories}, {UnorderedSet.max_k}), got {num_samples}"
                )
            with torch.no_grad():
                value = gumbel_top_k(dist.logits, num_samples)
            log_prob = dist.log_prob(value)
            ratio, second = unordered_set_weights(log_prob)
            weight = log_prob.exp() * ratio.to(log_prob.dtype)
            return _Node(
                **common,
                value=value,
                shape=shape,
                plate="sum",
                log_prob=log_prob,
                weight=weight,
                extra={"second": second.to(log_prob.dtype)},
            )
        raise AssertionError(kind)  # pragma: no cover

    def _check_batch_shape(self, node: _Node) -> None:
        for index in _bits(node.ancestors):
            parent = self._node_by_index(index)
            if not _broadcasts_into(parent.shape, node.shape):
                raise ValueError(
                    _shape_error(f"node {node.name!r}'s (plate, *batch_shape)", node.shape, parent)
                )

    def _node_by_index(self, index: int) -> _Node:
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
        finite = torch.isfinite(value.detach())
        if not bool(finite.all()):
            bad = (~finite).nonzero()
            first = tuple(bad[0].tolist())
            raise ValueError(
                f"cost {name!r} has {bad.shape[0]} non-finite value(s) of {value.numel()}; first at index {first} "
                f"with value {value.detach()[first].item()}"
            )
        for index in _bits(mask):
            node = self._node_by_index(index)
            if not _broadcasts_into(node.shape, value.shape):
                raise ValueError(_shape_error(f"cost {name!r}", value.shape, node))
        self._costs[name] = _Term(name, value, mask)

    def dependencies(self) -> dict[str, list[str]]:
        """For each cost, the stochastic nodes it was found to depend on (ancestors included)."""
        nodes = list(self._nodes.values())
        return {name: [nodes[i].name for i in _bits(term.mask)] for name, term in self._costs.items()}

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
            everyone = sum(node.bit for node in nodes)
            terms = [_Term(t.name, t.value, t.mask | everyone) for t in terms]
            shape = torch.broadcast_shapes(*[t.value.shape for t in terms], *[node.shape for node in nodes])
            terms = [_Term(t.name, t.value.expand(shape), t.mask) for t in terms]
        terms = self._apply_vimco(terms, nodes)
        total = terms[0].value.new_zeros(())
        for term in terms:
            total = total + self._reduce(self._weighted(term.value, term.mask, nodes), term.mask, nodes)
        for node in nodes:
            total = total + self._node_terms(node, terms, nodes)
        self._surrogate = total
        return total

    def _plates(self, mask: int, ndim: int, nodes: list[_Node]) -> dict[int, str]:
        plates: dict[int, str] = {}
        for index in _bits(mask):
            node = nodes[index]
            if node.plate is None or len(node.shape) > ndim:  # no plate, or collapsed (VIMCO)
                continue
            dim = ndim - len(node.shape)
            if plates.setdefault(dim, node.plate) != node.plate:
                raise ValueError(
                    f"node {node.name!r}'s plate lines up with a plate of another kind at dimension {dim}; give "
                    "one of them a different num_samples or batch shape"
                )
        return plates

    def _reduce(self, value: Tensor, mask: int, nodes: list[_Node]) -> Tensor:
        """Mean over sampled plates, sum over everything else (weighted plates, batch)."""
        plates = self._plates(mask, value.dim(), nodes)
        means = [dim for dim, how in plates.items() if how == "mean"]
        if means:
            value = value.mean(means, keepdim=True)
        return value.sum()

    def _reduce_to(self, value: Tensor, shape: torch.Size, mask: int, nodes: list[_Node]) -> Tensor:
        """Reduce a downstream cost to a node's ``(plate, *batch)`` shape (plates: mean; else sum)."""
        plates = self._plates(mask, value.dim(), nodes)
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

    def _weighted(self, value: Tensor, mask: int, nodes: list[_Node]) -> Tensor:
        """DiCE: ``box(sum of score-function log-probs) * prod(exact / unordered-set weights) * value``."""
        log_prob = None
        for index in _bits(mask):
            node = nodes[index]
            if node.boxed:
                lp = node.log_prob
                if lp.dim() > value.dim():  # a collapsed plate (VIMCO): the joint log-prob of all samples
                    lp = lp.sum(list(range(lp.dim() - value.dim())))
                log_prob = lp if log_prob is None else log_prob + lp
            elif node.weight is not None:
                value = value * node.weight
        return value if log_prob is None else score_function_surrogate(log_prob, value)

    def _values(self, node: _Node, terms: list[_Term], nodes: list[_Node]) -> Tensor:
        """Each sample's downstream cost (detached), shape ``node.shape``: what the node's baseline tracks."""
        values = terms[0].value.new_zeros(node.shape)
        keep = node.ancestors | node.bit
        for term in terms:
            if not term.mask & node.bit:
                continue
            value = term.value.detach()
            for index in _bits(term.mask & ~keep):
                if nodes[index].weight is not None:
                    value = value * nodes[index].weight.detach()
            values = values + self._reduce_to(value, node.shape, term.mask, nodes)
        return values

    def _apply_vimco(self, terms: list[_Term], nodes: list[_Node]) -> list[_Term]:
        for node in nodes:
            if node.kind != "vimco":
                continue
            mine = [t for t in terms if t.mask & node.bit]
            if not mine:
                continue
            allowed = node.ancestors | node.bit
            log_weight = mine[0].value.new_zeros(node.shape)
            mask = 0
            for term in mine:
                if term.mask & ~allowed:
                    later = [nodes[i].name for i in _bits(term.mask & ~allowed)]
                    raise ValueError(
                        f"cost {term.name!r} depends on VIMCO node {node.name!r} and on {later}, which are not its "
                        "ancestors; VIMCO needs the costs of its samples to be log-weights of that node alone"
                    )
                if term.value.dim() != len(node.shape):
                    raise ValueError(_shape_error(f"cost {term.name!r}", term.value.shape, node))
                log_weight = log_weight - term.value
                mask |= term.mask
            k = node.shape[0]
            bound = torch.logsumexp(log_weight, 0) - math.log(k)
            # L_{-k}: w_k replaced by the geometric mean of the others (Mnih & Rezende, 2016, eq. 10).
            lw = log_weight.detach()
            others = (lw.sum(0, keepdim=True) - lw) / (k - 1)
            eye = torch.eye(k, dtype=torch.bool, device=lw.device).reshape((k, k) + (1,) * (lw.dim() - 1))
            replaced = torch.where(eye, others.unsqueeze(1), lw.unsqueeze(0))  # row j: w_j replaced
            node.extra["leave_one_out_bound"] = torch.logsumexp(replaced, 1) - math.log(k)
            terms = [t for t in terms if not t.mask & node.bit] + [_Term(f"vimco:{node.name}", -bound, mask)]
        return terms

    def _node_terms(self, node: _Node, terms: list[_Term], nodes: list[_Node]) -> Tensor:
        """The node's own zero-valued terms: baselines, injected gradients, auxiliary losses."""
        zero = terms[0].value.new_zeros(())
        upstream = node.ancestors

        def finish(term: Tensor, own_plate: bool) -> Tensor:
            term = self._weighted(term, upstream, nodes)
            return self._reduce(term, upstream | (node.bit if own_plate else 0), nodes)

        if node.kind == "score_function":
            if isinstance(node.baseline, NoBaseline) or not any(t.mask & node.bit for t in terms):
                return zero
            values = self._values(node, terms, nodes)
            if node.baseline.uses_other_samples and (node.plate is None or node.shape[0] < 2):
                raise ValueError(
                    f"node {node.name!r}: baseline {node.baseline!r} uses the other samples of the node's plate; "
                    "give the node num_samples >= 2"
                )
            # The baseline protocol takes (num_samples, *batch_shape): give plate-less nodes a plate of one.
            own_plate = node.plate is not None
            baseline, fit_loss = node.baseline(
                values if own_plate else values.unsqueeze(0), context=node.context
            )
            baseline = check_baseline(
                baseline, values if own_plate else values.unsqueeze(0), f"node {node.name!r}: baseline"
            )
            if baseline is not None and not own_plate:
                baseline = torch.broadcast_to(baseline, (1, *node.shape)).squeeze(0)
            total = zero
            if baseline is not None:
                total = finish((1.0 - magic_box(node.log_prob)) * baseline.detach(), own_plate=True)
            if fit_loss is not None:
                total = total + zero_forward(fit_loss.sum())
            return total
        if node.kind == "vimco":
            if "leave_one_out_bound" not in node.extra:
                return zero
            baseline = -node.extra["leave_one_out_bound"]
            return finish((1.0 - magic_box(node.log_prob)) * baseline, own_plate=True)
        if node.kind == "unordered_set":
            values = self._values(node, terms, nodes)
            p = node.log_prob.detach().exp()
            # B_s = sum_{s'} p(s') R^{D\s}(S, s') f(s')  (Kool et al., 2020, eq. 18)
            baseline = (node.extra["second"] * (p * values).unsqueeze(0)).sum(1)
            return finish((1.0 - magic_box(node.log_prob)) * baseline * node.weight.detach(), own_plate=True)
        if node.kind in ("arm", "disarm"):
            values = self._values(node, terms, nodes)
            pairs = node.extra["pairs"]
            logits = node.extra["logits"]
            difference = values[:pairs] - values[pairs:]
            batch_ndim = len(node.dist.batch_shape)
            difference = difference.reshape(difference.shape + (1,) * (logits.dim() - batch_ndim))
            gradient = (difference * node.extra["weight"]).mean(0)
            return finish(inject_gradient(logits, gradient, batch_ndim), own_plate=False)
        if node.kind in ("relax", "rebar"):
            term, auxiliary = self._relax_term(node, self._values(node, terms, nodes))
            return finish(term, own_plate=False) + auxiliary
        return zero

    def _relax_term(self, node: _Node, values: Tensor) -> tuple[Tensor, Tensor]:
        config: RELAX = node.config
        logits = node.extra["logits"]
        u, hard = node.extra["u"], node.extra["hard"]
        n = hard.shape[0]
        batch_ndim = len(node.dist.batch_shape)
        values = values if node.plate is not None else values.unsqueeze(0)  # (n, *batch)
        leaf = logits.detach().requires_grad_(True)
        temperature = config.log_temperature.exp()
        with torch.enable_grad():
            z = logistic_logits(leaf, u)
            z_tilde = conditional_logistic_logits(leaf, hard, uniform_like(u.shape, u))
            c_z = self._control(config, torch.sigmoid(z / temperature), node, n)
            c_tilde = self._control(config, torch.sigmoid(z_tilde / temperature), node, n)
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

    @staticmethod
    def _control(config: RELAX, relaxed: Tensor, node: _Node, n: int) -> Tensor:
        out = config.control_value(relaxed, node.context)
        expected = torch.Size([n]) + node.dist.batch_shape
        if out.shape != expected and out.shape == expected + (1,):
            out = out.squeeze(-1)
        if out.shape != expected:
            raise ValueError(
                f"node {node.name!r}: the {config.name} control returned shape {tuple(out.shape)}, expected "
                f"{tuple(expected)} = (num_samples, *batch_shape)"
            )
        return out


def graph(credit_assignment: bool = True) -> StochasticGraph:
    """A new stochastic computation graph, used as ``with sg.graph() as g: ...; loss = g.surrogate()``.

    Args:
        credit_assignment: weight each score-function node only by the costs that depend on it
            (default). ``False`` gives the plain estimator with the total cost, for comparison.
    """
    return StochasticGraph(credit_assignment=credit_assignment)
