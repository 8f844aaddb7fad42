"""Generation, advantages and losses of scoregrad.seq against exact and hand-computed values."""

from __future__ import annotations

import itertools

import pytest
import torch

from scoregrad import seq
from tests.helpers import assert_unbiased
from tests.seq.models import TinyRNN, TinyRNNCached


# ---------------------------------------------------------------------------- generation
def test_generate_shapes_padding_and_eos():
    model = TinyRNNCached(vocab=5)
    prompts = [torch.tensor([1, 2, 3]), torch.tensor([4])]
    g = torch.Generator().manual_seed(0)
    r = seq.generate(model, prompts, num_samples=3, max_new_tokens=6, eos_id=0, pad_id=0, generator=g)
    assert r.completions.shape == r.mask.shape == r.log_probs.shape == (6, 6)
    assert r.group.tolist() == [0, 0, 0, 1, 1, 1]
    assert r.prompt_ids[3].tolist() == [0, 0, 4] and r.prompt_mask[3].tolist() == [False, False, True]
    for i in range(6):
        n = int(r.mask[i].sum())
        assert r.mask[i, :n].all() and not r.mask[i, n:].any()  # a prefix of True
        assert (r.completions[i, n:] == 0).all() and (r.log_probs[i, n:] == 0).all()
        eos = (r.completions[i, :n] == 0).nonzero()
        assert bool(r.truncated[i]) == (eos.numel() == 0)
        if eos.numel():
            assert int(eos[0]) == n - 1  # stops right after eos
    assert r.log_probs.requires_grad is False


def test_recorded_log_probs_are_those_of_the_sampling_law():
    """Under temperature, top-k and top-p the teacher-forced log-probs equal the recorded ones (ratio 1)."""
    for cls in (TinyRNN, TinyRNNCached):
        model = cls(vocab=7, hidden=16)
        g = torch.Generator().manual_seed(1)
        r = seq.generate(
            model,
            torch.tensor([[1, 2], [3, 4]]),
            num_samples=4,
            max_new_tokens=5,
            temperature=0.7,
            top_k=4,
            top_p=0.9,
            generator=g,
        )
        lp, _ = seq.token_log_probs(model, r)
        torch.testing.assert_close(lp, r.log_probs, atol=1e-5, rtol=0)
        assert (r.log_probs[r.mask] > float("-inf")).all()


def test_cached_and_full_prefix_generation_draw_the_same_sequences():
    torch.manual_seed(0)
    plain = TinyRNN(vocab=6)
    cached = TinyRNNCached(vocab=6)
    cached.load_state_dict(plain.state_dict())
    prompts = torch.tensor([[1, 2, 3], [2, 2, 5]])
    a = seq.generate(plain, prompts, 4, 5, generator=torch.Generator().manual_seed(3))
    b = seq.generate(cached, prompts, 4, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.completions, b.completions)
    torch.testing.assert_close(a.log_probs, b.log_probs)


def test_process_logits_top_k_and_top_p_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    p = logits.softmax(-1)[0]
    top2 = seq.process_logits(logits, 1.0, 2, 1.0).exp()[0]
    torch.testing.assert_close(top2, torch.cat([p[:2] / p[:2].sum(), torch.zeros(2)]))
    # top_p = 0.8: p = .644, .237, .087, .032 -> keep the first two (mass .881 >= .8)
    nucleus = seq.process_logits(logits, 1.0, 0, 0.8).exp()[0]
    torch.testing.assert_close(nucleus, top2)
    hot = seq.process_logits(logits, 2.0, 0, 1.0).exp()[0]
    torch.testing.assert_close(hot, (logits / 2).softmax(-1)[0])
    greedy = seq.process_logits(logits, 0.0, 0, 1.0).exp()[0]
    assert greedy.tolist() == [1.0, 0.0, 0.0, 0.0]


