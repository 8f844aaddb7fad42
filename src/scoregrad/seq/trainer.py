"""The sequence-reward trainer: generate -> reward -> advantages -> update -> log -> checkpoint.

One step draws ``prompts_per_step`` prompts, samples ``num_samples`` completions of each
(:func:`~scoregrad.seq.generate`), scores them with the reward function(s), turns the rewards into
group advantages (:func:`~scoregrad.seq.advantages`) and takes ``updates_per_generation``
optimiser steps on :func:`~scoregrad.seq.policy_loss`, accumulating gradients over micro-batches of
``micro_batch_size`` completions so that the group size never sets the memory.

On-policy (one update per generation, one micro-batch) and with a model that implements the KV-cache
protocol, the loss reuses the sampling pass's log-probs with their autograd graph instead of running
the model a second time (``sampling_graph``): the backward pass goes through the cached decoding.
When a batch's completions grow past :data:`GRAPH_MAX_NEW_TOKENS` tokens, generation drops that graph
and the loss runs one teacher-forced forward pass instead.

The state that a restart needs (weights, optimiser moments, both RNGs, the prompt order, counters)
goes into a safetensors checkpoint through :mod:`scoregrad.rl.checkpoint`; a resumed run on CPU
continues bitwise identically.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from scoregrad import distributed
from scoregrad.rl.checkpoint import (
    CheckpointError,
    load_checkpoint,
    optimizer_state,
    restore_optimizer_state,
    save_checkpoint,
)
from scoregrad.seq.advantages import advantages as compute_advantages
from scoregrad.seq.advantages import group_std_is_zero
from scoregrad.seq.config import SeqConfig
from scoregrad.seq.generation import Rollout, SupportsKVCache, generate, pad_prompts, token_log_probs
from scoregrad.seq.losses import LossTerms, kl_penalty, policy_loss

__all__ = ["Trainer", "train", "RewardError"]

KIND = "scoregrad.seq"
#: Longest completions for which the trainer keeps the sampling graph by default (``generate``'s
#: ``graph_max_tokens``): the saved activations grow with every decoding step and the saved keys and values
#: as the square of the length. Measured (benchmarks/seq_vs_trl.py, 8 x 8 completions of ~5 tokens): the
#: graph saves 30-45% of a step on GPT-2s of 2 layers d=128 and 4 layers d=256; with 32-token completions
#: it cost ~15% more time and ~20% more memory than one teacher-forced pass, and at a limit of 16 the
#: batches that outgrew it raised the large GPT-2's peak memory from ~575 to ~900-940 MB.
GRAPH_MAX_NEW_TOKENS = 8
RewardFn = Callable[[Any, Any], Any]


class RewardError(ValueError):
    """A reward function returned something unusable (names the function and the sample)."""


def _reward_name(fn: Any) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _normalise_rewards(reward_fn: RewardFn | Mapping[str, Any]) -> list[tuple[str, RewardFn, float]]:
    if callable(reward_fn) and not isinstance(reward_fn, Mapping):
        return [(_reward_name(reward_fn), reward_fn, 1.0)]
    if not isinstance(reward_fn, Mapping) or not reward_fn:
        raise TypeError(
            f"reward_fn: expected a callable or a non-empty dict name -> callable or (callable, weight), "
            f"got {type(reward_fn).__name__}"
        )
    out = []
    for name, entry in reward_fn.items():
        fn, weight = (entry if isinstance(entry, tuple) else (entry, 1.0)) if entry is not None else (None, 0)
        if not callable(fn) or not isinstance(weight, (int, float)) or isinstance(weight, bool):
            raise TypeError(
                f"reward_fn[{name!r}]: expected a callable or (callable, float weight), got {entry!r}"
            )
        out.append((str(name), fn, float(weight)))
    return out


def _check_rewards(values: Any, name: str, n: int, num_samples: int) -> tuple[Tensor, Tensor]:
    """``(rewards (n,) float64, valid (n,) bool)`` from what a reward function returned."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().reshape(-1).tolist() if values.dim() <= 1 else values
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist() if values.ndim <= 1 else values
    if not isinstance(values, (list, tuple)):
        shape = f" of shape {tuple(values.shape)}" if hasattr(values, "shape") else ""
        raise RewardError(
            f"reward function {name!r} returned {type(values).__name__}{shape}; expected a 1-D tensor, "
            f"array or list of {n} floats (None for not applicable)"
        )
    if len(values) != n:
        raise RewardError(f"reward function {name!r} returned {len(values)} rewards for {n} completions")
    rewards = torch.zeros(n, dtype=torch.float64)
    valid = torch.ones(n, dtype=torch.bool)
    for i, v in enumerate(values):
        if v is None:
            valid[i] = False
            continue
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, np.generic):
            v = v.item()
        if not isinstance(v, (int, float)):
            raise RewardError(
                f"reward function {name!r} returned {type(v).__name__} for sample {i} (prompt {i // num_samples}); "
                "expected a float or None"
            )
        if not math.isfinite(v):
            raise RewardError(
                f"reward function {name!r} returned {v} for sample {i} (prompt {i // num_samples}); rewards must be "
                "finite (return None for not applicable)"
            )
        rewards[i] = float(v)
    return rewards, valid


