"""Typed configuration of :func:`scoregrad.seq.train`; every field documents itself (``metadata["help"]``)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from scoregrad.rl.config import _f

__all__ = ["SeqConfig", "TRAINER_METHODS", "describe"]

#: Trainer methods: advantage method and the loss defaults they imply (fields left at None take these).
TRAINER_METHODS: dict[str, dict] = {
    "reinforce": {"advantage": "none", "aggregate": "sequence_sum", "ratio": "token", "clip": None},
    "rloo": {"advantage": "rloo", "aggregate": "sequence_sum", "ratio": "token", "clip": None},
    "grpo": {"advantage": "grpo", "aggregate": "sequence_mean", "ratio": "token", "clip": (0.2, 0.2)},
    "dr_grpo": {"advantage": "dr_grpo", "aggregate": "constant", "ratio": "token", "clip": (0.2, 0.2)},
    "dapo": {
        "advantage": "grpo",
        "aggregate": "token_mean",
        "ratio": "token",
        "clip": (0.2, 0.28),
        "drop_zero_spread": True,
    },
    "gspo": {"advantage": "grpo", "aggregate": "sequence_mean", "ratio": "sequence", "clip": (3e-4, 4e-4)},
    "reinforce++": {
        "advantage": "reinforce++",
        "aggregate": "token_mean",
        "ratio": "token",
        "clip": (0.2, 0.2),
    },
    "scst": {"advantage": "scst", "aggregate": "sequence_sum", "ratio": "token", "clip": None},
}


@dataclass
class SeqConfig:
    """Settings of a sequence-reward run (defaults per method in :data:`TRAINER_METHODS`)."""

    method: str = _f("grpo", "reinforce, rloo, grpo, dr_grpo, dapo, gspo, reinforce++ or scst")
    num_samples: int = _f(8, "completions per prompt (the group size G)")
    prompts_per_step: int = _f(
        8, "prompts per generation; the batch is prompts_per_step * num_samples completions"
    )
    micro_batch_size: int = _f(
        0, "completions per forward/backward (gradient accumulation); 0: the whole batch"
    )
    max_new_tokens: int = _f(16, "length of the completions")
    temperature: float = _f(1.0, "sampling temperature")
    top_k: int = _f(0, "sample from the k most likely tokens (0: all)")
    top_p: float = _f(1.0, "nucleus sampling mass (1: all)")
    eos_id: int | None = _f(None, "end-of-sequence token (None: completions always have max_new_tokens)")
    pad_id: int = _f(0, "padding token of prompts (left) and completions (after eos)")
    learning_rate: float = _f(1e-5, "AdamW learning rate")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    max_grad_norm: float = _f(1.0, "clip the global gradient norm to this (<= 0: no clipping)")
    updates_per_generation: int = _f(
        1, "optimiser steps on each batch of completions (> 1: the clipped ratio matters)"
    )
    clip: tuple[float, float] | None = _f(None, "(eps_low, eps_high) ratio clip; None: the method's default")
    no_clip: bool = _f(False, "turn clipping off whatever the method's default")
    ratio: str | None = _f(None, "token or sequence (GSPO); None: the method's default")
    aggregate: str | None = _f(
        None, "sequence_sum, token_mean, sequence_mean or constant; None: the method's default"
    )
    kl_coef: float = _f(0.0, "KL penalty to the reference model (needs ref_model)")
    kl_estimator: str = _f("k3", "k1 or k3")
    kl_in_reward: bool = _f(
        False, "subtract kl_coef * the summed k1 KL from the reward instead of adding it to the loss"
    )
    entropy_coef: float = _f(0.0, "entropy bonus coefficient")
    mask_truncated: bool = _f(False, "leave completions without eos out of the loss")
    drop_zero_spread: bool | None = _f(
        None, "leave groups whose rewards are all equal out of the loss (DAPO); None: method default"
    )
    sampling_graph: bool | None = _f(
        None,
        "keep the sampling pass's graph for the loss (no second forward); None: when on-policy "
        "(updates_per_generation 1), one micro-batch and a model with a KV cache, dropped when the "
        "completions grow past 8 tokens",
    )
    log_every: int = _f(1, "log metrics every this many steps")
    checkpoint_every: int = _f(
        0, "save a checkpoint every this many steps (0: only at the end, when out is set)"
    )
    torch_threads: int = _f(0, "torch CPU threads (0: leave as is)")
    progress: bool = _f(True, "show a progress bar")

    def resolved(self) -> dict:
        """The loss settings after applying the method's defaults."""
        defaults = TRAINER_METHODS[self.method]
        clip = None if self.no_clip else (tuple(self.clip) if self.clip is not None else defaults["clip"])
        drop = (
            defaults.get("drop_zero_spread", False)
            if self.drop_zero_spread is None
            else self.drop_zero_spread
        )
        return {
            "advantage": defaults["advantage"],
            "aggregate": self.aggregate or defaults["aggregate"],
            "ratio": self.ratio or defaults["ratio"],
            "clip": clip,
            "drop_zero_spread": drop,
        }

    def validate(self) -> None:
        if self.method not in TRAINER_METHODS:
            raise ValueError(f"method: expected one of {sorted(TRAINER_METHODS)}, got {self.method!r}")
        positive = (
            "num_samples",
            "prompts_per_step",
            "max_new_tokens",
            "updates_per_generation",
            "log_every",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
        for name in ("micro_batch_size", "checkpoint_every", "torch_threads", "top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}: expected an int >= 0, got {value!r}")
        if self.method != "reinforce" and self.method != "scst" and self.num_samples < 2:
            raise ValueError(
                f"num_samples: method={self.method!r} uses a group baseline and needs num_samples >= 2, got 1"
            )
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate!r}")
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef: expected >= 0, got {self.kl_coef!r}")
        if self.clip is not None and self.no_clip:
            raise ValueError("clip: given together with no_clip=True; pass one of them")


def describe() -> str:
    """One line per field: name, default, help."""
    return "\n".join(f"{f.name} = {f.default!r}: {f.metadata['help']}" for f in fields(SeqConfig))
