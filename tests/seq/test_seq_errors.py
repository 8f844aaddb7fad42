"""Bad input to scoregrad.seq fails at the door with an error that names the argument."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scoregrad import seq
from tests.seq.models import TinyRNN


class FlatLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))

    def forward(self, ids):
        return self.w.expand(ids.shape[0], 3)  # (B, V): not (B, T, V)


def test_generate_refuses_bad_input():
    model = TinyRNN(vocab=3)
    with pytest.raises(ValueError, match="model: expected logits of shape"):
        seq.generate(FlatLogits(), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="prompts: the list is empty"):
        seq.generate(model, [])
    with pytest.raises(TypeError, match=r"prompts\[1\]: expected a 1-D LongTensor"):
        seq.generate(model, [torch.tensor([1]), torch.tensor([1.0])])
    with pytest.raises(ValueError, match=r"prompts\[0\]: empty"):
        seq.generate(model, [torch.tensor([], dtype=torch.long)])
    with pytest.raises(ValueError, match="eos_id: 7 is outside the model's vocabulary of 3"):
        seq.generate(model, torch.tensor([[1]]), eos_id=7)
    with pytest.raises(ValueError, match="prompts: the longest prompt .* exceeds the model's context of 4"):
        seq.generate(TinyRNN(vocab=3, max_context=4), torch.tensor([[1, 2, 1]]), max_new_tokens=2)
    for kwargs, name in [({"num_samples": 0}, "num_samples"), ({"max_new_tokens": 0}, "max_new_tokens"),
                         ({"temperature": -1.0}, "temperature"), ({"top_k": -1}, "top_k"), ({"top_p": 0.0}, "top_p"),
                         ({"pad_id": -1}, "pad_id"), ({"graph_max_tokens": 0}, "graph_max_tokens")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"^{name}:"):
            seq.generate(model, torch.tensor([[1]]), **kwargs)


def test_advantages_refuse_bad_input():
    g = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="rewards: non-finite value inf at index 2"):
        seq.advantages(torch.tensor([1.0, 0.0, float("inf"), 0.0]), g)
    with pytest.raises(ValueError, match="group: method='grpo' needs at least 2 completions per prompt"):
        seq.advantages(torch.tensor([1.0, 0.0]), torch.tensor([0, 1]), "grpo")
    with pytest.raises(ValueError, match="method: expected one of"):
        seq.advantages(torch.zeros(4), g, "ppo")
    with pytest.raises(ValueError, match="group: expected a \\(4,\\) LongTensor"):
        seq.advantages(torch.zeros(4), torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="rewards: expected a 1-D float tensor"):
        seq.advantages(torch.zeros(4, dtype=torch.long), g)
    with pytest.raises(ValueError, match="baseline_rewards: method='scst' needs"):
        seq.advantages(torch.zeros(4), g, "scst")
    with pytest.raises(ValueError, match="baseline_rewards: only used by method='scst'"):
        seq.advantages(torch.zeros(4), g, "rloo", baseline_rewards=torch.zeros(2))


def test_policy_loss_refuses_bad_input():
    model = TinyRNN(vocab=3)
    r = seq.generate(model, torch.tensor([[1]]), 2, 2)
    adv = torch.zeros(2)
    for kwargs, name in [({"clip": (0.2,)}, "clip"), ({"ratio": "step"}, "ratio"), ({"aggregate": "mean"}, "aggregate"),
                         ({"kl_coef": 0.1}, "ref_model"), ({"ref_model": model}, "ref_model"),
                         ({"kl_coef": -1.0}, "kl_coef")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"^{name}:"):
            seq.policy_loss(model, r, adv, **kwargs)
    with pytest.raises(ValueError, match="advantages: expected a float tensor of shape \\(2,\\)"):
        seq.policy_loss(model, r, torch.zeros(3))
    with pytest.raises(TypeError, match="rollout: expected a seq.Rollout"):
        seq.policy_loss(model, {"completions": 1}, adv)


def test_train_refuses_bad_input():
    model = TinyRNN(vocab=3)
    prompts = [torch.tensor([1])] * 8
    with pytest.raises(ValueError, match="num_samples: method='grpo' uses a group baseline"):
        seq.train(
            model, lambda p, c: [0.0] * len(c), prompts, method="grpo", num_samples=1, steps=1, progress=False
        )
    with pytest.raises(ValueError, match="method: expected one of"):
        seq.train(model, lambda p, c: [0.0] * len(c), prompts, method="ppo", steps=1, progress=False)
    with pytest.raises(TypeError, match="unknown SeqConfig field"):
        seq.train(model, lambda p, c: [0.0] * len(c), prompts, steps=1, lr=1.0)
    with pytest.raises(TypeError, match="reward_fn: expected a callable"):
        seq.train(model, 3, prompts, steps=1, progress=False)
    with pytest.raises(ValueError, match="prompts: the list is empty"):
        seq.train(model, lambda p, c: [0.0] * len(c), [], steps=1, progress=False)
    with pytest.raises(ValueError, match="prompts_per_step: 8 is more than the 2 prompts"):
        seq.train(model, lambda p, c: [0.0] * len(c), prompts[:2], steps=1, progress=False)
    with pytest.raises(ValueError, match="sampling_graph: needs updates_per_generation == 1"):
        seq.train(model, lambda p, c: [0.0] * len(c), prompts, steps=1, updates_per_generation=2,
                  sampling_graph=True, progress=False)  # fmt: skip
