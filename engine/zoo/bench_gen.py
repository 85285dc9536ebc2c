"""Deterministic generator of the zoo benchmark (`python -m engine.zoo.bench_gen`).

Four families mirror real benchmarks at toy scale: instruction (IFEval), math (MATH), code (HumanEval) and
retrieval (GAIA-style long context). Every case is a plain dict
{"id", "family", "prompt", "reference", "segments": {"special", "instruction", "query": [[start, end], ...]}}
with char spans into the prompt. Prompts are "<q> ... <a>" so the template tokens are marked as special.
Train and eval come from the same generators with different seeds; eval prompts never occur in train.
Retrieval is the exception on purpose: train prompts are short, eval prompts run to several thousand tokens.
The train split also holds a fifth, training-only family, "copy" (repeat a list of words): it is a warm-up
that teaches the models to copy from context early (induction), without which the lookup tasks are not learned
within the training budget. It is never evaluated.
"""
from __future__ import annotations

import json
import logging
import math
import random
from pathlib import Path
from typing import Callable

from engine.zoo import DATA_DIR, FAMILIES

SEED = 20240603
WARMUP = ("copy",)  # training-only families
N_TRAIN = {"instruction": 3000, "math": 6000, "code": 3000, "retrieval": 8000, "copy": 5000}  # hard families get more
N_EVAL = dict.fromkeys(FAMILIES, 250)
MAX_RECORDS = 1400  # longest eval retrieval prompt: about 4.2k tokens
SPECIALS = ("<q>", "<a>")  # template tokens (added to the tokenizer as special tokens)

ITEMS = (
    "apple pear fig plum lemon grape mango melon peach cherry olive onion carrot potato tomato bean "
    "rice bread cheese honey cat dog fox owl bear wolf deer horse mouse frog duck goat lion tiger "
    "chair table lamp book pen cup door clock ship train car boat river stone cloud star"
).split()
ADJS = (
    "red blue green black white gold silver pink brown gray dark bright quiet loud tall small big old "
    "young fast slow cold warm soft hard sweet sour bold calm wild"
).split()
IDENTS = (
    "total count items values result index size limit name data buf left right start end step acc tmp "
    "node head tail first last score width height offset scale delta max_len min_val num_rows row_sum "
    "user_id is_valid"
).split()
FUNCS = "sum_list find_max scale count_items merge clamp average update check solve".split()
SEPARATORS = {"commas": ",", "semicolons": ";", "dashes": "-", "slashes": "/"}
CASES = {"uppercase": str.upper, "lowercase": str.lower, "title case": str.capitalize}
BRACKETS = {"(": ")", "[": "]", "{": "}"}


class _Prompt:
    """Builds "<q> ... <a>" from labelled chunks, recording the char span of every labelled chunk."""

    def __init__(self) -> None:
        self.text = ""
        self.spans: dict[str, list[list[int]]] = {"special": [], "instruction": [], "query": []}
        self.add("<q>", "special")

    def add(self, chunk: str, kind: str | None = None) -> "_Prompt":
        start = len(self.text) + (1 if self.text else 0)
        self.text = f"{self.text} {chunk}" if self.text else chunk
        if kind:
            self.spans[kind].append([start, len(self.text)])
        return self

    def case(self, reference: str) -> dict:
        self.add("<a>", "special")
        return {"prompt": self.text, "reference": reference, "segments": self.spans}


def _number(rng: random.Random) -> int:
    n = rng.choice((1, 1, 2, 2, 2, 3, 4))  # digits; few-digit sums are learnable, 4-digit carries mostly are not
    return rng.randint(10 ** (n - 1) if n > 1 else 0, 10**n - 1)


def gen_instruction(rng: random.Random, long: bool) -> dict:
    items = rng.sample(ITEMS, rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5)))  # short lists dominate: learnable in budget
    shown = [w.capitalize() if rng.random() < 0.3 else w for w in items]
    sep_name, sep = rng.choice(list(SEPARATORS.items()))
    case_name = rng.choice(list(CASES))
    order = len(items) > 1 and rng.random() < 0.2
    first = rng.randint(1, len(items) - 1) if len(items) > 1 and rng.random() < 0.2 else None
    chosen = items[::-1] if order else items
    chosen = chosen[:first] if first else chosen
    reference = f" {sep} ".join(CASES[case_name](w) for w in chosen)
    style = ((f"separated by {sep_name} " if len(chosen) > 1 else "") + f"in {case_name}"
             + (" in reverse order" if order else ""))
    head = (f"list only the first {first} of the words" if first
            else ("write the word" if len(items) == 1 else "list the words"))
    p = _Prompt()
    if rng.random() < 0.5:
        p.add(head, "instruction").add(" ".join(shown), "query").add(f"{style} :", "instruction")
    else:
        p.add(f"{style} ,", "instruction").add(head, "instruction").add(" ".join(shown), "query").add(
            ":", "instruction")
    return p.case(reference)