# ---------------------------------------------------------------------------- advantages
def test_advantages_against_hand_computed_values():
    r = torch.tensor([1.0, 0.0, 0.0, 3.0, 2.0, 2.0, 2.0, 6.0])
    g = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    # rloo: r_i - mean of the other three
    assert seq.advantages(r, g, "rloo").tolist() == pytest.approx(
        [1 - 1, 0 - 4 / 3, 0 - 4 / 3, 3 - 1 / 3, 2 - 10 / 3, 2 - 10 / 3, 2 - 10 / 3, 6 - 2]
    )
    # dr_grpo: r - group mean (1 and 3)
    assert seq.advantages(r, g, "dr_grpo").tolist() == pytest.approx([0, -1, -1, 2, -1, -1, -1, 3])
    # grpo: divided by the unbiased group std: sqrt(6/3)=sqrt(2) and sqrt(12/3)=2
    s0, s1 = 2**0.5 + 1e-4, 2.0 + 1e-4
    assert seq.advantages(r, g, "grpo").tolist() == pytest.approx(
        [0, -1 / s0, -1 / s0, 2 / s0, -1 / s1, -1 / s1, -1 / s1, 3 / s1]
    )
    # reinforce++: centred rewards divided by their batch std: values 0,-1,-1,2,-1,-1,-1,3 -> var = 18/7
    sb = (18 / 7) ** 0.5 + 1e-4
    assert seq.advantages(r, g, "reinforce++").tolist() == pytest.approx(
        [x / sb for x in [0, -1, -1, 2, -1, -1, -1, 3]]
    )
    assert seq.advantages(r, g, "none").tolist() == r.tolist()
    # scst: the greedy reward of each prompt is the baseline
    assert seq.advantages(r, g, "scst", baseline_rewards=torch.tensor([1.0, 2.0])).tolist() == [
        0,
        -1,
        -1,
        2,
        0,
        0,
        0,
        4,
    ]


def test_missing_rewards_are_left_out_of_the_baseline():
    r = torch.tensor([1.0, float("nan"), 0.0, 5.0])
    g = torch.tensor([0, 0, 0, 0])
    valid = torch.tensor([True, False, True, True])
    a = seq.advantages(r, g, "rloo", valid=valid)
    assert a.tolist() == pytest.approx([1 - 2.5, 0.0, 0 - 3, 5 - 0.5])
    a = seq.advantages(r, g, "grpo", valid=valid)
    s = torch.tensor([1.0, 0.0, 5.0]).std().item() + 1e-4
    assert a.tolist() == pytest.approx([(1 - 2) / s, 0.0, -2 / s, 3 / s])


def test_zero_spread_groups():
    r = torch.tensor([1.0, 1.0, 0.0, 1.0])
    g = torch.tensor([0, 0, 1, 1])
    assert seq.group_std_is_zero(r, g).tolist() == [True, True, False, False]


# ---------------------------------------------------------------------------- unbiasedness by enumeration
def _all_completions(vocab: int, length: int, eos_id: int | None) -> list[tuple[list[int], int]]:
    """Every distinct completion (padded with 0 after eos) and its number of generated tokens."""
    seen = {}
    for tokens in itertools.product(range(vocab), repeat=length):
        n = length
        if eos_id is not None and eos_id in tokens:
            n = tokens.index(eos_id) + 1
        key = tuple(tokens[:n]) + (0,) * (length - n)
        seen[key] = n
    return [(list(k), n) for k, n in seen.items()]


def _exact_gradient(model, prompt, reward, vocab, length, eos_id, temperature):
    seqs = _all_completions(vocab, length, eos_id)
    k = len(seqs)
    completions = torch.tensor([s for s, _ in seqs])
    mask = torch.arange(length).expand(k, -1) < torch.tensor([n for _, n in seqs]).unsqueeze(-1)
    r = seq.Rollout(
        completions=completions,
        mask=mask,
        log_probs=torch.zeros(k, length),
        group=torch.zeros(k, dtype=torch.long),
        truncated=torch.zeros(k, dtype=torch.bool),
        prompt_ids=prompt.expand(k, -1),
        prompt_mask=torch.ones(k, prompt.numel(), dtype=torch.bool),
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        pad_id=0,
        eos_id=eos_id,
    )
    lp, _ = seq.token_log_probs(model, r)
    p = lp.sum(-1).exp()
    assert float(p.detach().sum()) == pytest.approx(1.0, abs=1e-5)
    values = torch.tensor([reward(c) for c in completions])
    expectation = (p * values).sum()
    return torch.autograd.grad(expectation, list(model.parameters()))


