"""Short versions of the sequence examples run end to end (the full ones take minutes)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    threads = torch.get_num_threads()

    def load(name):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    yield load
    torch.set_num_threads(threads)


def test_arithmetic_example_short(example, tmp_path):
    arithmetic = example("seq_arithmetic")
    results = arithmetic.main(["--methods", "rloo,reinforce", "--steps", "3", "--pretrain-steps", "10",
                               "--eval-size", "10", "--eval-every", "3", "--mle-control", "--out", str(tmp_path)])  # fmt: skip
    assert set(results["methods"]) == {"rloo", "reinforce"}
    for curve in results["methods"].values():
        assert curve["steps"] == [0, 3] and all(0 <= a <= 1 for a in curve["accuracy"])
    control = results[
        "mle_continued"
    ]  # trained at least as long as the slowest RL method, from the same start
    assert control["seconds"][-1] >= max(c["seconds"][-1] for c in results["methods"].values())
    assert control["accuracy"][0] == results["pretrained_accuracy"] and control["steps"][-1] >= 1
    assert (tmp_path / "seq_arithmetic.png").exists()


def test_arithmetic_reward_and_model_cache_agree_with_the_full_pass(example):
    arithmetic = example("seq_arithmetic")
    assert arithmetic.exact_match(["12+30=", "5+5="], ["42", "11"]) == [1.0, 0.0]
    torch.manual_seed(0)
    model = arithmetic.GPT(arithmetic.GPTConfig())
    from scoregrad import seq

    r = seq.generate(model, [arithmetic.prompt_of(12, 345), arithmetic.prompt_of(1, 2)], 2, 5,
                     eos_id=arithmetic.EOS, generator=torch.Generator().manual_seed(0))  # fmt: skip
    lp, _ = seq.token_log_probs(model, r)
    torch.testing.assert_close(lp, r.log_probs, atol=1e-5, rtol=0)


def test_bleu_example_short(example):
    pytest.importorskip("sacrebleu")
    bleu = example("seq_bleu")
    assert bleu.translate(["s0", "s1", "s2"]) == [bleu.TARGET[1], bleu.TARGET[0], bleu.TARGET[2]]
    assert bleu.bleu_reward(["s0 s1 s2 s3"], [" ".join(bleu.translate(["s0", "s1", "s2", "s3"]))]) == [
        pytest.approx(1.0)
    ]
    results = bleu.main(["--pretrain-steps", "3", "--steps", "2", "--eval-size", "8"])
    assert set(results) == {"mle_pretrained", "mle_continued", "scst", "rloo"}


def test_classifier_f1_example_short(example):
    pytest.importorskip("sklearn")
    f1 = example("classifier_f1")
    from sklearn.metrics import f1_score

    pred, labels = torch.tensor([[0, 1, 1, 2], [0, 0, 2, 2]]), torch.tensor([0, 1, 2, 2])
    mine = f1.macro_f1(pred, labels, num_classes=3)
    for row, value in zip(pred, mine, strict=True):
        assert value.item() == pytest.approx(f1_score(labels.numpy(), row.numpy(), average="macro"))
    results = f1.main(["--epochs", "2", "--seeds", "1"])
    assert all(0 <= v <= 1 for v in results.values())


def test_gpt2_example_short(example):
    pytest.importorskip("transformers")
    gpt2 = example("seq_gpt2")
    assert gpt2.standard_error(0.5, 100) == pytest.approx(0.05) and gpt2.standard_error(1.0, 10) == 0.0
    results = gpt2.main(
        ["--pretrain-steps", "3", "--steps", "2", "--prompts-per-step", "2", "--eval-size", "8"]
    )
    assert results["eval_size"] == 8 and all(0 <= results[k] <= 1 for k in ("before", "after"))
