"""scoregrad.seq against TRL's GRPOTrainer and RLOOTrainer (and a minimal hand-written loop), same model.

Same tiny GPT-2 (``GPT2Config``, random init, no download), pretrained by maximum likelihood on the
arithmetic task of ``examples/seq_arithmetic.py`` for a short while and saved to a folder that
every runner loads; same prompts ``a+b=``, same exact-match reward, 8 prompts x 8 completions,
AdamW at the same constant learning rate, gradient-norm clip 1, same ``max_new_tokens``; CPU, one
torch thread, one process at a time (each runner is its own subprocess, so peak RSS is its own).

Measured per runner and seed: milliseconds per training step (mean after 3 warm-up steps),
generated tokens per second, peak resident memory, held-out greedy exact match after the steps.
Before timing, the script asserts that on one fixed batch scoregrad's loss (and gradient) equals
TRL's for TRL's ``grpo`` and ``dr_grpo`` loss types and for its RLOO trainer.

    python benchmarks/seq_vs_trl.py                   # small and large settings, 3 seeds
    python benchmarks/seq_vs_trl.py --settings small --seeds 1 --steps 10   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks"), str(ROOT / "src")]

import seq_arithmetic as task  # noqa: E402  (the task, its model pretraining and evaluation live in the example)

SETTINGS = {
    "small": {"n_layer": 2, "n_embd": 128, "n_head": 4, "max_new_tokens": 8, "pretrain_steps": 1000},
    "large": {"n_layer": 4, "n_embd": 256, "n_head": 4, "max_new_tokens": 32, "pretrain_steps": 1500},
}
PROMPTS_PER_STEP, GROUP, LR, WARMUP = 8, 8, 1e-4, 3
RUNNERS = ("scoregrad_grpo", "scoregrad_rloo", "trl_grpo", "trl_rloo", "loop_grpo")


# ---------------------------------------------------------------------------- shared pieces
def gpt2(setting: dict):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(task.VOCAB), n_positions=64, n_embd=setting["n_embd"], n_layer=setting["n_layer"],
        n_head=setting["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=task.EOS, eos_token_id=task.EOS, pad_token_id=task.PAD,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def char_tokenizer():
    """A transformers tokenizer for the example's 17-symbol vocabulary (one token per character)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({s: i for i, s in enumerate(task.VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tok.padding_side = "left"
    return tok


def prompts_for(seed: int, n: int = 2000) -> list[str]:
    return [f"{a}+{b}=" for a, b in task.problems(n, seed=seed)]


def held_out(seed: int) -> list[tuple[int, int]]:
    return task.problems(200, seed=10_000 + seed)


def exact_match_reward(prompts, completions, **kwargs) -> list[float]:
    return task.exact_match(list(prompts), [c for c in completions])


def partial_match(prompts, completions, **kwargs) -> list[float]:
    """Fraction of the answer's characters right, position by position: a reward with spread, for the loss check."""
    out = []
    for p, c in zip(prompts, completions, strict=True):
        a, b = p.rstrip("=").split("+")
        answer = str(int(a) + int(b))
        out.append(sum(x == y for x, y in zip(c, answer, strict=False)) / max(len(answer), len(c), 1))
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would also count the parent's size at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- runners (one per subprocess)
def run_scoregrad(model_dir: Path, method: str, steps: int, seed: int, max_new_tokens: int) -> dict:
    from transformers import GPT2LMHeadModel

    from scoregrad import seq
    from scoregrad.seq.hf import HFCausalLM

    model = HFCausalLM(GPT2LMHeadModel.from_pretrained(model_dir))
    prompts = [task.encode(p) for p in prompts_for(seed)]
    ends, tokens = [], []

    def on_step(trainer):
        ends.append(time.perf_counter())
        tokens.append(trainer.history[-1]["completion_length"] * PROMPTS_PER_STEP * GROUP)

    start = time.perf_counter()
    seq.train(
        model, task.exact_match, prompts, method=method, num_samples=GROUP, steps=steps, seed=seed,
        decode=task.decode, prompts_per_step=PROMPTS_PER_STEP, max_new_tokens=max_new_tokens,
        eos_id=task.EOS, pad_id=task.PAD, learning_rate=LR, max_grad_norm=1.0, progress=False, callback=on_step,
    )  # fmt: skip
    return _summary(start, ends, tokens, task.accuracy(model, held_out(seed), max_new_tokens))


