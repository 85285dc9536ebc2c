"""Measure the zoo on the eval split: accuracy, failure cases and the checkpoint Δℓ trend.

Accuracy is greedy exact match of the whole reference. It is computed with one teacher-forced forward pass:
greedy decoding reproduces the reference iff the top-1 token is right at every reference position given the
correct prefix, and the first position where it is not is exactly the failure we ship.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Iterable, Sequence

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from engine.zoo import (
    FAILURES_PATH,
    FAMILIES,
    CaseScore,
    ZooCase,
    ZooFailure,
    load_benchmark,
    zoo_checkpoints,
    zoo_names,
    zoo_path,
)
from engine.zoo.card import write_card

log = logging.getLogger(__name__)
FAILURES_PER_FAMILY = 25
MAX_BATCH_TOKENS = 8192


def load(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    folder = zoo_path(name)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(folder))


@torch.no_grad()
def next_logits(model: PreTrainedModel, seqs: Sequence[list[int]], starts: Sequence[int]) -> list[torch.Tensor]:
    """For each sequence, next-token logits [len - start + 1, V] at positions start-1 .. len-1.

    Sequences are length-sorted and right-padded into batches; no mask is needed because causal attention
    never lets a real token see the pads after it.
    """
    batches: list[list[int]] = [[]]
    for k in sorted(range(len(seqs)), key=lambda i: len(seqs[i])):
        if batches[-1] and (len(batches[-1]) + 1) * len(seqs[k]) > MAX_BATCH_TOKENS:
            batches.append([])
        batches[-1].append(k)
    out: list[torch.Tensor] = [torch.empty(0)] * len(seqs)
    for rows in batches:
        ids = torch.zeros((len(rows), len(seqs[rows[-1]])), dtype=torch.long)
        for r, k in enumerate(rows):
            ids[r, : len(seqs[k])] = torch.tensor(seqs[k])
        logits = model(input_ids=ids).logits.float()  # [B, T, V]
        for r, k in enumerate(rows):
            out[k] = logits[r, starts[k] - 1 : len(seqs[k])]
    return out


def score(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cases: Sequence[ZooCase]) -> list[CaseScore]:
    prompts = tokenizer([c.prompt for c in cases]).input_ids
    refs = tokenizer([c.reference for c in cases], add_special_tokens=False).input_ids
    logits = next_logits(model, [p + r for p, r in zip(prompts, refs)], [len(p) for p in prompts])
    scores = []
    for case, p, ref, lg in zip(cases, prompts, refs, logits):
        top = lg.argmax(-1).tolist()
        wrong = [k for k, (t, r) in enumerate(zip(top, ref)) if t != r]
        if not wrong:
            scores.append(CaseScore(case.id, case.family, len(p), True, -1, -1, -1, 0.0))
            continue
        k = wrong[0]
        diff = float(lg[k, top[k]] - lg[k, ref[k]])
        scores.append(CaseScore(case.id, case.family, len(p), False, k, top[k], ref[k], diff))
    return scores


def logit_diffs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                failures: Sequence[ZooFailure]) -> list[float]:
    """logit(target) - logit(contrast) at the end of each failure prompt (the Δℓ of that failure under `model`)."""
    seqs = tokenizer([f.prompt for f in failures]).input_ids
    logits = next_logits(model, seqs, [len(s) for s in seqs])
    return [float(lg[0, f.target_id] - lg[0, f.contrast_id]) for lg, f in zip(logits, failures)]


def failure_record(model: str, case: ZooCase, s: CaseScore, tokenizer: PreTrainedTokenizerBase) -> ZooFailure:
    """Cut the prompt right before the first wrong token: prompt + the correct part of the reference."""
    enc = tokenizer(case.reference, add_special_tokens=False, return_offsets_mapping=True)
    cut = enc.offset_mapping[s.fail_at][0]
    answer = case.reference[:cut].rstrip()
    prompt = f"{case.prompt} {answer}" if answer else case.prompt
    segments = dict(case.segments)
    segments["answer"] = ((len(case.prompt) + 1, len(prompt)),) if answer else ()
    tok = tokenizer.convert_ids_to_tokens
    return ZooFailure(model, case.id, case.family, prompt, tok(s.target_id), s.target_id, tok(s.contrast_id),
                      s.contrast_id, round(s.logit_diff, 4), segments)


def pick_spread(items: list, n: int) -> list:
    """Up to n items evenly spaced through `items` (sorted by prompt length), so short and long both appear."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def select_failures(model: str, cases: dict[str, ZooCase], scores: Iterable[CaseScore], tokenizer) -> list[ZooFailure]:
    out = []
    for family in FAMILIES:
        failed = sorted((s for s in scores if s.family == family and not s.correct),
                        key=lambda s: (s.n_tokens, s.case_id))
        out += [failure_record(model, cases[s.case_id], s, tokenizer) for s in pick_spread(failed, FAILURES_PER_FAMILY)]
    return out


def evaluate_zoo() -> dict:
    """Score every zoo model on the whole eval split; write failures.jsonl and MODEL_CARD.md."""
    t0 = time.time()
    cases = load_benchmark("eval")
    by_id = {c.id: c for c in cases}
    results: dict[str, list[CaseScore]] = {}
    failures: list[ZooFailure] = []
    for name in zoo_names():
        model, tokenizer = load(name)
        results[name] = score(model, tokenizer, cases)
        failures += select_failures(name, by_id, results[name], tokenizer)
        log.info("evaluated %s: accuracy %.3f (%.0fs)", name, sum(s.correct for s in results[name]) / len(cases),
                 time.time() - t0)
    trend = checkpoint_trend([f for f in failures if f.model == zoo_checkpoints()[0]])
    with FAILURES_PATH.open("w") as f:
        for rec in failures:
            f.write(json.dumps(asdict(rec), separators=(",", ":")) + "\n")
    write_card(cases, results, trend)
    log.info("phase evaluate: %.0fs", time.time() - t0)
    return {"results": results, "trend": trend}


def checkpoint_trend(early: list[ZooFailure]) -> dict[str, dict[str, float]]:
    """Mean Δℓ per checkpoint (and per family) over the first checkpoint's failures."""
    trend = {}
    for name in zoo_checkpoints():
        model, tokenizer = load(name)
        diffs = logit_diffs(model, tokenizer, early)
        row = {"all": sum(diffs) / len(diffs)}
        for family in FAMILIES:
            fam = [d for d, f in zip(diffs, early) if f.family == family]
            if fam:
                row[family] = sum(fam) / len(fam)
        trend[name] = row
    return trend


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    evaluate_zoo()
