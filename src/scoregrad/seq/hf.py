"""Adapter for Hugging Face ``transformers`` causal LMs (the ``[hf]`` extra).

:class:`HFCausalLM` wraps any ``AutoModelForCausalLM``-style model so that ``scoregrad.seq`` sees
``model(ids) -> logits`` and the incremental-decoding protocol
(:class:`~scoregrad.seq.SupportsKVCache`) backed by the model's own key/value cache. Position ids
are derived from the attention mask, so left-padded prompts decode exactly as unpadded ones. This
module imports nothing from ``transformers``: the wrapped model brings it.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn

__all__ = ["HFCausalLM"]


class HFCausalLM(nn.Module):
    """``scoregrad.seq`` view of a Hugging Face causal LM (weights shared, not copied).

    Args:
        model: e.g. ``GPT2LMHeadModel(GPT2Config(...))``; anything whose forward takes
            ``input_ids``, ``attention_mask``, ``position_ids`` and a cache, and returns ``.logits``
            and ``.past_key_values``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, nn.Module) or not hasattr(model, "config"):
            raise TypeError(f"model: expected a transformers PreTrainedModel, got {type(model).__name__}")
        self.model = model
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        config = model.config
        for name in ("n_positions", "max_position_embeddings"):
            if isinstance(getattr(config, name, None), int):
                self.max_context = getattr(config, name)
                break

    def forward(self, ids: Tensor) -> Tensor:
        """``ids (B, T) -> logits (B, T, V)`` (no padding mask: every token is attended)."""
        return self.model(input_ids=ids, use_cache=False).logits

    def decode(self, ids: Tensor, attention_mask: Tensor, cache: Any | None) -> tuple[Tensor, Any]:
        """Logits of the new tokens ``ids (B, t)`` given the cache; ``attention_mask (B, T_past + t)``."""
        mask = attention_mask.long()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kw: cache},
        )
        return out.logits, getattr(out, self._cache_kw)  # transformers >= 5 names it "cache"

    def select_cache(self, cache: Any, index: Tensor) -> Any:
        """Rows ``index`` of the cache (transformers' ``reorder_cache``, which works out of place on tensors)."""
        cache.reorder_cache(index)
        return cache
