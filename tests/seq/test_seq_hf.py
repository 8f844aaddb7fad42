"""The transformers adapter: KV-cache decoding equals full-prefix decoding; training runs through it."""

from __future__ import annotations

import pytest
import torch

from scoregrad import seq

transformers = pytest.importorskip("transformers")
from scoregrad.seq.hf import HFCausalLM  # noqa: E402


def _tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=11, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                     bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


def test_cached_decoding_of_left_padded_prompts_matches_each_prompt_alone():
    model = HFCausalLM(_tiny_gpt2())
    prompts = [torch.tensor([3, 4, 5]), torch.tensor([6])]
    r = seq.generate(
        model, prompts, num_samples=3, max_new_tokens=6, eos_id=2, generator=torch.Generator().manual_seed(0)
    )
    for i in range(r.num_completions):
        prompt = prompts[int(r.group[i])]
        n = int(r.mask[i].sum())
        ids = torch.cat([prompt, r.completions[i, :n]]).unsqueeze(0)
        with torch.no_grad():
            logits = model(ids)[0, prompt.numel() - 1 : -1]
        alone = logits.log_softmax(-1).gather(-1, r.completions[i, :n].unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(alone, r.log_probs[i, :n], atol=1e-5, rtol=0)
    lp, _ = seq.token_log_probs(model, r)  # the loss's teacher-forced pass uses the mask too
    torch.testing.assert_close(lp, r.log_probs, atol=1e-5, rtol=0)


def test_context_from_the_config_and_training_through_the_adapter():
    model = HFCausalLM(_tiny_gpt2())
    with pytest.raises(ValueError, match="context of 32"):
        seq.generate(model, torch.tensor([[3] * 30]), max_new_tokens=4)
    trainer = seq.Trainer(model, lambda p, c: (c == 7).float().sum(-1), [torch.tensor([3, 4]), torch.tensor([5])],
                          seq.SeqConfig(method="grpo", num_samples=4, prompts_per_step=2, max_new_tokens=4,
                                        learning_rate=1e-2, progress=False), steps=15)  # fmt: skip
    assert trainer.sampling_graph  # on-policy with a KV cache: the loss reuses the sampling graph
    trainer.run()
    first = sum(h["reward"] for h in trainer.history[:3]) / 3
    last = sum(h["reward"] for h in trainer.history[-3:]) / 3
    assert last > first
