"""Clip, ratio, aggregation and KL variants of seq.policy_loss against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from scoregrad import seq
from tests.seq.models import TinyRNN

ADV = [1.0, -0.5, 2.0, -1.0]


def _off_policy_batch():
    """A rollout whose behaviour log-probs differ from the model's by a known ``delta`` per token."""
    torch.manual_seed(0)
    model = TinyRNN(vocab=4, hidden=8)
    r = seq.generate(
        model, torch.tensor([[1], [2]]), 2, 3, eos_id=0, generator=torch.Generator().manual_seed(5)
    )
    lp, _ = seq.token_log_probs(model, r)
    deltas = torch.tensor([[-0.5, 0.1, 0.3], [0.0, 0.4, -0.2], [0.25, -0.3, 0.05], [-0.1, 0.2, 0.6]])
    r.log_probs = (lp.detach() + deltas) * r.mask  # behaviour = current + delta: ratio exp(-delta)
    r.model_version = None  # the weights "moved" since sampling
    return model, r, lp.detach(), deltas


def _hand(r, lp, deltas, clip, ratio, aggregate):
    mask = r.mask.tolist()
    n, length = len(mask), len(mask[0])
    lo, hi = (1 - clip[0], 1 + clip[1]) if clip else (-math.inf, math.inf)

    def term(w, a):
        return -min(w * a, min(max(w, lo), hi) * a)

    if aggregate == "sequence_sum" and ratio == "token":
        total = 0.0
        for i in range(n):
            w = math.exp(-sum(deltas[i][t] for t in range(length) if mask[i][t]))
            total += term(w, ADV[i])
        return total / n
    per = [[0.0] * length for _ in range(n)]
    for i in range(n):
        m = sum(mask[i])
        s = math.exp(-sum(deltas[i][t] for t in range(length) if mask[i][t]) / m)
        for t in range(length):
            if mask[i][t]:
                per[i][t] = term(math.exp(-deltas[i][t]) if ratio == "token" else s, ADV[i])
    if aggregate == "sequence_sum":
        return sum(map(sum, per)) / n
    if aggregate == "token_mean":
        return sum(map(sum, per)) / sum(map(sum, mask))
    if aggregate == "sequence_mean":
        return sum(sum(per[i]) / sum(mask[i]) for i in range(n)) / n
    return sum(map(sum, per)) / (n * length)


@pytest.mark.parametrize("aggregate", ["sequence_sum", "token_mean", "sequence_mean", "constant"])
@pytest.mark.parametrize("ratio", ["token", "sequence"])
@pytest.mark.parametrize("clip", [None, (0.2, 0.28)])
def test_policy_loss_variants_match_hand_computed_values(clip, ratio, aggregate):
    model, r, lp, deltas = _off_policy_batch()
    loss = seq.policy_loss(model, r, torch.tensor(ADV), clip=clip, ratio=ratio, aggregate=aggregate)
    assert loss.item() == pytest.approx(_hand(r, lp, deltas.tolist(), clip, ratio, aggregate), rel=1e-5)


def test_clip_fraction_counts_the_tokens_where_the_clip_binds():
    model, r, _, deltas = _off_policy_batch()
    terms = seq.policy_loss(
        model, r, torch.tensor(ADV), clip=(0.2, 0.28), aggregate="token_mean", return_terms=True
    )
    w = torch.exp(-deltas)
    a = torch.tensor(ADV).unsqueeze(-1)
    binds = ((w < 0.8) & (a < 0)) | ((w > 1.28) & (a > 0))
    assert terms.clip_fraction == pytest.approx(binds[r.mask].float().mean().item())


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_penalty_to_the_reference_model(estimator):
    model, r, lp, _ = _off_policy_batch()
    ref = TinyRNN(vocab=4, hidden=8)
    ref_lp, _ = seq.token_log_probs(ref, r)
    base = seq.policy_loss(model, r, torch.tensor(ADV), aggregate="token_mean")
    with_kl = seq.policy_loss(
        model,
        r,
        torch.tensor(ADV),
        aggregate="token_mean",
        ref_model=ref,
        kl_coef=0.1,
        kl_estimator=estimator,
    )
    k1 = (lp - ref_lp.detach())[r.mask]
    kl = k1 if estimator == "k1" else torch.exp(-k1) + k1 - 1
    assert with_kl.item() == pytest.approx(base.item() + 0.1 * kl.mean().item(), rel=1e-5)


def test_entropy_bonus_and_truncation_mask():
    model, r, _, _ = _off_policy_batch()
    _, ent = seq.token_log_probs(model, r, with_entropy=True)
    base = seq.policy_loss(model, r, torch.tensor(ADV), aggregate="token_mean")
    bonus = seq.policy_loss(model, r, torch.tensor(ADV), aggregate="token_mean", entropy_coef=0.01)
    assert bonus.item() == pytest.approx(base.item() - 0.01 * ent[r.mask].mean().item(), rel=1e-5)
    r.truncated = torch.tensor([True, False, False, False])
    kept = r.select(torch.tensor([1, 2, 3]))
    masked = seq.policy_loss(model, r, torch.tensor(ADV), aggregate="token_mean", mask_truncated=True)
    assert masked.item() == pytest.approx(
        seq.policy_loss(model, kept, torch.tensor(ADV[1:]), aggregate="token_mean").item(), rel=1e-5
    )


def test_micro_batches_add_up_to_the_whole_batch():
    model, r, _, _ = _off_policy_batch()
    adv = torch.tensor(ADV)
    for aggregate in ["sequence_sum", "token_mean", "sequence_mean", "constant"]:
        whole = seq.policy_loss(model, r, adv, clip=(0.2, 0.2), aggregate=aggregate)
        norm = {"sequences": 4, "tokens": int(r.mask.sum())}
        halves = sum(
            seq.policy_loss(
                model, r.select(idx), adv[idx], clip=(0.2, 0.2), aggregate=aggregate, normaliser=norm
            )
            for idx in (torch.tensor([0, 1]), torch.tensor([2, 3]))
        )
        assert halves.item() == pytest.approx(whole.item(), rel=1e-6)