@dataclass
class _UpdateStats:
    """What the update phase of one step measured: the loss of each update, and row-weighted sums of the rest."""

    losses: list[float] = field(default_factory=list)
    rows: int = 0
    updates: int = 0
    clip_fraction: float = 0.0
    kl: float = 0.0
    entropy: float = 0.0

    def add(self, terms: LossTerms, rows: int) -> None:
        self.losses.append(float(terms.loss.detach()))
        self.rows += rows
        self.clip_fraction += terms.clip_fraction * rows
        self.kl += terms.kl * rows
        self.entropy += terms.entropy * rows


def _step_metrics(
    rollout: Rollout, rewards: Tensor, valid: Tensor, zero_spread: Tensor, stats: _UpdateStats, elapsed: float
) -> dict[str, float]:
    """One step's metrics, under the names TRL users look for."""
    count = max(stats.rows, 1)
    v = rewards[valid]
    return {
        "reward": float(v.mean()) if v.numel() else float("nan"),
        "reward_std": float(v.std()) if v.numel() > 1 else 0.0,
        "frac_reward_zero_std": float(zero_spread.float().mean()),
        "frac_reward_none": float((~valid).float().mean()),
        "loss": sum(stats.losses) / max(stats.updates, 1) if stats.losses else 0.0,
        "clip_ratio": stats.clip_fraction / count,
        "entropy": stats.entropy / count,
        "completion_length": float(rollout.lengths.float().mean()),
        "truncation_rate": float(rollout.truncated.float().mean()),
        "tokens_per_s": float(rollout.mask.sum()) / elapsed,
        "step_time": elapsed,
        "kl": stats.kl / count,
    }


def _named_reward_metrics(named: dict[str, tuple[Tensor, Tensor]]) -> dict[str, float]:
    out = {}
    for name, (values, ok) in named.items():
        x = values[ok]
        out[f"rewards/{name}/mean"] = float(x.mean()) if x.numel() else float("nan")
        out[f"rewards/{name}/std"] = float(x.std()) if x.numel() > 1 else 0.0
    return out


def _use_sampling_graph(config: SeqConfig, model: nn.Module) -> bool:
    """Whether the loss can reuse the sampling pass's graph: on-policy, one micro-batch (and a KV cache, by default)."""
    whole_batch = config.micro_batch_size in (0, None) or (
        config.micro_batch_size >= config.prompts_per_step * config.num_samples
    )
    possible = config.updates_per_generation == 1 and whole_batch
    if config.sampling_graph is None:  # measured: backward through a full-prefix decode is not worth it
        return possible and isinstance(model, SupportsKVCache)
    if config.sampling_graph and not possible:
        raise ValueError(
            "sampling_graph: needs updates_per_generation == 1 and one micro-batch (the graph is that of the "
            "weights that sampled, for the whole batch)"
        )
    return config.sampling_graph


def _mean_over_processes(metrics: dict[str, float]) -> dict[str, float]:
    """Each metric averaged over processes (one all-reduce under torchrun; unchanged in one process)."""
    if distributed.world_size() == 1:
        return metrics
    values = torch.tensor([metrics[k] for k in metrics], dtype=torch.float64)
    distributed.all_reduce_sum([values])
    return {k: float(v) / distributed.world_size() for k, v in zip(metrics, values, strict=True)}


