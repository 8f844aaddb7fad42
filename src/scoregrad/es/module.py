"""Search over an ``nn.Module``: its parameters as one flat vector, and whole-population forward passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["flat_parameters", "write_parameters", "unflatten", "population_call"]


def flat_parameters(module: nn.Module) -> Tensor:
    """The module's parameters concatenated in ``named_parameters()`` order, ``(D,)``, detached.

    Raises ``ValueError`` for a module without parameters and ``TypeError`` for mixed dtypes.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    params = list(module.parameters())
    if not params:
        raise ValueError(f"x0: the module {type(module).__name__} has no parameters to search over")
    dtypes = {p.dtype for p in params}
    if len(dtypes) > 1:
        raise TypeError(f"x0: the module's parameters must share one dtype, got {sorted(map(str, dtypes))}")
    return torch.cat([p.detach().reshape(-1) for p in params])


@torch.no_grad()
def write_parameters(module: nn.Module, vector: Tensor) -> None:
    """Copy a flat ``(D,)`` vector into the module's parameters, in place."""
    torch.nn.utils.vector_to_parameters(
        vector.detach().to(next(module.parameters()).dtype), module.parameters()
    )


def unflatten(module: nn.Module, X: Tensor) -> dict[str, Tensor]:
    """Rows of ``X`` ``(P, D)`` as a dict of parameters ``name -> (P, *shape)``."""
    out, offset = {}, 0
    for name, p in module.named_parameters():
        n = p.numel()
        out[name] = X[:, offset : offset + n].reshape(X.shape[0], *p.shape)
        offset += n
    if offset != X.shape[1]:
        raise ValueError(f"X has {X.shape[1]} columns but the module has {offset} parameters")
    return out


def population_call(
    module: nn.Module,
    X: Tensor,
    *args: Any,
    vectorize: bool = True,
    per_candidate: bool = False,
    **kwargs: Any,
) -> Tensor | Any:
    """``module(*args, **kwargs)`` for every candidate parameter vector, stacked: ``(P, *output)``.

    Uses ``torch.func.functional_call`` under ``torch.func.vmap`` (one batched forward pass); where
    vmap cannot apply (data-dependent control flow, in-place updates of buffers, ``.item()``), or
    with ``vectorize=False``, it loops over the candidates instead. Buffers are shared, not batched.

    Args:
        module: the network whose parameters ``X`` replaces.
        X: ``(P, D)`` candidates, e.g. ``es.ask()``.
        *args, **kwargs: the inputs, the same for every candidate; with ``per_candidate=True``
            each positional input has a leading axis ``P`` instead and candidate ``i`` gets row
            ``i`` (e.g. the observation of its own environment).
    """
    if X.dim() != 2:
        raise ValueError(f"X must be (P, D), got shape {tuple(X.shape)}")
    params = unflatten(module, X)
    buffers = dict(module.named_buffers())

    def one(p: dict[str, Tensor], *inputs: Any) -> Any:
        return torch.func.functional_call(module, {**p, **buffers}, inputs, kwargs)

    mapped = args if per_candidate else ()
    shared = () if per_candidate else args
    if per_candidate and any(a.shape[0] != X.shape[0] for a in mapped):
        raise ValueError(f"per_candidate=True: every input needs a leading axis of {X.shape[0]} (P)")
    if vectorize:
        try:
            return torch.func.vmap(lambda p, *m: one(p, *m, *shared))(params, *mapped)
        except (RuntimeError, ValueError, NotImplementedError):
            pass  # vmap cannot trace this module: fall back to the loop
    outputs = [
        one({k: v[i] for k, v in params.items()}, *(a[i] for a in mapped), *shared) for i in range(X.shape[0])
    ]
    return _stack(outputs)


def _stack(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, Tensor):
        return torch.stack(outputs)
    if isinstance(first, (tuple, list)):
        return type(first)(_stack([o[i] for o in outputs]) for i in range(len(first)))
    raise TypeError(f"population_call: cannot stack outputs of type {type(first).__name__}")


Evaluator = Callable[[Tensor], Tensor]
