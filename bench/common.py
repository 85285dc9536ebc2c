"""Shared benchmark helpers: model choice, prompts of a given length, timing."""
from __future__ import annotations

import platform
import statistics
import time
from typing import Callable

import torch


def machine() -> str:
    threads = torch.get_num_threads()
    return f"{platform.processor() or platform.machine()}, {threads} torch threads, torch {torch.__version__}"


def default_model(source: str | None):
    from engine import load_model

    if source is None:
        from engine.zoo import zoo_sizes

        source = f"zoo:{zoo_sizes()[-1]}"
    return load_model(source)


def prompt_of(handle, n_tokens: int) -> str:
    """A prompt of exactly n tokens (words of the model's own vocabulary, repeated)."""
    words = "the key of box seven is blue and the value of door two is red so list them".split()
    text, ids = "", []
    i = 0
    while len(ids) < n_tokens:
        text += (" " if text else "") + words[i % len(words)]
        i += 1
        ids = handle.tokenizer(text)["input_ids"]
    while len(handle.tokenizer(text)["input_ids"]) > n_tokens:
        text = text.rsplit(" ", 1)[0]
    return text


def timed(fn: Callable[[], object], repeats: int, clock: Callable[[], float] = time.process_time) -> float:
    """Median process CPU time (all threads; or another `clock`) of `repeats` calls after one warm-up.

    CPU time rather than wall time: on a shared 2-core machine other processes stretch wall time a lot,
    CPU time much less. Ratios of two CPU times measured in the same run are what we report.
    """
    fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def interleaved(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median CPU times of a and b, run alternately so slow phases of the machine hit both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, acc in ((a, ta), (b, tb)):
            t0 = time.process_time()
            fn()
            acc.append(time.process_time() - t0)
    return statistics.median(ta), statistics.median(tb)
