"""Memory guard: estimates within a factor of 2 of measured peaks; refusal names a way out."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine import load_model
from engine.memory import check_memory, estimate
from engine.records import FailureLensError

MEASURE = r"""
import gc, json, sys
from engine import load_model, attribute
from engine.graph.build import build_graph
from engine.memory import estimate
source, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
h = load_model(source)
ids = [h.tokenizer.convert_tokens_to_ids(t) for t in h.tokenizer.convert_ids_to_tokens(list(range(40, 90)))]
ids = [ids[i % len(ids)] for i in range(n)]
def status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak-RSS mark, so the peak is this run's, not the imports' or the load's
base = status("VmRSS:")
(attribute if kind == "heatmap" else build_graph)(h, "", token_ids=ids)
peak = status("VmHWM:") - base
print(json.dumps({"peak": peak, "estimate": estimate(h, n, kind).needed}))
"""


def _zoo_source() -> str:
    from engine.zoo import zoo_sizes

    return f"zoo:{zoo_sizes()[-1]}"


@pytest.mark.slow
@pytest.mark.parametrize("kind, n", [("heatmap", 4000), ("graph", 3000)])
def test_estimate_within_factor_two_of_measured_peak(kind, n):
    out = subprocess.run([sys.executable, "-c", MEASURE, _zoo_source(), kind, str(n)], capture_output=True,
                         text=True, timeout=600, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = got["estimate"] / got["peak"]
    assert 0.5 <= ratio <= 2.0, got


def test_refusal_names_the_problem_and_suggestions(tiny_model_dir, monkeypatch):
    h = load_model(str(tiny_model_dir("qwen3")))
    assert check_memory(h, 100).fits
    monkeypatch.setattr("engine.memory.available_bytes", lambda device: 1 << 20)
    with pytest.raises(FailureLensError, match=r"needs about .* GiB.* but only .* free\. Try: .*bfloat16.*shorten"):
        check_memory(h, 100_000, "graph")
    assert estimate(h, 2000, "graph").needed > estimate(h, 2000, "heatmap").needed
