"""Tiny causal models for the sequence tests: a GRU language model, with and without a KV-cache."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class TinyRNN(nn.Module):
    """``model(ids (B, T)) -> logits (B, T, V)``, nothing else: generation re-runs the prefix."""

    def __init__(self, vocab: int = 3, hidden: int = 8, max_context: int | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.cell = nn.GRUCell(hidden, hidden)
        self.head = nn.Linear(hidden, vocab)
        self.h0 = nn.Parameter(torch.zeros(hidden))
        if max_context is not None:
            self.max_context = max_context

    def run(self, ids: Tensor, mask: Tensor | None, h: Tensor | None) -> tuple[Tensor, Tensor]:
        h = self.h0.expand(ids.shape[0], -1) if h is None else h
        outs = []
        for t in range(ids.shape[1]):
            new = self.cell(self.embed(ids[:, t]), h)
            h = new if mask is None else torch.where(mask[:, t : t + 1], new, h)
            outs.append(self.head(h))
        return torch.stack(outs, 1), h

    def forward(self, ids: Tensor) -> Tensor:
        return self.run(ids, None, None)[0]


class TinyRNNCached(TinyRNN):
    """The same model with the incremental-decoding protocol (the hidden state is the cache)."""

    def decode(self, ids: Tensor, attention_mask: Tensor, cache: Any | None) -> tuple[Tensor, Any]:
        return self.run(ids, attention_mask[:, -ids.shape[1] :], cache)

    def select_cache(self, cache: Tensor, index: Tensor) -> Tensor:
        return cache[index]
