"""Train a classifier directly on macro-F1, a non-differentiable metric, with ``sg.expectation``.

The classifier's predictions for a minibatch are one sample of a product of categoricals; the
minibatch's macro-F1 is a black-box function of that sample. ``sg.expectation`` with the
score-function estimator and a leave-one-out baseline (several joint samples per minibatch) gives
an unbiased gradient of the *expected* macro-F1, which we ascend. Cross-entropy training on the
same data and network is the reference. Dataset: scikit-learn's 8x8 digits (ships with it, offline),
made imbalanced so that macro-F1 and accuracy disagree.

    python examples/classifier_f1.py            # about a minute on a CPU
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from torch import nn
from torch.distributions import Categorical, Independent

import scoregrad as sg


def data(seed: int = 0):
    """Digits with classes 5-9 subsampled to 20%: an imbalanced 10-class problem."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    keep = (y < 5) | (rng.random(len(y)) < 0.2)
    x, y = x[keep] / 16.0, y[keep]
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    as_t = lambda a, dt: torch.tensor(a, dtype=dt)  # noqa: E731
    return as_t(xtr, torch.float32), as_t(ytr, torch.long), as_t(xte, torch.float32), as_t(yte, torch.long)


def macro_f1(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Macro-F1 of each row of ``predictions (K, N)`` against ``labels (N,)``: ``(K,)``, vectorised."""
    pred = nn.functional.one_hot(predictions, num_classes).float()  # (K, N, C)
    true = nn.functional.one_hot(labels, num_classes).float()  # (N, C)
    tp = (pred * true).sum(1)
    fp = (pred * (1 - true)).sum(1)
    fn = ((1 - pred) * true).sum(1)
    f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1e-9)
    present = (true.sum(0) > 0) | (pred.sum(1) > 0)  # sklearn averages over labels present in either
    return (f1 * present).sum(-1) / present.sum(-1)


def train(objective: str, epochs: int, seed: int = 0, num_samples: int = 16, batch: int = 32) -> float:
    """Held-out macro-F1 (argmax predictions) after ``epochs`` of ``objective``.

    ``objective``: ``"cross_entropy"``, ``"expected_macro_f1"`` (from scratch) or
    ``"cross_entropy_then_f1"`` (half the epochs each: the usual way to tune for a metric).
    """
    torch.manual_seed(seed)
    xtr, ytr, xte, yte = data(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        use_ce = objective == "cross_entropy" or (
            objective == "cross_entropy_then_f1" and epoch < epochs // 2
        )
        for idx in torch.randperm(len(xtr)).split(batch):
            logits, labels = model(xtr[idx]), ytr[idx]
            if use_ce:
                loss = nn.functional.cross_entropy(logits, labels)
            else:  # maximise E[macro-F1 of the sampled predictions]
                joint = Independent(Categorical(logits=logits), 1)  # one sample = the minibatch's predictions
                value = sg.expectation(lambda p, labels=labels: macro_f1(p, labels), joint, num_samples=num_samples,
                                       baseline="leave_one_out")  # fmt: skip
                loss = -value
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = model(xte).argmax(-1)
    return f1_score(yte.numpy(), pred.numpy(), average="macro")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for objective in ("cross_entropy", "expected_macro_f1", "cross_entropy_then_f1"):
        scores = [train(objective, args.epochs, seed) for seed in range(args.seeds)]
        results[objective] = float(np.mean(scores))
        print(
            f"{objective:22s} held-out macro-F1 {np.mean(scores):.3f} +- {np.std(scores):.3f} ({args.seeds} seeds)"
        )
    return results


if __name__ == "__main__":
    main()
