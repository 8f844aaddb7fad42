"""seq.train / seq.Trainer: resume, gradient accumulation, rewards (dict, None, errors), logs."""

from __future__ import annotations

import copy

import pytest
import torch

from scoregrad import seq
from scoregrad.rl.checkpoint import latest_checkpoint
from tests.seq.models import TinyRNN, TinyRNNCached

PROMPTS = [torch.tensor([1, 2]), torch.tensor([3]), torch.tensor([2, 2, 1]), torch.tensor([4])]


def count_threes(prompts, completions):
    return (completions == 3).float().sum(-1)


def _model(cls=TinyRNNCached):
    torch.manual_seed(0)
    return cls(vocab=5, hidden=16)


SMALL = {"prompts_per_step": 2, "max_new_tokens": 4, "learning_rate": 3e-2, "progress": False, "eos_id": 0}


def test_training_raises_the_reward():
    model = _model()
    trainer = seq.Trainer(
        model, count_threes, PROMPTS, seq.SeqConfig(method="rloo", num_samples=4, **SMALL), steps=40
    )
    trainer.run()
    first = sum(h["reward"] for h in trainer.history[:5]) / 5
    last = sum(h["reward"] for h in trainer.history[-5:]) / 5
    assert last > first + 0.5


def test_resume_is_bitwise_identical_on_cpu(tmp_path):
    for method in ("grpo", "dapo"):
        straight = _model()
        seq.train(
            straight,
            count_threes,
            PROMPTS,
            method=method,
            num_samples=4,
            steps=4,
            updates_per_generation=2,
            **SMALL,
        )
        half = _model()
        seq.train(half, count_threes, PROMPTS, method=method, num_samples=4, steps=2, updates_per_generation=2,
                  out=tmp_path / method, **SMALL)  # fmt: skip
        resumed = _model()
        seq.train(resumed, count_threes, PROMPTS, method=method, num_samples=4, steps=4, updates_per_generation=2,
                  resume=tmp_path / method / "checkpoint", **SMALL)  # fmt: skip
        for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
            assert torch.equal(a, b), method
    assert (tmp_path / "grpo" / "metrics.csv").read_text().startswith("step,")
    assert (latest_checkpoint(tmp_path / "grpo" / "checkpoint") / "model.safetensors").exists()
    assert list((tmp_path / "grpo" / "tb").iterdir())


def test_resume_refuses_another_config(tmp_path):
    seq.train(_model(), count_threes, PROMPTS, method="rloo", num_samples=4, steps=1, out=tmp_path, **SMALL)
    with pytest.raises(ValueError, match="different config.*num_samples"):
        seq.train(
            _model(),
            count_threes,
            PROMPTS,
            method="rloo",
            num_samples=2,
            steps=2,
            resume=tmp_path / "checkpoint",
            **SMALL,
        )


@pytest.mark.parametrize("method", ["rloo", "grpo", "dr_grpo", "gspo"])
def test_micro_batches_give_the_gradient_of_the_whole_batch(method):
    """Gradient accumulation over micro-batches equals one pass over the whole batch (and the sampling graph)."""
    results = []
    for micro, graph in ((0, True), (0, False), (3, False)):
        model = _model()
        cfg = seq.SeqConfig(
            method=method,
            num_samples=4,
            micro_batch_size=micro,
            sampling_graph=graph,
            max_grad_norm=0.0,
            **SMALL,
        )
        seq.Trainer(model, count_threes, PROMPTS, cfg, steps=1).run()
        results.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))  # the step's gradient
    torch.testing.assert_close(results[0], results[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(results[1], results[2], atol=1e-6, rtol=1e-5)


def test_dict_of_weighted_rewards_and_none_rewards_are_logged_and_excluded():
    seen = {}

    def threes(prompts, completions):
        return (completions == 3).float().sum(-1)

    def sometimes(prompts, completions):
        seen["n"] = len(completions)
        return [None if i % 4 == 0 else 1.0 for i in range(len(completions))]

    trainer = seq.Trainer(
        _model(), {"threes": threes, "bonus": (sometimes, 0.5)}, PROMPTS,
        seq.SeqConfig(method="rloo", num_samples=4, **SMALL), steps=2,
    )  # fmt: skip
    trainer.run()
    h = trainer.history[-1]
    assert seen["n"] == 8 and h["rewards/bonus/mean"] == 1.0 and "rewards/threes/std" in h
    assert h["frac_reward_none"] == 0.0  # 'threes' always applies, so every completion has a reward

    def only_some(prompts, completions):
        return [None if i % 4 == 0 else float(i) for i in range(len(completions))]

    trainer = seq.Trainer(
        _model(), only_some, PROMPTS, seq.SeqConfig(method="grpo", num_samples=4, **SMALL), steps=1
    )
    trainer.run()
    assert trainer.history[0]["frac_reward_none"] == 0.25


def test_decode_hands_strings_to_the_reward_function():
    got = {}

    def text_reward(prompts, completions):
        got["p"], got["c"] = prompts, completions
        return [float(len(c)) for c in completions]

    letters = "_abcd"
    seq.train(_model(), text_reward, PROMPTS, method="rloo", num_samples=2, steps=1,
              decode=lambda t: "".join(letters[i] for i in t.tolist()), **SMALL)  # fmt: skip
    assert all(isinstance(s, str) for s in got["p"] + got["c"]) and len(got["c"]) == 4
    assert all("_" not in c for c in got["c"])  # eos (id 0) is not in the decoded text


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda n: [1.0] * (n - 1), "'bad' returned 7 rewards for 8 completions"),
        (
            lambda n: [1.0] * 5 + [float("nan")] + [1.0] * (n - 6),
            "'bad' returned nan for sample 5 \\(prompt 1\\)",
        ),
        (lambda n: [1.0, "x"] + [1.0] * (n - 2), "'bad' returned str for sample 1"),
        (lambda n: torch.ones(n, 2), "'bad' returned Tensor of shape \\(8, 2\\)"),
    ],
)
def test_bad_rewards_name_the_function_and_the_sample_and_leave_the_weights_alone(returned, message):
    model = _model()
    before = copy.deepcopy(model.state_dict())

    def bad(prompts, completions):
        return returned(len(completions))

    with pytest.raises(seq.RewardError, match=message):
        seq.train(model, bad, PROMPTS, method="rloo", num_samples=4, steps=1, **SMALL)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_scst_uses_the_greedy_reward_and_plain_models_train_too():
    trainer = seq.Trainer(
        _model(TinyRNN), count_threes, PROMPTS, seq.SeqConfig(method="scst", num_samples=2, **SMALL), steps=3
    )
    trainer.run()
    assert not trainer.sampling_graph and len(trainer.history) == 3


def test_kl_to_a_reference_model_in_the_loss_and_in_the_reward():
    for in_reward in (False, True):
        ref = _model()
        trainer = seq.Trainer(_model(), count_threes, PROMPTS,
                              seq.SeqConfig(method="grpo", num_samples=4, kl_coef=0.1, kl_in_reward=in_reward, **SMALL),
                              steps=3, ref_model=ref)  # fmt: skip
        trainer.run()
        assert trainer.history[0]["kl"] == pytest.approx(0.0, abs=1e-6) and trainer.history[-1]["kl"] != 0.0
