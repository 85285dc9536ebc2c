"""What a heatmap costs before it starts (engine.cost): the work counted on hand numbers, the path from the memory
guard, the speed from two timed forwards; per-layer progress of an attribution (engine.trace)."""
from __future__ import annotations

import pytest

from engine import attribute, load_model
from engine.cost import (
    ATTENTION_PASSES,
    FORWARD_BACKWARD,
    RECOMPUTE,
    Cost,
    Rate,
    calibrate,
    calibration_sizes,
    estimate_seconds,
    layer_flop,
    observed,
    seconds,
    stored_rate,
    work,
)


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def test_layer_flop_on_hand_numbers():
    # d=4, attention width 4, key/value width 2, ffn 8, T=3:
    # projections 2*3*4*(4+2*2) + 2*3*4*4 = 192 + 96; MLP 6*3*4*8 = 576; attention 2*4*3*4 = 96
    linear, attention = layer_flop(4, 4, 2, 8, 3)
    assert close(linear, 192 + 96 + 576) and close(attention, 96)


def test_work_and_seconds_on_hand_numbers():
    n, flop = work(1000.0, 100.0, recompute=False)
    assert close(n, FORWARD_BACKWARD) and close(flop, FORWARD_BACKWARD * 1000 + ATTENTION_PASSES * 100)
    n2, flop2 = work(1000.0, 100.0, recompute=True)
    assert close(n2, FORWARD_BACKWARD + RECOMPUTE)
    assert close(flop2, (FORWARD_BACKWARD + RECOMPUTE) * 1000 + (ATTENTION_PASSES + RECOMPUTE) * 100)
    # 3 passes over 2 layers at 0.5 s fixed cost each, plus 3e9 flop at 1e9 flop/s
    assert close(seconds(3e9, 2, 3.0, Rate(1e9, 0.5, "hand")), 3.0 + 3.0)


def test_estimate_follows_the_memory_guard_and_grows_with_length(tiny_model_dir, monkeypatch):
    h = load_model(str(tiny_model_dir("qwen3")))
    rate = Rate(1e9, 0.0, "hand")
    short, long = estimate_seconds(h, 100, rate), estimate_seconds(h, 2000, rate)
    assert isinstance(long, Cost) and long.path == "kept" and long.layers == h.n_layers
    assert long.seconds > 20 * short.seconds  # at least linear in the length (and the attention part is quadratic)
    assert close(long.seconds, long.flop / 1e9)
    monkeypatch.setattr("engine.memory.available_bytes", lambda device: 1 << 10)  # nothing fits: recompute
    lean = estimate_seconds(h, 2000, rate)
    assert lean.path == "recompute" and lean.seconds > long.seconds
    text = long.sentence()
    assert "2,000 tokens" in text and f"{h.n_layers} layers" in text and "hand" in text


def test_calibration_measures_a_positive_rate_and_says_so(tiny_model_dir):
    h = load_model(str(tiny_model_dir("qwen3")))
    rate = calibrate(h, sizes=(8, 32))
    assert rate.flops > 0 and rate.overhead >= 0 and "measured on this model" in rate.source
    assert "stored" in stored_rate(h.device).source and stored_rate(h.device).flops > 0
    assert estimate_seconds(h, 500, rate).seconds > 0


def test_calibration_stays_short_and_a_finished_run_sets_the_next_rate(tiny_model_dir, monkeypatch):
    h = load_model(str(tiny_model_dir("qwen3")))
    small, large = calibration_sizes(h)
    assert small * 8 == large  # the tiny model: the longest listed length fits the time budget
    monkeypatch.setattr("engine.cost.STORED_FLOPS", {"cpu": 1.0, "cuda": 1.0, "mps": 1.0})  # a "huge" model
    assert calibration_sizes(h) is None and "stored" in calibrate(h).source  # no slow timing: the stored rate
    cost = estimate_seconds(h, 3000, Rate(1e9, 0.0, "hand"))
    seen = observed(cost, 12.0)
    assert close(seen.flops, cost.flop / 12.0) and "3,000 tokens in 12 s" in seen.source
    assert close(estimate_seconds(h, 3000, seen).seconds, 12.0)  # the same prompt again: what it took


@pytest.mark.parametrize("recompute", [False, True])
def test_attribution_reports_each_layer_forward_then_backward(tiny_model_dir, recompute):
    h = load_model(str(tiny_model_dir("qwen3")))
    seen: list[tuple[str, int, int]] = []
    attribute(h, "the cat sat on the mat", recompute=recompute, progress=lambda *a: seen.append(a))
    n = h.n_layers
    assert seen == [("forward", i, n) for i in range(1, n + 1)] + [("backward", i, n) for i in range(1, n + 1)]