@pytest.mark.parametrize(
    ("cls", "method", "aggregate", "length", "eos_id", "temperature"),
    [
        (TinyRNN, "rloo", "sequence_sum", 2, None, 1.0),
        (TinyRNNCached, "none", "sequence_sum", 3, 2, 1.5),
        (TinyRNNCached, "rloo", "sequence_sum", 3, 2, 1.0),
        (TinyRNNCached, "dr_grpo", "constant", 3, 2, 1.0),  # unbiased up to the factor (G-1)/(G L)
    ],
    ids=[
        "plain-rloo-2tokens",
        "cached-none-eos-3tokens",
        "cached-rloo-eos-3tokens",
        "cached-dr_grpo-eos-3tokens",
    ],
)
def test_policy_loss_is_an_unbiased_gradient_of_the_expected_reward(
    cls, method, aggregate, length, eos_id, temperature
):
    torch.manual_seed(0)
    vocab = 3
    model = cls(vocab=vocab, hidden=4)
    prompt = torch.tensor([[1]])

    def reward(completion):
        c = completion.tolist()
        return float(c[0] == 1) + 0.5 * float(c[1] == 2) - 0.3 * sum(c)

    exact = torch.cat(
        [g.reshape(-1) for g in _exact_gradient(model, prompt, reward, vocab, length, eos_id, temperature)]
    )
    gen = torch.Generator().manual_seed(123)
    draws = []
    for _ in range(400):
        r = seq.generate(
            model,
            prompt,
            num_samples=4,
            max_new_tokens=length,
            temperature=temperature,
            eos_id=eos_id,
            generator=gen,
        )
        rewards = torch.tensor([reward(c) for c in r.completions])
        loss = seq.policy_loss(model, r, seq.advantages(rewards, r.group, method), aggregate=aggregate)
        if method == "dr_grpo":  # A = (G-1)/G (r - mean of the others); "constant" divides by L
            loss = loss * (4 * length / 3)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        draws.append(-torch.cat([g.reshape(-1) for g in grads]))
    assert_unbiased(torch.stack(draws), exact, what=f"{cls.__name__} {method}")


def test_sampling_graph_gives_the_same_loss_and_gradient_as_the_teacher_forced_pass():
    torch.manual_seed(0)
    model = TinyRNNCached(vocab=5, hidden=8)
    r = seq.generate(
        model,
        torch.tensor([[1, 2]]),
        4,
        4,
        eos_id=0,
        keep_graph=True,
        generator=torch.Generator().manual_seed(0),
    )
    assert r.sampled_log_probs is not None and r.sampled_log_probs.requires_grad
    adv = seq.advantages(torch.tensor([1.0, 0.0, 2.0, 0.5]), r.group, "grpo")
    for kwargs in [
        {},
        {"aggregate": "token_mean", "clip": (0.2, 0.28)},
        {"ratio": "sequence", "aggregate": "sequence_mean"},
    ]:
        a = seq.policy_loss(model, r, adv, **kwargs)
        ga = torch.autograd.grad(a, list(model.parameters()), retain_graph=True)
        plain = r.select(torch.arange(4))
        plain.sampled_log_probs = None
        b = seq.policy_loss(model, plain, adv, **kwargs)
        gb = torch.autograd.grad(b, list(model.parameters()))
        torch.testing.assert_close(a, b)
        for x, y in zip(ga, gb, strict=True):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)


def test_generation_drops_the_sampling_graph_when_completions_outgrow_graph_max_tokens():
    torch.manual_seed(0)
    model = TinyRNNCached(vocab=5, hidden=8)
    rollouts = {
        limit: seq.generate(
            model,
            torch.tensor([[1, 2]]),
            4,
            6,
            keep_graph=True,
            graph_max_tokens=limit,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        for limit in (6, 3)
    }
    kept, dropped = rollouts[6], rollouts[3]  # no eos: every completion has 6 tokens
    assert kept.sampled_log_probs is not None and kept.sampled_log_probs.requires_grad
    assert kept.sampled_entropy is not None
    assert dropped.sampled_log_probs is None and dropped.sampled_entropy is None
    assert torch.equal(kept.completions, dropped.completions)
    torch.testing.assert_close(kept.log_probs, dropped.log_probs)
    adv = seq.advantages(torch.tensor([1.0, 0.0, 2.0, 0.5]), kept.group, "rloo")
    # without the graph the loss runs its own forward pass: same value and gradient
    ga = torch.autograd.grad(seq.policy_loss(model, kept, adv), list(model.parameters()))
    gb = torch.autograd.grad(seq.policy_loss(model, dropped, adv), list(model.parameters()))
    for x, y in zip(ga, gb, strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4)
