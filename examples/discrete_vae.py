"""Train a small discrete VAE on sklearn's 8x8 digits with a stochastic computation graph.

The encoder samples 32 binary latents, the decoder reconstructs the digit, and the KL to the prior
is in closed form. The graph finds by itself that only the reconstruction depends on the sample,
so the latent's score term is weighted by the reconstruction alone (credit assignment), and each
latent gets a leave-one-out baseline over its plate of 4 samples. About 20 seconds on one CPU core:

    python examples/discrete_vae.py
    python examples/discrete_vae.py --estimator disarm --steps 3000
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.distributions import Bernoulli, Independent

import scoregrad as sg


@dataclass
class Args:
    estimator: str = "rloo"
    """'rloo' (score function, leave-one-out over 4 samples), 'disarm' (2 antithetic samples),
    'vimco' (4-sample bound) or 'reinforce' (1 sample, moving-average baseline)."""
    steps: int = 6000
    """Optimizer steps."""
    batch_size: int = 64
    """Digits per step."""
    latents: int = 32
    """Binary latent variables."""
    hidden: int = 128
    """Units of the encoder's and decoder's hidden layer."""
    lr: float = 3e-3
    """Adam learning rate."""
    seed: int = 0
    """Random seed."""


class DiscreteVAE(nn.Module):
    """Sigmoid belief net VAE: Bernoulli prior, q(z|x) and p(x|z) over binary z and x.

    Shared with ``benchmarks/discrete_vae.py``, which imports it.

    Args:
        data_dim: pixels per example.
        latents: binary latent variables.
        hidden: hidden layer sizes of the encoder and the decoder (``()``: linear maps).
        train_mean: optional mean of the training data: the encoder sees centred input and the
            decoder's output bias starts at its logit (as in the ARM/DisARM papers' benchmarks).
    """

    def __init__(
        self,
        data_dim: int,
        latents: int,
        hidden: tuple[int, ...] = (128,),
        train_mean: torch.Tensor | None = None,
    ) -> None:
        super().__init__()

        def mlp(sizes: list[int]) -> nn.Module:
            layers: list[nn.Module] = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
                layers += [nn.Linear(a, b)] + ([nn.LeakyReLU(0.2)] if i < len(sizes) - 2 else [])
            return layers[0] if len(layers) == 1 else nn.Sequential(*layers)

        self.encoder = mlp([data_dim, *hidden, latents])
        self.decoder = mlp([latents, *hidden, data_dim])
        self.prior_logits = nn.Parameter(torch.zeros(latents))
        self.register_buffer("train_mean", torch.zeros(data_dim) if train_mean is None else train_mean)
        if train_mean is not None:
            last = self.decoder if isinstance(self.decoder, nn.Linear) else self.decoder[-1]
            with torch.no_grad():
                last.bias.copy_(torch.logit(train_mean.clamp(1e-3, 1 - 1e-3)))

    def posterior(self, x: torch.Tensor) -> Independent:
        return Independent(Bernoulli(logits=self.encoder(x - self.train_mean), validate_args=False), 1)

    def prior(self) -> Independent:
        return Independent(Bernoulli(logits=self.prior_logits, validate_args=False), 1)

    def likelihood(self, z: torch.Tensor) -> Independent:
        return Independent(Bernoulli(logits=self.decoder(z), validate_args=False), 1)

    def kl(self, q: Independent) -> torch.Tensor:
        """KL(q(z|x) || prior) in closed form, summed over the latents."""
        log_sig = nn.functional.logsigmoid
        lq, lp = q.base_dist.logits, self.prior_logits
        p = torch.sigmoid(lq)
        return (p * (log_sig(lq) - log_sig(lp)) + (1 - p) * (log_sig(-lq) - log_sig(-lp))).sum(-1)

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, samples: int = 10) -> float:
        """Mean ELBO per example, ``E_q[log p(x|z)] - KL``, by Monte Carlo."""
        q = self.posterior(x)
        z = q.sample((samples,))
        return float((self.likelihood(z).log_prob(x).mean(0) - self.kl(q)).mean())

    @torch.no_grad()
    def bound(self, x: torch.Tensor, samples: int = 100, chunk: int = 100) -> float:
        """Mean importance-weighted bound ``log 1/K sum_k p(x, z_k) / q(z_k | x)``, nats per example."""
        total = 0.0
        for start in range(0, x.shape[0], chunk):
            xs = x[start : start + chunk]
            q = self.posterior(xs)
            z = q.sample((samples,))
            log_w = self.likelihood(z).log_prob(xs) + self.prior().log_prob(z) - q.log_prob(z)
            total += float((torch.logsumexp(log_w, 0) - math.log(samples)).sum())
        return total / x.shape[0]


def negative_elbo_surrogate(model: DiscreteVAE, x: torch.Tensor, estimator: str, baseline) -> torch.Tensor:
    """One step's surrogate: its gradient is the chosen estimator's gradient of the negative ELBO."""
    num_samples, node_estimator, node_baseline = {
        "rloo": (4, None, "leave_one_out"),
        "disarm": (2, "disarm", None),
        "vimco": (4, "vimco", None),
        "reinforce": (None, None, baseline),
    }[estimator]
    with sg.graph() as g:
        q = model.posterior(x)
        z = g.sample("z", q, num_samples, estimator=node_estimator, baseline=node_baseline)
        g.cost("reconstruction", -model.likelihood(z).log_prob(x))
        if estimator == "vimco":  # the bound needs sampled log-weights, not the closed-form KL
            prior = Independent(Bernoulli(logits=model.prior_logits, validate_args=False), 1)
            g.cost("log_q_over_prior", q.log_prob(z) - prior.log_prob(z))
        else:
            g.cost("kl", model.kl(q))
    return g.surrogate() / x.shape[0]


def main(args: Args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    # Data: fixed split, dynamic binarisation for training, a fixed binarisation for testing.
    x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1234))]
    train, test = x[:1497], torch.bernoulli(x[1497:], generator=torch.Generator().manual_seed(0))

    model = DiscreteVAE(train.shape[1], args.latents, (args.hidden,))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    baseline = sg.baselines.MovingAverage(0.9)
    print(f"step      test bound (nats)   [{args.estimator}]")
    print(f"{0:5d}     {model.bound(test):8.2f}")
    start = time.time()
    for step in range(1, args.steps + 1):
        batch = torch.bernoulli(train[torch.randint(0, len(train), (args.batch_size,))])
        optimizer.zero_grad()
        negative_elbo_surrogate(model, batch, args.estimator, baseline).backward()
        optimizer.step()
        if step % 500 == 0 or step == args.steps:
            print(f"{step:5d}     {model.bound(test):8.2f}      ({time.time() - start:.0f}s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, value in vars(Args()).items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    main(Args(**vars(parser.parse_args())))