def _trl_trainer(
    kind: str, model_dir: Path, steps: int, seed: int, max_new_tokens: int, out: str, loss_type: str = "grpo"
):
    from datasets import Dataset
    from transformers import GPT2LMHeadModel

    common = dict(
        output_dir=out, per_device_train_batch_size=PROMPTS_PER_STEP * GROUP, num_generations=GROUP,
        max_completion_length=max_new_tokens, learning_rate=LR, lr_scheduler_type="constant", max_steps=steps,
        use_cpu=True, gradient_checkpointing=False, bf16=False, beta=0.0, report_to="none", save_strategy="no",
        logging_steps=10_000, seed=seed, data_seed=seed, max_grad_norm=1.0, dataloader_num_workers=0,
        disable_tqdm=True, temperature=1.0,
    )  # fmt: skip
    if kind == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

        common["loss_type"] = loss_type
        if loss_type == "dr_grpo":
            common["scale_rewards"] = "none"  # Dr. GRPO: no std normalisation (TRL's docs pair the two)
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    dataset = Dataset.from_dict({"prompt": prompts_for(seed)})
    model = GPT2LMHeadModel.from_pretrained(model_dir)
    return Trainer(model=model, reward_funcs=exact_match_reward, args=Config(**common), train_dataset=dataset,
                   processing_class=char_tokenizer())  # fmt: skip


def run_trl(model_dir: Path, kind: str, steps: int, seed: int, max_new_tokens: int) -> dict:
    from transformers import TrainerCallback

    from scoregrad.seq.hf import HFCausalLM

    ends, tokens = [], []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())

    def counting_reward(prompts, completions, completion_ids=None, **kwargs):
        tokens.append(sum(len(c) for c in completion_ids))
        return exact_match_reward(prompts, completions)

    counting_reward.__name__ = "exact_match"
    with tempfile.TemporaryDirectory() as out:
        trainer = _trl_trainer(kind, model_dir, steps, seed, max_new_tokens, out)
        trainer.reward_funcs = [counting_reward]
        trainer.add_callback(Clock())
        start = time.perf_counter()
        trainer.train()
    model = HFCausalLM(trainer.model.eval())
    return _summary(start, ends, tokens, task.accuracy(model, held_out(seed), max_new_tokens))


def run_loop(model_dir: Path, steps: int, seed: int, max_new_tokens: int) -> dict:
    """The reference: a minimal GRPO loop in plain PyTorch on the HF model (KV-cache sampling, one loss forward)."""
    from transformers import GPT2LMHeadModel

    from scoregrad.seq.hf import HFCausalLM

    torch.manual_seed(seed)
    model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    prompts = prompts_for(seed)
    order = torch.randperm(len(prompts))
    ends, tokens = [], []
    start = time.perf_counter()
    for step in range(steps):
        batch = [prompts[int(i)] for i in order[step * PROMPTS_PER_STEP : (step + 1) * PROMPTS_PER_STEP]]
        enc = [task.encode(p) for p in batch for _ in range(GROUP)]
        width = max(len(e) for e in enc)
        ids = torch.stack([torch.cat([torch.full((width - len(e),), task.PAD), e]) for e in enc])
        attn = ids != task.PAD
        # sample with the KV cache, no grad
        with torch.no_grad():
            cache, x, mask, out_ids = None, ids, attn.long(), []
            alive = torch.ones(len(enc), dtype=torch.bool)
            for _ in range(max_new_tokens):
                pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, -x.shape[1] :]
                o = model(
                    input_ids=x, attention_mask=mask, position_ids=pos, past_key_values=cache, use_cache=True
                )
                cache = o.past_key_values
                nxt = torch.multinomial(o.logits[:, -1].softmax(-1), 1).squeeze(-1)
                nxt = torch.where(alive, nxt, torch.full_like(nxt, task.PAD))
                out_ids.append(nxt)
                mask = torch.cat([mask, alive.long().unsqueeze(-1)], 1)
                alive = alive & (nxt != task.EOS)
                x = nxt.unsqueeze(-1)
                if not alive.any():
                    break
        comp = torch.stack(out_ids, 1)
        comp_mask = mask[:, width:].bool()
        rewards = torch.tensor(
            task.exact_match(
                batch_rep := [p for p in batch for _ in range(GROUP)],
                [task.decode(c[m]) for c, m in zip(comp, comp_mask, strict=True)],
            )
        )
        del batch_rep
        grouped = rewards.view(-1, GROUP)
        adv = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).view(-1)
        # one teacher-forced forward with grad for the loss
        full = torch.cat([ids, comp], 1)
        full_mask = torch.cat([attn, comp_mask], 1).long()
        pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=full, attention_mask=full_mask, position_ids=pos).logits[:, width - 1 : -1]
        lp = logits.log_softmax(-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        per_token = -torch.exp(lp - lp.detach()) * adv.unsqueeze(-1)
        loss = ((per_token * comp_mask).sum(-1) / comp_mask.sum(-1).clamp(min=1)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ends.append(time.perf_counter())
        tokens.append(int(comp_mask.sum()))
    return _summary(start, ends, tokens, task.accuracy(HFCausalLM(model), held_out(seed), max_new_tokens))


def _summary(start: float, ends: list[float], tokens: list[float], accuracy: float) -> dict:
    times = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)][WARMUP:]
    return {
        "ms_per_step": 1000 * statistics.mean(times),
        "tokens_per_s": sum(tokens[WARMUP:]) / sum(times),
        "peak_rss_mb": peak_rss_mb(),
        "held_out_accuracy": accuracy,
        "steps": len(ends),
    }


