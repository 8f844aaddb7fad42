"""Batched sampling from any autoregressive model, with log-probs under the exact sampling law.

A completion is one draw from a product of categoricals, ``p(y | x) = prod_t p(y_t | x, y_<t)``,
so the score-function estimator of :mod:`scoregrad.surrogate` applies to it as to any other
sample. Two things make that estimator exact here:

* the log-prob recorded for each token is that of the distribution the token was *drawn* from
  (after temperature, top-k and top-p), and :func:`token_log_probs` recomputes it with the same
  processing, so the importance ratio is 1 on-policy;
* every completion of a prompt is drawn independently, so a leave-one-out baseline is unbiased.

A model needs only ``model(ids) -> logits`` with ``ids (B, T)`` and ``logits (B, T, V)``: generation
then re-runs the whole prefix at each step. A model may also implement the incremental-decoding
protocol :class:`SupportsKVCache` (``decode`` and ``select_cache``); generation then encodes each
prompt once, copies its cache to the prompt's ``num_samples`` completions, and feeds one token per
step. :class:`scoregrad.seq.hf.HFCausalLM` implements it for Hugging Face causal LMs.

Prompts of different lengths are left-padded with ``pad_id``. A model that implements the
protocol receives an attention mask and never sees the padding; a plain ``model(ids)`` sees it, in
generation and in the loss alike, so its policy is the one conditioned on the padded prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Rollout", "SupportsKVCache", "generate", "token_log_probs", "process_logits", "pad_prompts"]


@runtime_checkable
class SupportsKVCache(Protocol):
    """Incremental decoding: what a model implements to be decoded with a key/value cache."""

    def decode(self, ids: Tensor, attention_mask: Tensor, cache: Any | None) -> tuple[Tensor, Any]:
        """Logits for new tokens given the cache of the earlier ones.

        Args:
            ids: ``(B, t)`` the new tokens (the whole left-padded prompt when ``cache`` is None).
            attention_mask: ``(B, T_past + t)`` bool, False on left padding.
            cache: what the previous call returned, or None.

        Returns:
            ``(logits (B, t, V), new_cache)``.
        """
        ...

    def select_cache(self, cache: Any, index: Tensor) -> Any:
        """The cache of rows ``index`` (``(B',)`` long) of the batch, in that order."""
        ...


@dataclass
class Rollout:
    """Completions drawn by :func:`generate`, ``N = B * num_samples`` rows, ``L = max_new_tokens``.

    Attributes:
        completions: ``(N, L)`` long, ``pad_id`` after eos.
        mask: ``(N, L)`` bool, True on generated tokens (eos included).
        log_probs: ``(N, L)`` float, log-prob of each token under the sampling law (no grad; 0 off mask).
        group: ``(N,)`` long, index of the prompt each completion came from.
        truncated: ``(N,)`` bool, True where no eos appeared within ``L`` tokens.
        prompt_ids: ``(N, P)`` long, the prompts left-padded with ``pad_id``.
        prompt_mask: ``(N, P)`` bool, False on the left padding.
        temperature, top_k, top_p: the sampling settings (the loss re-applies them).
        pad_id, eos_id: as given to :func:`generate`.
        sampled_log_probs: ``(N, L)`` the same log-probs *with* their autograd graph when
            ``generate(..., keep_graph=True)``; :func:`~scoregrad.seq.policy_loss` then skips its
            forward pass. None otherwise.
        sampled_entropy: ``(N, L)`` per-token entropy of the sampling law, with graph (or None).
    """

    completions: Tensor
    mask: Tensor
    log_probs: Tensor
    group: Tensor
    truncated: Tensor
    prompt_ids: Tensor
    prompt_mask: Tensor
    temperature: float
    top_k: int
    top_p: float
    pad_id: int
    eos_id: int | None
    sampled_log_probs: Tensor | None = None
    sampled_entropy: Tensor | None = None
    model_version: tuple[int, ...] | None = None

    @property
    def num_completions(self) -> int:
        return self.completions.shape[0]

    @property
    def lengths(self) -> Tensor:
        """``(N,)`` number of generated tokens (eos included)."""
        return self.mask.sum(-1)

    def select(self, index: Tensor) -> Rollout:
        """The rollout restricted to rows ``index`` (graphs are kept, groups keep their ids)."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Rollout(
            completions=self.completions[index],
            mask=self.mask[index],
            log_probs=self.log_probs[index],
            group=self.group[index],
            truncated=self.truncated[index],
            prompt_ids=self.prompt_ids[index],
            prompt_mask=self.prompt_mask[index],
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            pad_id=self.pad_id,
            eos_id=self.eos_id,
            sampled_log_probs=pick(self.sampled_log_probs),
            sampled_entropy=pick(self.sampled_entropy),
            model_version=self.model_version,
        )


def parameter_version(model: nn.Module) -> tuple[int, ...]:
    """Autograd's in-place version counters of the parameters: they change at every optimiser step.

    Used to tell whether a rollout is still on-policy (then the ratio is the magic box, exactly 1);
    the model's ``id`` comes first so that another model is never mistaken for this one.
    """
    return (id(model), *(p._version for p in model.parameters()))


def _max_context(model: nn.Module) -> int | None:
    for name in ("max_context", "block_size"):
        value = getattr(model, name, None)
        if isinstance(value, int):
            return value
    config = getattr(model, "config", None)
    for name in ("block_size", "n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def pad_prompts(
    prompts: Sequence[Tensor] | Tensor, pad_id: int, device: torch.device | None = None
) -> tuple[Tensor, Tensor]:
    """Left-pad a list of 1-D LongTensors (or check a ``(B, T)`` LongTensor): ``(ids, mask)``, both ``(B, P)``."""
    if isinstance(prompts, Tensor):
        if prompts.dim() != 2 or prompts.dtype != torch.long:
            raise ValueError(
                f"prompts: expected a (B, T) LongTensor, got {prompts.dtype} of shape {tuple(prompts.shape)}"
            )
        if prompts.shape[0] == 0 or prompts.shape[1] == 0:
            raise ValueError(f"prompts: empty, shape {tuple(prompts.shape)}")
        ids = prompts.to(device) if device is not None else prompts
        return ids, torch.ones_like(ids, dtype=torch.bool)
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts: expected a list of 1-D LongTensors or a (B, T) LongTensor, got {type(prompts).__name__}"
        )
    if len(prompts) == 0:
        raise ValueError("prompts: the list is empty")
    for i, p in enumerate(prompts):
        if not isinstance(p, Tensor) or p.dim() != 1 or p.dtype != torch.long:
            raise TypeError(
                f"prompts[{i}]: expected a 1-D LongTensor, got {getattr(p, 'dtype', type(p).__name__)} "
                f"of shape {tuple(getattr(p, 'shape', ()))}"
            )
        if p.numel() == 0:
            raise ValueError(f"prompts[{i}]: empty prompt")
    width = max(p.numel() for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, width - p.numel() :] = p
        mask[i, width - p.numel() :] = True
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask


def process_logits(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """Log-probs of the sampling law: temperature, then top-k, then top-p (nucleus; Holtzman et al., 2020).

    Args:
        logits: ``(..., V)``.

    Returns:
        ``(..., V)`` normalised log-probs, ``-inf`` on the tokens that top-k/top-p removed. With
        ``temperature == 0`` the law is the argmax (log-prob 0 on it, ``-inf`` elsewhere).
    """
    if temperature == 0:
        best = logits.argmax(-1, keepdim=True)
        out = torch.full_like(logits, float("-inf"))
        return out.scatter(-1, best, 0.0)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = logits.detach().topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits.detach() < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.detach().sort(-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # keep the smallest prefix whose mass reaches top_p: drop a token when the mass before it already does
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.log_softmax(-1)


def _check_logits(logits: Tensor, batch: int, length: int, what: str = "model") -> None:
    if (
        not isinstance(logits, Tensor)
        or logits.dim() != 3
        or logits.shape[0] != batch
        or logits.shape[1] != length
    ):
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(
            f"{what}: expected logits of shape (B, T, V) = ({batch}, {length}, V) from model(ids), got {shape}"
        )
    if not logits.is_floating_point():
        raise TypeError(f"{what}: expected floating-point logits, got {logits.dtype}")


def _forward(model: nn.Module, ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Logits ``(B, T, V)`` for the whole of ``ids`` (a single call, no cache kept)."""
    logits = model.decode(ids, attention_mask, None)[0] if isinstance(model, SupportsKVCache) else model(ids)
    _check_logits(logits, ids.shape[0], ids.shape[1])
    return logits


def _validate_sampling(temperature: float, top_k: int, top_p: float) -> None:
    if not isinstance(temperature, (int, float)) or temperature < 0 or temperature != temperature:
        raise ValueError(f"temperature: expected a float >= 0, got {temperature!r}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise ValueError(f"top_k: expected an int >= 0 (0: off), got {top_k!r}")
    if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a float in (0, 1], got {top_p!r}")


def _is_count(value: Any, smallest: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= smallest


def _check_generate_args(
    model: Any,
    num_samples: int,
    max_new_tokens: int,
    pad_id: int,
    eos_id: int | None,
    graph_max_tokens: int | None,
) -> None:
    if not isinstance(model, nn.Module) and not callable(model):
        raise TypeError(
            f"model: expected an nn.Module (or callable) ids -> logits, got {type(model).__name__}"
        )
    if not _is_count(num_samples, 1):
        raise ValueError(f"num_samples: expected an int >= 1, got {num_samples!r}")
    if not _is_count(max_new_tokens, 1):
        raise ValueError(f"max_new_tokens: expected an int >= 1, got {max_new_tokens!r}")
    if not _is_count(pad_id, 0):
        raise ValueError(f"pad_id: expected an int >= 0, got {pad_id!r}")
    if eos_id is not None and not _is_count(eos_id, 0):
        raise ValueError(f"eos_id: expected None or an int >= 0, got {eos_id!r}")
    if graph_max_tokens is not None and not _is_count(graph_max_tokens, 1):
        raise ValueError(f"graph_max_tokens: expected None or an int >= 1, got {graph_max_tokens!r}")


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _prompt_rows(
    model: Any,
    prompts: Sequence[Tensor] | Tensor,
    num_samples: int,
    max_new_tokens: int,
    pad_id: int,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(prompt_ids, prompt_mask, group)``: the left-padded prompts repeated ``num_samples`` times, ``(N, P)``."""
    prompt_ids, prompt_mask = pad_prompts(prompts, pad_id, device)
    context = _max_context(model)
    if context is not None and prompt_ids.shape[1] + max_new_tokens > context:
        raise ValueError(
            f"prompts: the longest prompt ({prompt_ids.shape[1]} tokens) plus max_new_tokens ({max_new_tokens}) "
            f"exceeds the model's context of {context} tokens"
        )
    group = torch.arange(prompt_ids.shape[0], device=device).repeat_interleave(num_samples)
    return prompt_ids[group], prompt_mask[group], group


class _CachedDecoder:
    """Decodes a :class:`SupportsKVCache` model: each prompt encoded once, then one token per step."""

    def __init__(self, model: SupportsKVCache, prompt_ids: Tensor, prompt_mask: Tensor, num_samples: int):
        self.model, self.prompt_ids, self.prompt_mask = model, prompt_ids, prompt_mask
        self.num_samples, self.cache = num_samples, None

    def __call__(self, last: Tensor | None, generated: Tensor) -> Tensor:
        """Next-token logits ``(N, V)`` given the previous tokens ``last (N,)`` and ``generated`` (the mask so far)."""
        if self.cache is None:  # encode each prompt once, then copy its cache to its num_samples rows
            first = torch.arange(0, self.prompt_ids.shape[0], self.num_samples, device=self.prompt_ids.device)
            logits, cache = self.model.decode(self.prompt_ids[first], self.prompt_mask[first], None)
            _check_logits(logits, first.numel(), self.prompt_ids.shape[1])
            logits = logits[:, -1]
            if self.num_samples > 1:
                rows = torch.arange(first.numel(), device=first.device).repeat_interleave(self.num_samples)
                logits, cache = logits[rows], self.model.select_cache(cache, rows)
            self.cache = cache
            return logits
        attention = torch.cat([self.prompt_mask, generated], 1)
        logits, self.cache = self.model.decode(last.unsqueeze(-1), attention, self.cache)
        _check_logits(logits, last.shape[0], 1)
        return logits[:, -1]


class _PrefixDecoder:
    """Decodes a plain ``model(ids)``: re-runs the whole prefix at every step."""

    def __init__(self, model: Any, prompt_ids: Tensor):
        self.model, self.ids = model, prompt_ids

    def __call__(self, last: Tensor | None, generated: Tensor) -> Tensor:
        if last is not None:
            self.ids = torch.cat([self.ids, last.unsqueeze(-1)], 1)
        logits = self.model(self.ids)
        _check_logits(logits, *self.ids.shape)
        return logits[:, -1]


def _draw(log_p: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
    """One token per row of the (processed) log-probs ``(N, V)``: the argmax when ``temperature == 0``."""
    if temperature == 0:
        return log_p.argmax(-1)
    return torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(-1)


def _chosen(log_p: Tensor, token: Tensor, alive: Tensor, with_entropy: bool) -> tuple[Tensor, Tensor | None]:
    """``(N,)`` log-prob of each drawn token and, if asked, the entropy of its law; zero where not ``alive``."""
    chosen = log_p.gather(-1, token.unsqueeze(-1)).squeeze(-1)
    chosen = torch.where(alive, chosen, torch.zeros_like(chosen))
    if not with_entropy:
        return chosen, None
    p = log_p.exp()
    entropy = -(p * log_p.masked_fill(p == 0, 0)).sum(-1)
    return chosen, torch.where(alive, entropy, torch.zeros_like(entropy))


def _columns(steps: list[Tensor], width: int) -> Tensor:
    """Stack per-step ``(N,)`` values into ``(N, width)``, zero after the last step."""
    out = torch.stack(steps, 1)
    return F.pad(out, (0, width - out.shape[1])) if out.shape[1] < width else out


def generate(
    model: nn.Module,
    prompts: Sequence[Tensor] | Tensor,
    num_samples: int = 4,
    max_new_tokens: int = 16,
    temperature: float = 1.0,
    eos_id: int | None = None,
    pad_id: int = 0,
    *,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    keep_graph: bool = False,
    graph_max_tokens: int | None = None,
) -> Rollout:
    """Draw ``num_samples`` independent completions of each prompt.

    Args:
        model: ``model(ids (B, T)) -> logits (B, T, V)``; optionally :class:`SupportsKVCache`.
        prompts: a list of ``B`` 1-D LongTensors (lengths may differ; left-padded) or a ``(B, T)`` LongTensor.
        num_samples: completions per prompt ``G``; rows ``i*G ... i*G+G-1`` belong to prompt ``i``.
        max_new_tokens: ``L``, the width of the completions.
        temperature: divides the logits; 0 is greedy decoding (log-probs 0).
        eos_id: a sequence stops after this token (kept, with ``mask`` True); None: never stops.
        pad_id: fills the left padding of prompts and the completions after eos.
        top_k: keep the ``k`` most likely tokens (0: all).
        top_p: keep the smallest set of tokens with mass ``>= top_p`` (1: all).
        generator: RNG for the draws (default: torch's global one).
        keep_graph: keep the autograd graph of the log-probs (``rollout.sampled_log_probs``), so an
            on-policy loss needs no second forward pass; costs the activations' memory.
        graph_max_tokens: with ``keep_graph``, drop the graph when the batch's completions grow past
            this many tokens (the saved keys and values grow as the square of the length; the loss then
            runs its own forward pass). None: keep it whatever the length.

    Returns:
        A :class:`Rollout` with ``N = B * num_samples`` rows.
    """
    _check_generate_args(model, num_samples, max_new_tokens, pad_id, eos_id, graph_max_tokens)
    _validate_sampling(temperature, top_k, top_p)
    device = _device_of(model)
    prompt_ids, prompt_mask, group = _prompt_rows(model, prompts, num_samples, max_new_tokens, pad_id, device)
    if isinstance(model, SupportsKVCache):
        decoder = _CachedDecoder(model, prompt_ids, prompt_mask, num_samples)
    else:
        decoder = _PrefixDecoder(model, prompt_ids)
    version = parameter_version(model) if isinstance(model, nn.Module) else None
    n = group.shape[0]
    tokens = torch.full((n, max_new_tokens), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((n, max_new_tokens), dtype=torch.bool, device=device)
    alive = torch.ones(n, dtype=torch.bool, device=device)
    grad = keep_graph and torch.is_grad_enabled()
    chosen: list[Tensor] = []
    entropy: list[Tensor] = []
    token = None
    for t in range(max_new_tokens):
        if grad and graph_max_tokens is not None and t >= graph_max_tokens:
            grad, chosen, entropy = False, [c.detach() for c in chosen], []  # too long: drop the graph
        with torch.set_grad_enabled(grad):
            logits = decoder(token, mask[:, :t])
            if t == 0 and eos_id is not None and eos_id >= logits.shape[-1]:
                raise ValueError(
                    f"eos_id: {eos_id} is outside the model's vocabulary of {logits.shape[-1]} tokens"
                )
            log_p = process_logits(logits, temperature, top_k, top_p)
            token = torch.where(alive, _draw(log_p.detach(), temperature, generator), pad_id)
            lp, ent = _chosen(log_p, token, alive, with_entropy=grad)
        tokens[:, t], mask[:, t] = token, alive
        chosen.append(lp)
        if ent is not None:
            entropy.append(ent)
        if eos_id is not None:
            alive = alive & (token != eos_id)
            if not bool(alive.any()):
                break
    log_probs = _columns(chosen, max_new_tokens)
    graph = grad and log_probs.requires_grad
    return Rollout(
        completions=tokens,
        mask=mask,
        log_probs=log_probs.detach(),
        group=group,
        truncated=alive if eos_id is not None else torch.ones(n, dtype=torch.bool, device=device),
        prompt_ids=prompt_ids,
        prompt_mask=prompt_mask,
        temperature=float(temperature),
        top_k=top_k,
        top_p=float(top_p),
        pad_id=pad_id,
        eos_id=eos_id,
        sampled_log_probs=log_probs if graph else None,
        sampled_entropy=_columns(entropy, max_new_tokens) if graph else None,
        model_version=version,
    )


def token_log_probs(
    model: nn.Module, rollout: Rollout, with_entropy: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Teacher-forced log-probs of the rollout's tokens under ``model``: one forward pass.

    Applies the rollout's temperature/top-k/top-p, so on-policy the values equal ``rollout.log_probs``.
    The pass stops at the last column any completion reaches (completions that all end early cost
    only their length, not ``max_new_tokens``).

    Returns:
        ``(log_probs (N, L), entropy (N, L) or None)``, zero off ``rollout.mask``; with grad if enabled.
    """
    length = rollout.completions.shape[1]
    used = rollout.mask.any(0).nonzero()
    width = int(used.max()) + 1 if used.numel() else 1
    completions, mask = rollout.completions[:, :width], rollout.mask[:, :width]
    ids = torch.cat([rollout.prompt_ids, completions], 1)
    attention = torch.cat([rollout.prompt_mask, mask], 1)
    prompt_len = rollout.prompt_ids.shape[1]
    logits = _forward(model, ids, attention)[:, prompt_len - 1 : prompt_len + width - 1]
    log_p = process_logits(logits, rollout.temperature, rollout.top_k, rollout.top_p)
    chosen = log_p.gather(-1, completions.unsqueeze(-1)).squeeze(-1)
    chosen = torch.where(mask, chosen, torch.zeros_like(chosen))
    entropy = None
    if with_entropy:
        p = log_p.exp()
        entropy = -(p * log_p.masked_fill(p == 0, 0)).sum(-1)
        entropy = torch.where(mask, entropy, torch.zeros_like(entropy))
        entropy = F.pad(entropy, (0, length - width))
    return F.pad(chosen, (0, length - width)), entropy
