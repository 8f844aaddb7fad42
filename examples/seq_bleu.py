"""Synthetic translation with a BLEU reward: SCST and RLOO against maximum likelihood alone.

The "languages": source words ``s0..s19`` map one-to-one to target words ``t0..t19``, and the
target swaps each adjacent pair of words (a fixed reordering). A decoder-only model (the GPT of
``examples/seq_arithmetic.py``) reads ``source <sep>`` and writes the translation. It is pretrained
by maximum likelihood for a short while, then fine-tuned with reward = sentence BLEU from
``sacrebleu`` by self-critical sequence training (Rennie et al., 2017: the greedy decode's BLEU is
the baseline) and by RLOO; continuing maximum likelihood for the same number of steps is the
reference. Score: corpus BLEU of greedy translations of held-out sentences.

    python examples/seq_bleu.py            # a few minutes on a CPU
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from sacrebleu.metrics import BLEU

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seq_arithmetic import GPT, GPTConfig  # noqa: E402

from scoregrad import seq  # noqa: E402

WORDS = 20
PAD, EOS, SEP = 0, 1, 2
SOURCE = [f"s{i}" for i in range(WORDS)]
TARGET = [f"t{(7 * i + 3) % WORDS}" for i in range(WORDS)]  # the dictionary
VOCAB = ["<pad>", "<eos>", "<sep>", *SOURCE, *sorted(set(TARGET), key=lambda w: int(w[1:]))]
INDEX = {w: i for i, w in enumerate(VOCAB)}
_sentence_bleu = BLEU(effective_order=True)


def translate(words: list[str]) -> list[str]:
    mapped = [TARGET[int(w[1:])] for w in words]
    for i in range(0, len(mapped) - 1, 2):  # the reordering: swap each adjacent pair
        mapped[i], mapped[i + 1] = mapped[i + 1], mapped[i]
    return mapped


def sentences(n: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [[rng.choice(SOURCE) for _ in range(rng.randint(4, 8))] for _ in range(n)]


def prompt_ids(words: list[str]) -> torch.Tensor:
    return torch.tensor([INDEX[w] for w in words] + [SEP])


def decode(ids: torch.Tensor) -> str:
    return " ".join(VOCAB[i] for i in ids.tolist() if i > SEP)


def bleu_reward(prompts: list[str], completions: list[str]) -> list[float]:
    """Sentence BLEU (0-1) of each completion against the reference translation of its prompt."""
    return [
        _sentence_bleu.sentence_score(c, [" ".join(translate(p.split()))]).score / 100
        for p, c in zip(prompts, completions, strict=True)
    ]


def corpus_bleu(model, data: list[list[str]]) -> float:
    with torch.no_grad():
        r = seq.generate(model, [prompt_ids(s) for s in data], 1, 10, temperature=0.0, eos_id=EOS, pad_id=PAD)
    hyps = [decode(c[m]) for c, m in zip(r.completions, r.mask, strict=True)]
    return BLEU().corpus_score(hyps, [[" ".join(translate(s)) for s in data]]).score


def mle(model, data: list[list[str]], steps: int, seed: int, lr: float = 3e-3, batch: int = 32) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    rng = random.Random(seed)
    for _ in range(steps):
        rows = [rng.choice(data) for _ in range(batch)]
        seqs = [
            torch.cat([prompt_ids(s), torch.tensor([INDEX[w] for w in translate(s)] + [EOS])]) for s in rows
        ]
        width = max(len(x) for x in seqs)
        ids = torch.full((batch, width), PAD)
        mask = torch.zeros(batch, width, dtype=torch.bool)
        target = torch.full((batch, width), -100)
        for i, (s, x) in enumerate(zip(rows, seqs, strict=True)):
            ids[i, width - len(x) :], mask[i, width - len(x) :] = x, True
            answer = len(x) - len(s) - 1  # tokens after <sep>
            target[i, width - answer - 1 : width - 1] = x[-answer:]
        logits = model.decode(ids, mask, None)[0]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-steps", type=int, default=150)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    train_data, held_out = sentences(3000, args.seed), sentences(args.eval_size, 10_000 + args.seed)
    base = GPT(GPTConfig(vocab_size=len(VOCAB), block_size=24, n_embd=64))
    mle(base, train_data, args.pretrain_steps, args.seed)
    results = {"mle_pretrained": corpus_bleu(base, held_out)}
    more = copy.deepcopy(base)
    mle(more, train_data, args.steps, args.seed + 1, batch=64)  # 64 sequences per step, as the RL runs
    results["mle_continued"] = corpus_bleu(more, held_out)
    prompts = [prompt_ids(s) for s in train_data]
    for method, samples in (("scst", 8), ("rloo", 8)):
        model = copy.deepcopy(base)
        seq.train(model, bleu_reward, prompts, method=method, num_samples=samples, steps=args.steps, seed=args.seed,
                  decode=decode, max_new_tokens=10, eos_id=EOS, pad_id=PAD, learning_rate=1e-3, progress=False)  # fmt: skip
        results[method] = corpus_bleu(model, held_out)
    for name, score in results.items():
        print(f"{name:15s} held-out corpus BLEU {score:5.1f}")
    return results


if __name__ == "__main__":
    main()
