"""The one registry of estimators: names, what each needs of a distribution, and what it promises.

``expectation`` and the stochastic graph resolve names here, ask here whether an estimator applies
to a distribution (and get the one error message when it does not), and refuse here the arguments
an estimator would ignore. ``estimator="auto"`` lists its candidates from it. A new estimator is
one file plus one :class:`Spec` line below.

Capabilities (``Spec.requires``):

==================  ===========================================================================
``log_prob``        ``dist.log_prob`` (every score-function estimator)
``rsample``         ``dist.has_rsample`` (pathwise)
``support``         a finite ``enumerate_support`` (exact), also through ``Independent``
``bernoulli``       ``Bernoulli`` or ``Independent(Bernoulli)`` (ARM, DisARM, RELAX, REBAR)
``relaxable``       ``Bernoulli`` or ``OneHotCategorical`` (Gumbel-softmax, straight-through)
``mvd_family``      ``Normal``, ``Bernoulli``, ``Categorical`` or ``Independent`` of them
``categorical``     ``Categorical`` (unordered set)
==================  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch.distributions import Bernoulli, Categorical, Distribution, Normal, OneHotCategorical

from scoregrad.estimators.base import base_distribution
from scoregrad.sampling import IID

__all__ = ["Spec", "SPECS", "spec_of", "missing", "require", "check_sampler", "applicable"]

Unbiased = Literal["every order", "first order", "biased"]


@dataclass(frozen=True)
class Spec:
    """What an estimator needs and promises.

    Attributes:
        name: the registry name (also the estimator object's ``name``).
        requires: capabilities the distribution must have (see the module docstring).
        unbiased: which derivatives stay unbiased: ``"every order"``, ``"first order"`` or ``"biased"``.
        uses_sampler: draws through ``sampler=`` (else a non-iid sampler is refused, not ignored).
        takes_baseline: accepts ``baseline=``.
        even_samples: ``num_samples`` counts function evaluations in antithetic pairs.
        graph_only: exists only as a stochastic-graph node (VIMCO, RELAX, REBAR, unordered set).
        differentiable_f: needs a cost that carries a gradient back to its input.
    """

    name: str
    requires: tuple[str, ...]
    unbiased: Unbiased
    uses_sampler: bool = False
    takes_baseline: bool = False
    even_samples: bool = False
    graph_only: bool = False
    differentiable_f: bool = False


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("score_function", ("log_prob",), "every order", uses_sampler=True, takes_baseline=True),
        Spec("pathwise", ("rsample",), "every order", uses_sampler=True, differentiable_f=True),
        Spec("measure_valued", ("mvd_family",), "first order"),
        Spec("exact", ("support",), "every order"),
        Spec("arm", ("bernoulli",), "first order", even_samples=True),
        Spec("disarm", ("bernoulli",), "first order", even_samples=True),
        Spec("gumbel_softmax", ("relaxable",), "biased", differentiable_f=True),
        Spec("straight_through", ("relaxable",), "biased", differentiable_f=True),
        Spec("vimco", ("log_prob",), "every order", graph_only=True),
        Spec("relax", ("bernoulli",), "first order", graph_only=True),
        Spec("rebar", ("bernoulli",), "first order", graph_only=True),
        Spec("unordered_set", ("categorical",), "first order", graph_only=True),
        # Chooses among the applicable unbiased ones (first order at least; see estimators/auto.py).
        Spec("auto", (), "first order"),
    )
}


def spec_of(estimator: Any) -> Spec | None:
    """The spec of an estimator object (by its ``name``), or None for a user-defined one."""
    return SPECS.get(getattr(estimator, "name", None))


_HINTS = {
    "rsample": "Use 'score_function' (any distribution), 'exact' (small discrete support) or "
    "'gumbel_softmax' (biased relaxation)",
    "support": "Use 'score_function' or 'pathwise'",
    "bernoulli": "Use 'score_function' for other distributions",
    "relaxable": "(for a Categorical, use OneHotCategorical with the same logits: its samples can be relaxed)",
    "mvd_family": "Use 'score_function' (any distribution) or 'pathwise'",
}


def missing(capability: str, dist: Distribution) -> str | None:
    """Why ``dist`` lacks ``capability`` (a phrase for an error message), or None if it has it."""
    name, base = type(dist).__name__, base_distribution(dist)[0]
    inside = f" (inside {name})" if base is not dist else ""
    if capability == "log_prob":
        has = type(dist).log_prob is not Distribution.log_prob
        return None if has else f"log_prob; {name} has none"
    if capability == "rsample":
        return None if dist.has_rsample else f"rsample; {name} has none"
    if capability == "support":
        return (
            None
            if base.has_enumerate_support
            else f"enumerate_support; {type(base).__name__}{inside} has none"
        )
    if capability == "bernoulli":
        ok = isinstance(base, Bernoulli)
        return None if ok else f"Bernoulli variables (or Independent(Bernoulli)); got {name}{inside}"
    if capability == "relaxable":
        ok = isinstance(base, (Bernoulli, OneHotCategorical))
        return None if ok else f"Bernoulli or OneHotCategorical samples to relax; got {name}"
    if capability == "mvd_family":
        ok = isinstance(base, (Normal, Bernoulli, Categorical))
        return None if ok else f"Normal, Bernoulli or Categorical (or Independent of them); got {name}"
    if capability == "categorical":
        return None if type(dist) is Categorical else f"a Categorical; got {name}"
    raise ValueError(f"unknown capability {capability!r}")


def require(spec: Spec | str, dist: Distribution, where: str = "") -> None:
    """Raise the one ``TypeError`` for an estimator that cannot handle ``dist``.

    Args:
        spec: the estimator's spec or name.
        dist: the distribution.
        where: a prefix naming the caller, e.g. ``"node 'z': "``.
    """
    spec = SPECS[spec] if isinstance(spec, str) else spec
    for capability in spec.requires:
        reason = missing(capability, dist)
        if reason is not None:
            hint = _HINTS.get(capability)
            raise TypeError(f"{where}estimator {spec.name!r} needs {reason}" + (f". {hint}" if hint else ""))


def check_sampler(spec: Spec | None, sampler: Any) -> None:
    """Refuse a non-iid sampler for an estimator that draws its own samples (it would be ignored)."""
    if spec is not None and not spec.uses_sampler and not isinstance(sampler, IID):
        raise ValueError(
            f"sampler {sampler!r} would be ignored: estimator {spec.name!r} draws its own samples; leave sampler='iid'"
        )


def applicable(dist: Distribution, num_samples: int, *, include_biased: bool = False) -> list[Spec]:
    """The registered estimators usable with ``expectation`` on ``dist`` with ``num_samples`` samples.

    Differentiability of ``f`` is not known here; ``estimator="auto"`` checks it on a trial call.
    """
    out = []
    for spec in SPECS.values():
        if spec.graph_only or spec.name == "auto" or (spec.unbiased == "biased" and not include_biased):
            continue
        if spec.even_samples and num_samples % 2:
            continue
        if all(missing(c, dist) is None for c in spec.requires):
            out.append(spec)
    return out