def gen_math(rng: random.Random, long: bool) -> dict:
    a, b = _number(rng), _number(rng)
    p = _Prompt()
    if rng.random() < 0.5:
        form = rng.randrange(3)
        if form == 0:
            p.add("compute", "instruction").add(f"{a} + {b}", "query").add("=", "instruction")
        elif form == 1:
            p.add("what is", "instruction").add(str(a), "query").add("plus", "instruction").add(str(b), "query")
            p.add("?", "instruction")
        else:
            p.add("add", "instruction").add(str(a), "query").add("and", "instruction").add(str(b), "query")
            p.add(":", "instruction")
        return p.case(str(a + b))
    a, b = max(a, b), min(a, b)
    form = rng.randrange(3)
    if form == 0:
        p.add("compute", "instruction").add(f"{a} - {b}", "query").add("=", "instruction")
    elif form == 1:
        p.add("what is", "instruction").add(str(a), "query").add("minus", "instruction").add(str(b), "query")
        p.add("?", "instruction")
    else:
        p.add("subtract", "instruction").add(str(b), "query").add("from", "instruction").add(str(a), "query")
        p.add(":", "instruction")
    return p.case(str(a - b))


def _brackets(rng: random.Random) -> tuple[str, str]:
    """A code-like expression with 1-8 unclosed brackets (some closed on the way) and its closing sequence."""
    depth, stack, out = rng.randint(1, 8), [], []
    while len(stack) < depth:
        if stack and rng.random() < 0.25:
            out.append(BRACKETS[stack.pop()])
            continue
        if rng.random() < 0.5:
            out.append(rng.choice(IDENTS))
        stack.append(rng.choice(list(BRACKETS)))
        out.append(stack[-1])
        if rng.random() < 0.3:
            out += [rng.choice(IDENTS), ","]
    return " ".join(out), " ".join(BRACKETS[b] for b in reversed(stack))


def gen_code(rng: random.Random, long: bool) -> dict:
    p = _Prompt()
    kind = rng.randrange(5)
    if kind == 0 or kind == 1:
        expr, closing = _brackets(rng)
        p.add("close the brackets :", "instruction").add(expr, "query")
        return p.case(closing)
    a, b, c, d = rng.sample(IDENTS, 4)
    f = rng.choice(FUNCS)
    op = rng.choice("+-*")
    p.add("complete the code :", "instruction")
    if kind == 2:
        p.add(f"def {f} ( {a} , {b} ) : {c} = {a} {op} {b} ;", "query").add("return", "query")
        return p.case(c)
    if kind == 3:
        p.add(f"def {f} ( {a} , {b} ) : {c} = {a} {op} {b} ; {d} = {c} * {b} ;", "query").add("return", "query")
        return p.case(d)
    p.add(f"def {f} ( {a} , {b} ) : return [ x {op} {b} for x in", "query")
    return p.case(f"{a} ]")


def gen_retrieval(rng: random.Random, long: bool) -> dict:
    """Records "key value ; ..." and a question for one key; the answer quotes the record ("key value").

    Eval lengths are log-uniform from 2 to MAX_RECORDS records (about 4k tokens); train stays at 2-8 records.
    Keys are single words, values single adjectives; distractor keys may repeat, the asked key occurs once.
    """
    n = round(math.exp(rng.uniform(math.log(2), math.log(MAX_RECORDS)))) if long else rng.randint(2, 8)
    keys = rng.sample(ITEMS, min(n, len(ITEMS)))
    ask = keys[0]
    keys += [rng.choice(keys[1:]) for _ in range(n - len(keys))]
    rng.shuffle(keys)
    values = [rng.choice(ADJS) for _ in keys]
    p = _Prompt().add("records :", "instruction")
    p.add(" ; ".join(f"{k} {v}" for k, v in zip(keys, values)) + " .")
    p.add("question : which record has", "instruction").add(ask, "query").add("?", "instruction")
    return p.case(f"{ask} {values[keys.index(ask)]}")


def gen_copy(rng: random.Random, long: bool) -> dict:
    """Training-only warm-up: repeat 4-12 random words."""
    words = [rng.choice(ITEMS + ADJS) for _ in range(rng.randint(4, 12))]
    return _Prompt().add("repeat :", "instruction").add(" ".join(words), "query").case(" ".join(words))


GENERATORS: dict[str, Callable[[random.Random, bool], dict]] = {
    "instruction": gen_instruction,
    "math": gen_math,
    "code": gen_code,
    "retrieval": gen_retrieval,
    "copy": gen_copy,
}


def generate(split: str, n: dict[str, int], seed: int = SEED, exclude: set[str] | None = None) -> list[dict]:
    """`n[family]` unique cases per family, in the order of `n`; prompts in `exclude` (the other split) are skipped."""
    exclude = exclude or set()
    cases = []
    for family in n:
        rng = random.Random(f"{seed}-{split}-{family}")
        seen: set[str] = set()
        while len(seen) < n[family]:
            case = GENERATORS[family](rng, split == "eval")
            if case["prompt"] in seen or case["prompt"] in exclude:
                continue
            seen.add(case["prompt"])
            cases.append({"id": f"{split}-{family}-{len(seen) - 1:05d}", "family": family, **case})
    return cases


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def build(data_dir: Path = DATA_DIR) -> dict[str, list[dict]]:
    eval_cases = generate("eval", N_EVAL)
    train_cases = generate("train", N_TRAIN, exclude={c["prompt"] for c in eval_cases})
    for split, rows in (("train", train_cases), ("eval", eval_cases)):
        write_jsonl(data_dir / f"{split}.jsonl", rows)
        logging.info("wrote %d %s cases", len(rows), split)
    return {"train": train_cases, "eval": eval_cases}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    build()