# ---------------------------------------------------------------------------- equality with TRL's loss
def check_losses_equal(model_dir: Path, max_new_tokens: int, seed: int = 0) -> dict:
    """On one fixed batch, scoregrad's loss and gradient equal TRL's (grpo, dr_grpo, RLOO)."""
    from scoregrad import seq
    from scoregrad.seq.hf import HFCausalLM

    report = {}
    for name, kind, loss_type, ours in [
        ("grpo", "grpo", "grpo", {"method": "grpo", "clip": (0.2, 0.2), "aggregate": "sequence_mean"}),
        ("dr_grpo", "grpo", "dr_grpo", {"method": "dr_grpo", "clip": (0.2, 0.2), "aggregate": "constant"}),
        ("rloo", "rloo", None, {"method": "rloo", "clip": (0.2, 0.2), "aggregate": "sequence_sum"}),
    ]:
        with tempfile.TemporaryDirectory() as out:
            trainer = _trl_trainer(kind, model_dir, 1, seed, max_new_tokens, out, loss_type or "grpo")
            trainer.reward_funcs = [partial_match]  # spread within groups, so the advantages are not all zero
            model = trainer.model
            model.eval()
            # three-digit operands only: no left padding, so TRL's default position ids agree with the mask's
            prompts = [f"{a}+{b}=" for a, b in task.problems(400, seed=7) if a >= 100 and b >= 100][
                :PROMPTS_PER_STEP
            ]
            torch.manual_seed(seed)
            batch = trainer._generate_and_score_completions(
                [{"prompt": p} for p in prompts for _ in range(GROUP)]
            )
            model.zero_grad()
            trl_loss = trainer.compute_loss(model, batch)
            trl_loss.backward()
            trl_grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
            # the same batch, through scoregrad
            n = batch["completion_ids"].shape[0]
            completions = torch.full((n, max_new_tokens), task.PAD)
            completions[:, : batch["completion_ids"].shape[1]] = batch["completion_ids"]
            mask = torch.zeros((n, max_new_tokens), dtype=torch.bool)
            mask[:, : batch["completion_mask"].shape[1]] = batch["completion_mask"].bool()
            completions = completions.masked_fill(~mask, task.PAD)
            policy = HFCausalLM(model)
            rollout = seq.Rollout(
                completions=completions, mask=mask, log_probs=torch.zeros(n, max_new_tokens),
                group=torch.arange(n) // GROUP, truncated=~(completions == task.EOS).any(-1),
                prompt_ids=batch["prompt_ids"], prompt_mask=batch["prompt_mask"].bool(),
                temperature=1.0, top_k=0, top_p=1.0, pad_id=task.PAD, eos_id=task.EOS,
            )  # fmt: skip
            with torch.no_grad():
                rollout.log_probs, _ = seq.token_log_probs(policy, rollout)  # the behaviour law: this model
            rewards = torch.tensor(
                partial_match(
                    [p for p in prompts for _ in range(GROUP)],
                    [task.decode(c[m]) for c, m in zip(completions, mask, strict=True)],
                )
            )
            adv = seq.advantages(rewards, rollout.group, ours["method"])
            model.zero_grad()
            loss = seq.policy_loss(policy, rollout, adv, clip=ours["clip"], aggregate=ours["aggregate"])
            loss.backward()
            grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
            trl_adv = batch["advantages"]
            assert torch.allclose(adv, trl_adv, atol=1e-5), (name, adv, trl_adv)
            assert abs(loss.item() - trl_loss.item()) <= 1e-5 * max(1.0, abs(trl_loss.item())), (
                name,
                loss.item(),
                trl_loss.item(),
            )
            assert torch.allclose(grad, trl_grad, atol=1e-6, rtol=1e-4), (name, (grad - trl_grad).abs().max())
            report[name] = {"scoregrad": loss.item(), "trl": trl_loss.item(), "max_grad_diff": float((grad - trl_grad).abs().max()),
                            "reward_mean": float(rewards.mean())}  # fmt: skip
            print(f"loss check {name:8s}: scoregrad {loss.item():+.6f}  TRL {trl_loss.item():+.6f}  "
                  f"max |grad diff| {report[name]['max_grad_diff']:.2e}  (mean reward {rewards.mean():.3f})")  # fmt: skip
    return report