class Trainer:
    """Train ``model`` on ``reward_fn`` of its completions of ``prompts``; see :func:`train`."""

    def __init__(
        self,
        model: nn.Module,
        reward_fn: RewardFn | Mapping[str, Any],
        prompts: Sequence[Tensor] | Tensor,
        config: SeqConfig,
        *,
        steps: int = 200,
        seed: int = 0,
        ref_model: nn.Module | None = None,
        decode: Callable[[Tensor], str] | None = None,
        out: str | Path | None = None,
        callback: Callable[[Trainer], bool | None] | None = None,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        if not isinstance(config, SeqConfig):
            raise TypeError(f"config: expected a seq.SeqConfig, got {type(config).__name__}")
        config.validate()
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"steps: expected an int >= 0, got {steps!r}")
        if config.kl_coef > 0 and ref_model is None:
            raise ValueError("ref_model: kl_coef > 0 needs a reference model")
        if ref_model is not None and config.kl_coef == 0:
            raise ValueError("ref_model: given, but kl_coef is 0, so it would be ignored; pass kl_coef > 0")
        if decode is not None and not callable(decode):
            raise TypeError(f"decode: expected a callable tokens -> str, got {type(decode).__name__}")
        self.model, self.config, self.steps, self.seed = model, config, steps, seed
        self.rewards = _normalise_rewards(reward_fn)
        self.ref_model = ref_model
        if ref_model is not None:
            ref_model.eval().requires_grad_(False)
        self.decode = decode
        self.out = Path(out) if out is not None else None
        self.callback = callback
        self.loss_settings = config.resolved()
        device = next(model.parameters()).device
        self.device = device
        # prompts: keep the originals for the reward function, check them once here
        pad_prompts(prompts, config.pad_id)  # validates (names the argument)
        self.prompts = list(prompts)
        if config.prompts_per_step > len(self.prompts):
            raise ValueError(
                f"prompts_per_step: {config.prompts_per_step} is more than the {len(self.prompts)} prompts given"
            )
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        # Under torchrun, prompts_per_step counts the prompts of all processes; each generates for its share
        self.world, self.rank = distributed.init(), distributed.rank()
        if self.world > 1:
            distributed.local_count(config.prompts_per_step, "prompts_per_step")
        # each process samples its own completions; the prompt order is the same everywhere
        self.sample_rng = torch.Generator(device=device).manual_seed(seed + 1_000_003 * self.rank)
        self.prompt_rng = torch.Generator().manual_seed(seed + 1)
        self.order = torch.randperm(len(self.prompts), generator=self.prompt_rng)
        self.position = 0
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.sampling_graph = _use_sampling_graph(config, model)
        # the automatic choice keeps the graph for short completions only (see GRAPH_MAX_NEW_TOKENS)
        self.graph_max_tokens = GRAPH_MAX_NEW_TOKENS if config.sampling_graph is None else None

    # ------------------------------------------------------------------ phases
    def _next_prompts(self) -> list[int]:
        k = self.config.prompts_per_step
        if self.position + k > len(self.order):
            self.order = torch.randperm(len(self.prompts), generator=self.prompt_rng)
            self.position = 0
        idx = self.order[self.position : self.position + k].tolist()
        self.position += k
        return idx[distributed.shard(k)]  # this process's prompts (all of them in one process)

    def _as_reward_input(
        self, prompt_idx: list[int], completions: Tensor, mask: Tensor, repeats: int
    ) -> tuple[Any, Any]:
        prompts = [self.prompts[i] for i in prompt_idx for _ in range(repeats)]
        if self.decode is None:
            return prompts, completions
        eos = self.config.eos_id
        texts = []
        for row, m in zip(completions, mask, strict=True):
            tokens = row[m]
            if eos is not None and tokens.numel() and int(tokens[-1]) == eos:
                tokens = tokens[:-1]
            texts.append(self.decode(tokens.cpu()))
        return [self.decode(p.cpu()) for p in prompts], texts

    def _score(
        self, prompt_idx: list[int], completions: Tensor, mask: Tensor, repeats: int
    ) -> tuple[Tensor, Tensor, dict]:
        """Weighted total reward, which completions have one, and each named reward (for the logs)."""
        prompts, completions = self._as_reward_input(prompt_idx, completions, mask, repeats)
        n = len(prompts)
        total = torch.zeros(n, dtype=torch.float64)
        any_valid = torch.zeros(n, dtype=torch.bool)
        named = {}
        for name, fn, weight in self.rewards:
            values, valid = _check_rewards(fn(prompts, completions), name, n, repeats)
            total += torch.where(valid, weight * values, torch.zeros_like(values))
            any_valid |= valid
            named[name] = (values, valid)
        return total, any_valid, named

    def _loss_kwargs(self) -> dict:
        c, s = self.config, self.loss_settings
        kl_in_loss = c.kl_coef > 0 and not c.kl_in_reward
        return {
            "clip": s["clip"],
            "ratio": s["ratio"],
            "aggregate": s["aggregate"],
            "ref_model": self.ref_model if kl_in_loss else None,
            "kl_coef": c.kl_coef if kl_in_loss else 0.0,
            "kl_estimator": c.kl_estimator,
            "entropy_coef": c.entropy_coef,
            "mask_truncated": c.mask_truncated,
        }

    def train_step(self) -> dict[str, float]:
        """One generation and its updates; returns the step's metrics."""
        start = time.perf_counter()
        prompt_idx = self._next_prompts()
        rollout = self._generate(prompt_idx)  # --- rollout
        rewards, valid, named, reward_kl = self._rewards(prompt_idx, rollout)  # --- rewards
        baseline = None
        if self.loss_settings["advantage"] == "scst":
            baseline, greedy_valid = self._greedy_rewards(prompt_idx)
            valid = valid & greedy_valid[rollout.group]
        adv = compute_advantages(  # --- advantages
            rewards, rollout.group, self.loss_settings["advantage"], baseline_rewards=baseline, valid=valid
        )
        zero_spread = group_std_is_zero(rewards, rollout.group, valid)
        keep = valid & ~zero_spread if self.loss_settings["drop_zero_spread"] else valid
        rows = torch.nonzero(keep).squeeze(-1)
        stats = self._update(rollout, adv, rows)  # --- update
        rollout.sampled_log_probs = rollout.sampled_entropy = None  # free the graph
        self.step += 1
        elapsed = time.perf_counter() - start
        metrics = _step_metrics(rollout, rewards, valid, zero_spread, stats, elapsed)  # --- metrics
        if reward_kl is not None:
            metrics["kl"] = reward_kl
        if len(self.rewards) > 1:
            metrics.update(_named_reward_metrics(named))
        return metrics

    def _generate(self, prompt_idx: list[int]) -> Rollout:
        c = self.config
        return generate(
            self.model, [self.prompts[i] for i in prompt_idx], c.num_samples, c.max_new_tokens, c.temperature,
            c.eos_id, c.pad_id, top_k=c.top_k, top_p=c.top_p, generator=self.sample_rng,
            keep_graph=self.sampling_graph, graph_max_tokens=self.graph_max_tokens,
        )  # fmt: skip

    def _rewards(self, prompt_idx: list[int], rollout: Rollout) -> tuple[Tensor, Tensor, dict, float | None]:
        """``(rewards, valid, named rewards, mean KL)``; with ``kl_in_reward`` the k1 KL is subtracted here."""
        c = self.config
        rewards, valid, named = self._score(prompt_idx, rollout.completions, rollout.mask, c.num_samples)
        rewards, valid = rewards.to(self.device, torch.float32), valid.to(self.device)
        if not (c.kl_coef > 0 and c.kl_in_reward):
            return rewards, valid, named, None
        with torch.no_grad():
            ref_lp, _ = token_log_probs(self.ref_model, rollout)
        kl = kl_penalty(rollout.log_probs, ref_lp, "k1").mul(rollout.mask).sum(-1)
        return rewards - c.kl_coef * kl, valid, named, float(kl.mean())

    def _greedy_rewards(self, prompt_idx: list[int]) -> tuple[Tensor, Tensor]:
        """Self-critical baseline (Rennie et al., 2017): each prompt's greedy decode's reward, and which have one."""
        c = self.config
        with torch.no_grad():
            greedy = generate(self.model, [self.prompts[i] for i in prompt_idx], 1, c.max_new_tokens, 0.0,
                              c.eos_id, c.pad_id)  # fmt: skip
        baseline, valid, _ = self._score(prompt_idx, greedy.completions, greedy.mask, 1)
        return baseline.to(self.device, torch.float32), valid.to(self.device)

    def _update(self, rollout: Rollout, adv: Tensor, rows: Tensor) -> _UpdateStats:
        """``updates_per_generation`` optimiser steps on the kept ``rows``, accumulating over micro-batches."""
        c, stats = self.config, _UpdateStats()
        if not rows.numel():
            return stats
        batch = rollout.select(rows) if rows.numel() < rollout.num_completions else rollout
        batch_adv = adv[rows]
        mask = batch.mask & ~batch.truncated.unsqueeze(-1) if c.mask_truncated else batch.mask
        normaliser = {"sequences": float(rows.numel()), "tokens": float(mask.sum().clamp(min=1))}
        size = c.micro_batch_size or rows.numel()
        for _ in range(c.updates_per_generation):
            self.optimizer.zero_grad(set_to_none=True)
            for lo in range(0, rows.numel(), size):
                part = torch.arange(lo, min(lo + size, rows.numel()), device=self.device)
                sub = batch if part.numel() == rows.numel() else batch.select(part)
                terms = policy_loss(self.model, sub, batch_adv[part], **self._loss_kwargs(), normaliser=normaliser,
                                    return_terms=True)  # fmt: skip
                terms.loss.backward()  # the one place where a loss is back-propagated
                stats.add(terms, part.numel())
            self._optimizer_step()
            stats.updates += 1
        return stats

    def _optimizer_step(self) -> None:
        """Average the gradients over processes (one flat all-reduce, as DDP does but in one message, and also
        when the loss backpropagated through the sampling pass rather than a forward of a DDP wrapper),
        clip the gradient norm and step the optimiser: the one place where the weights change."""
        if self.world > 1:
            params = [p for p in self.model.parameters() if p.requires_grad]
            for p in params:
                if p.grad is None:  # a process whose batch left a parameter out still takes part
                    p.grad = torch.zeros_like(p)
            distributed.all_reduce_sum([p.grad for p in params])
            for p in params:
                p.grad.div_(self.world)
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()

    def _checkpoint(self) -> None:
        """Rank 0 writes (the weights and optimiser agree everywhere); the others wait until it is complete."""
        if self.rank == 0:
            self.save(self.out / "checkpoint")
        distributed.barrier()

    def run(self) -> nn.Module:
        """Train until ``steps``; returns the model (trained in place)."""
        c = self.config
        if c.torch_threads:
            torch.set_num_threads(c.torch_threads)
        was_training = self.model.training
        self.model.eval()  # dropout off: the law that samples is the law in the loss
        main = self.rank == 0  # under torchrun, rank 0 alone logs and writes
        logger = _Logger(self.out if main else None, c.progress and main, self.steps, self.step)
        try:
            while self.step < self.steps:
                metrics = _mean_over_processes(self.train_step())
                metrics["step"] = self.step
                self.history.append(metrics)
                if self.step % c.log_every == 0 or self.step == self.steps:
                    logger.log(self.step, metrics)
                if self.out is not None and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self._checkpoint()
                if self.callback is not None and self.callback(self):
                    break
            if self.out is not None:
                self._checkpoint()
        finally:
            logger.close()
            self.model.train(was_training)
        return self.model

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to continue bitwise identically: ``(tensors, json_metadata)``."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optim_tensors, param_groups = optimizer_state(self.optimizer.state_dict())
        tensors.update(optim_tensors)
        tensors["rng.sample"] = self.sample_rng.get_state()
        tensors["rng.prompts"] = self.prompt_rng.get_state()
        tensors["prompts.order"] = self.order.clone()
        meta = {
            "kind": KIND,
            "config": asdict(self.config),
            "training": {
                "seed": self.seed,
                "steps": self.steps,
                "step": self.step,
                "position": self.position,
                "param_groups": param_groups,
            },
        }
        return tensors, meta

    def save(self, directory: str | Path) -> Path:
        """Save a resumable checkpoint (safetensors + JSON, no pickle) into ``directory``."""
        return save_checkpoint(directory, *self.state())

    def load(self, path: str | Path) -> Trainer:
        """Restore the state saved by :meth:`save` into this trainer (built with the same config)."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{path} is not a scoregrad.seq checkpoint")
        saved, current = meta["config"], json.loads(json.dumps(asdict(self.config)))
        if saved != current:
            diff = sorted(k for k in current if saved.get(k) != current[k])
            raise CheckpointError(
                f"{path} was saved with a different config (fields {diff}); pass the same config"
            )
        state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(state)
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint weights do not fit this model: {err}") from err
        tr = meta["training"]
        opt = restore_optimizer_state(self.optimizer.state_dict(), tensors, tr["param_groups"])
        self.optimizer.load_state_dict(opt)
        self.sample_rng.set_state(tensors["rng.sample"])
        self.prompt_rng.set_state(tensors["rng.prompts"])
        if (
            self.rank > 0
        ):  # the checkpoint holds rank 0's sampling RNG; the others draw fresh, distinct streams
            self.sample_rng.manual_seed(self.seed + 1_000_003 * self.rank + 7919 * self.step)
        self.order = tensors["prompts.order"].clone()
        self.position, self.step = tr["position"], tr["step"]
        return self


class _Logger:
    """tqdm progress bar, TensorBoard scalars and ``metrics.csv`` (when ``out`` is set)."""

    def __init__(self, out: Path | None, progress: bool, total: int, initial: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, initial=initial, unit="step", disable=not progress, dynamic_ncols=True)
        self.writer = self.file = self.csv = None
        self.columns: list[str] | None = None
        if out is None:
            return
        out.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"))
        except ImportError:
            self.writer = None
        self.path = out / "metrics.csv"

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(reward=f"{metrics['reward']:.3f}", len=f"{metrics['completion_length']:.1f}")
        if self.writer is not None:
            for k, v in metrics.items():
                if k != "step":
                    self.writer.add_scalar(k, v, step)
        if hasattr(self, "path"):
            if self.csv is None:
                new = not self.path.exists()
                self.file = open(self.path, "a", newline="")  # noqa: SIM115 - kept open for the run
                self.csv = csv.writer(self.file)
                self.columns = ["step", *sorted(k for k in metrics if k != "step")]
                if new:
                    self.csv.writerow(self.columns)
            self.csv.writerow([metrics.get(k, "") for k in self.columns])
            self.file.flush()

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()


def train(
    model: nn.Module,
    reward_fn: RewardFn | Mapping[str, Any],
    prompts: Sequence[Tensor] | Tensor,
    method: str = "grpo",
    num_samples: int = 8,
    steps: int = 200,
    seed: int = 0,
    *,
    config: SeqConfig | None = None,
    ref_model: nn.Module | None = None,
    decode: Callable[[Tensor], str] | None = None,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    callback: Callable[[Trainer], bool | None] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Train an autoregressive model on a sequence reward; returns the model (trained in place).

    Args:
        model: ``model(ids (B, T)) -> logits (B, T, V)``, optionally :class:`~scoregrad.seq.SupportsKVCache`.
        reward_fn: ``reward_fn(prompts, completions) -> (N,)`` floats (None: not applicable, left out of
            its group's baseline); or a dict ``name -> fn`` or ``name -> (fn, weight)`` whose weighted sum
            is the reward (each logged separately). ``prompts`` is the list of the ``N`` completions'
            prompts, ``completions`` the padded ``(N, max_new_tokens)`` LongTensor; with ``decode`` both
            are lists of strings (completions without eos and padding).
        prompts: a list of 1-D LongTensors or a ``(B, T)`` LongTensor to draw prompts from.
        method: see :data:`~scoregrad.seq.config.TRAINER_METHODS`.
        num_samples: completions per prompt (group size).
        steps: generations (training steps) in all, counting those of a resumed run.
        seed: seeds the sampling and the prompt order (build the model under your own seed).
        config: a full :class:`SeqConfig` (then no ``method``/``num_samples``/overrides), else built
            from ``method``, ``num_samples`` and ``overrides``.
        ref_model: frozen reference model for the KL penalty (``kl_coef > 0``).
        decode: token ids -> str, to hand the reward function strings.
        out: run directory: ``metrics.csv``, TensorBoard events in ``tb/``, ``checkpoint/``.
        resume: a checkpoint directory to continue from (same model architecture and config).
        callback: called after every step with the trainer; return True to stop.
        **overrides: :class:`SeqConfig` fields, e.g. ``max_new_tokens=32, learning_rate=1e-4``.
    """
    if config is None:
        names = {f.name for f in fields(SeqConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown SeqConfig field(s) {unknown}; see seq.SeqConfig")
        config = SeqConfig(method=method, num_samples=num_samples, **overrides)
    elif overrides or method != "grpo" or num_samples != 8:
        raise TypeError("config: pass either config= or method/num_samples/keyword overrides, not both")
    trainer = Trainer(
        model, reward_fn, prompts, config, steps=steps, seed=seed, ref_model=ref_model, decode=decode, out=out,
        callback=callback,
    )  # fmt: skip
    if resume is not None:
        trainer.load(resume)
    trainer.run()
    return model
