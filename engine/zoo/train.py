"""Retrain the whole zoo from a fixed seed: `python -m engine.zoo.train` (30 min measured on 2 CPU cores).

Phases: benchmark -> tokenizer -> one Qwen3ForCausalLM per size (one size also saved at several training
steps, standing in for training stages) -> evaluation, which writes MODEL_CARD.md and failures.jsonl.
Loss is next-token cross-entropy on the answer tokens (+ <eos>) only: the prompts are random by design, and a
loss on them (tried at weight 0.25) slowed the learning of retrieval about 2.5x in a 1,000-step trial.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from engine.zoo import MODELS_DIR, bench_gen, load_benchmark
from engine.zoo.tokenizer_build import build_tokenizer

log = logging.getLogger(__name__)
SEED = 1234
BATCH = 32


@dataclass(frozen=True)
class ZooRecipe:
    """How one zoo size is trained (not how a model is loaded: that is engine.model_spec.ModelSpec)."""

    name: str
    layers: int
    width: int
    heads: int
    kv_heads: int
    head_dim: int  # >= 32: q/k RMSNorm caps attention logits at sqrt(head_dim), too flat for copying below that
    ffn: int
    steps: int
    lr: float
    checkpoints: tuple[int, ...] = ()  # steps at which a copy is saved as "<name>-step<step>"


SPECS = (
    ZooRecipe("xs", layers=2, width=32, heads=2, kv_heads=1, head_dim=32, ffn=64, steps=6000, lr=5e-3),
    ZooRecipe("s", layers=3, width=64, heads=2, kv_heads=1, head_dim=32, ffn=160, steps=6000, lr=5e-3),
    ZooRecipe("m", layers=4, width=96, heads=2, kv_heads=2, head_dim=64, ffn=256, steps=6000, lr=5e-3,
              checkpoints=(50, 200, 500, 1000, 2000, 3000, 4500, 6000)),
    ZooRecipe("l", layers=6, width=128, heads=4, kv_heads=2, head_dim=64, ffn=384, steps=8000, lr=4e-3),
)


def checkpoint_name(spec: ZooRecipe, step: int) -> str:
    return f"{spec.name}-step{step:05d}"


def make_config(spec: ZooRecipe, tokenizer: PreTrainedTokenizerFast) -> Qwen3Config:
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.width,
        intermediate_size=spec.ffn,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=16384,  # long-context eval prompts must run even though training is short
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def encode_train(tokenizer: PreTrainedTokenizerFast) -> list[tuple[list[int], int]]:
    """(ids of <bos> prompt answer <eos>, index of the first answer token) per train case."""
    cases = load_benchmark("train")
    prompts = tokenizer([c.prompt for c in cases]).input_ids
    answers = tokenizer([c.reference for c in cases], add_special_tokens=False).input_ids
    return [(p + a + [tokenizer.eos_token_id], len(p)) for p, a in zip(prompts, answers)]


def batches(examples: list[tuple[list[int], int]], pad_id: int,
            seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless length-bucketed batches of (ids [B, T], role [B, T]: 0 pad, 1 prompt, 2 answer).

    Shuffle, sort chunks of 50 batches by length, shuffle the batches. Right padding needs no attention mask:
    with causal attention real tokens never see the pads after them.
    """
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(examples), generator=gen).tolist()
        groups = []
        for start in range(0, len(order), BATCH * 50):
            chunk = sorted(order[start : start + BATCH * 50], key=lambda i: len(examples[i][0]))
            groups += [chunk[i : i + BATCH] for i in range(0, len(chunk), BATCH)]
        for gi in torch.randperm(len(groups), generator=gen).tolist():
            rows = [examples[i] for i in groups[gi]]
            width = max(len(ids) for ids, _ in rows)
            ids = torch.full((len(rows), width), pad_id)
            role = torch.zeros((len(rows), width), dtype=torch.long)
            for r, (seq, start) in enumerate(rows):
                ids[r, : len(seq)] = torch.tensor(seq)
                role[r, 1 : len(seq)] = 1  # <bos> is never a target
                role[r, start : len(seq)] = 2
            yield ids, role


def lr_factor(step: int, total: int, warmup: int = 100) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def save(model: Qwen3ForCausalLM, tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def train_one(spec: ZooRecipe, tokenizer: PreTrainedTokenizerFast, examples: list, out: Path) -> dict:
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(make_config(spec, tokenizer))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}], lr=spec.lr, betas=(0.9, 0.98)
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, spec.steps))
    data = batches(examples, tokenizer.pad_token_id, SEED)
    model.train()
    t0, running = time.time(), None
    for step in range(1, spec.steps + 1):
        ids, role = next(data)
        logits = model(input_ids=ids).logits  # [B, T, V]
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")  # [B, T-1]
        answer_loss = nll[role[:, 1:] == 2].mean()
        loss = answer_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running = answer_loss.item() if running is None else 0.98 * running + 0.02 * answer_loss.item()
        if step % 200 == 0:
            log.info("%s step %d answer loss %.3f (%.0fs)", spec.name, step, running, time.time() - t0)
        if step in spec.checkpoints:
            model.eval()
            save(model, tokenizer, out / checkpoint_name(spec, step))
            model.train()
    model.eval()
    save(model, tokenizer, out / spec.name)
    params = sum(p.numel() for p in model.parameters())
    return {**asdict(spec), "params": params, "final_loss": round(running, 4),
            "train_seconds": round(time.time() - t0, 1)}


def main(out: Path = MODELS_DIR, only: tuple[str, ...] = ()) -> None:
    t0 = time.time()
    bench_gen.build()
    cases = load_benchmark("train") + load_benchmark("eval")
    tokenizer = build_tokenizer(f"{c.prompt} {c.reference}" for c in cases)
    log.info("phase benchmark+tokenizer: %d cases, vocab %d (%.0fs)", len(cases), len(tokenizer), time.time() - t0)
    examples = encode_train(tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() and only else {"models": {}}
    for spec in SPECS:
        if only and spec.name not in only:
            continue
        t1 = time.time()
        index["models"][spec.name] = train_one(spec, tokenizer, examples, out)
        log.info("phase train %s: %.0fs", spec.name, time.time() - t1)
    index["sizes"] = [s.name for s in SPECS]
    index["checkpoints"] = [checkpoint_name(s, k) for s in SPECS for k in s.checkpoints]
    index["seed"] = SEED
    index["batch"] = BATCH
    index["vocab"] = len(tokenizer)
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    log.info("phase train total: %.0fs", time.time() - t0)
    from engine.zoo.evaluate import evaluate_zoo  # noqa: PLC0415 (heavy; only after training)

    evaluate_zoo()
    log.info("done in %.0fs", time.time() - t0)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=[], help="retrain only these sizes (debugging)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (1 is faster on a busy machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    main(only=tuple(args.only))