# ---------------------------------------------------------------------------- driver
def pretrained_model(setting_name: str, steps: int, folder: Path) -> Path:
    """One MLE-pretrained model per setting (seed 0); the runners' seeds vary sampling and prompt order.

    Reused when ``folder`` already holds it (the pretraining is deterministic: same setting, steps, seed).
    """
    path = folder / f"{setting_name}_{steps}"
    if (path / "config.json").exists():
        return path
    torch.manual_seed(0)
    model = gpt2(SETTINGS[setting_name])
    from scoregrad.seq.hf import HFCausalLM

    task.pretrain(HFCausalLM(model), steps, lr=1e-3, seed=0)
    model.save_pretrained(path)
    return path


def worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    model_dir, max_new = Path(args.model_dir), args.max_new_tokens
    if args.worker.startswith("scoregrad_"):
        result = run_scoregrad(model_dir, args.worker.split("_", 1)[1], args.steps, args.seed, max_new)
    elif args.worker.startswith("trl_"):
        result = run_trl(model_dir, args.worker.split("_", 1)[1], args.steps, args.seed, max_new)
    else:
        result = run_loop(model_dir, args.steps, args.seed, max_new)
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="small,large")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--pretrain-steps", type=int, default=0, help="0: the setting's default")
    parser.add_argument("--name", default="seq_vs_trl")
    parser.add_argument(
        "--models", help="folder to keep the pretrained models in and reuse (default: a temporary one)"
    )
    parser.add_argument("--worker", choices=RUNNERS)
    parser.add_argument("--model-dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    torch.set_num_threads(1)
    from common import machine, save, table

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows, raw, checks = [], {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.models or scratch
        for setting in args.settings.split(","):
            max_new = SETTINGS[setting]["max_new_tokens"]
            steps = args.pretrain_steps or SETTINGS[setting]["pretrain_steps"]
            model_dir = pretrained_model(setting, steps, Path(folder))
            checks[setting] = check_losses_equal(model_dir, max_new)
            raw[setting] = {r: [] for r in RUNNERS}
            for seed in range(args.seeds):
                for runner in RUNNERS:
                    cmd = [sys.executable, __file__, "--worker", runner, "--model-dir", str(model_dir), "--seed", str(seed),
                           "--steps", str(args.steps), "--max-new-tokens", str(max_new)]  # fmt: skip
                    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                    if done.returncode or not line:
                        raise RuntimeError(f"{runner} seed {seed} failed:\n{done.stderr[-3000:]}")
                    raw[setting][runner].append(json.loads(line[0][len("RESULT ") :]))
                    print(setting, runner, seed, raw[setting][runner][-1], flush=True)
            for runner in RUNNERS:
                runs = raw[setting][runner]
                mean = {
                    k: statistics.mean(r[k] for r in runs)
                    for k in ("ms_per_step", "tokens_per_s", "peak_rss_mb", "held_out_accuracy")
                }
                sd = statistics.stdev(r["ms_per_step"] for r in runs) if len(runs) > 1 else 0.0
                rows.append({"setting": setting, "runner": runner, **mean, "ms_sd": sd})
    for setting in args.settings.split(","):
        ms = {r["runner"]: r["ms_per_step"] for r in rows if r["setting"] == setting}
        for r in rows:
            if r["setting"] == setting:
                r["vs_trl_grpo"] = ms["trl_grpo"] / r["ms_per_step"]
                r["vs_trl_rloo"] = ms["trl_rloo"] / r["ms_per_step"]
                r["vs_loop"] = ms["loop_grpo"] / r["ms_per_step"]
    columns = ["setting", "runner", "ms_per_step", "ms_sd", "tokens_per_s", "peak_rss_mb", "held_out_accuracy",
               "vs_trl_grpo", "vs_trl_rloo", "vs_loop"]  # fmt: skip
    text = table(rows, columns, {c: ".3g" for c in columns[2:]})
    print(text)
    figure = None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        settings = args.settings.split(",")
        figure, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 3.5), squeeze=False)
        for ax, setting in zip(axes[0], settings, strict=True):
            sub = [r for r in rows if r["setting"] == setting]
            ax.bar(
                [r["runner"] for r in sub], [r["ms_per_step"] for r in sub], yerr=[r["ms_sd"] for r in sub]
            )
            ax.set_title(f"{setting}: {SETTINGS[setting]}", fontsize=8)
            ax.set_ylabel("ms per step (8 x 8 completions)")
            ax.tick_params(axis="x", rotation=30, labelsize=7)
    except ImportError:
        pass
    import transformers
    import trl

    meta = {**machine(), "trl": trl.__version__, "transformers": transformers.__version__}
    save(args.name, {"meta": meta, "settings": SETTINGS, "steps": args.steps, "seeds": args.seeds,
                     "pretrain_steps": args.pretrain_steps, "rows": rows, "raw": raw, "loss_checks": checks}, figure)  # fmt: skip
    (Path(__file__).parent / "results" / f"{args.name}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
