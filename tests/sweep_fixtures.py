"""A tiny table benchmark, sweep configs over it, and comparison of stored runs (for the sweep tests)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from engine.runs.store import Store

WORDS = "the capital of france is paris and the king of spain lives in madrid with his dog".split()
INSTRUCTION = "Answer in one word."
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)> "


def write_bench(path: Path, n: int, empty_reference: bool = True) -> Path:
    """n cases (c0 starts with an XSS payload; the last has no reference when empty_reference, so it errors)."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            prompt = " ".join(WORDS[i % 5: i % 5 + 6]) + ". " + INSTRUCTION
            ref = "" if empty_reference and i == n - 1 else " " + " ".join(WORDS[(i + 3) % 10:(i + 3) % 10 + 3])
            f.write(json.dumps({"id": f"c{i}", "prompt": (XSS if i == 0 else "") + prompt, "reference": ref,
                                "instruction": [INSTRUCTION]}) + "\n")
    return path


def write_config(folder: Path, models: dict[str, Path], bench: Path, store: str = "store", name: str = "t",
                 graph: bool = False, faith: bool = False, strict: int = 0) -> Path:
    """A sweep YAML in `folder`; `strict` adds a second benchmark of that many cases that are all filtered
    (max_ref_rank 1 cannot hold for a failure)."""
    lines = [f"name: {name}", "models:"] + [f"  - {{source: '{p}', label: {label}}}" for label, p in models.items()]
    cols = "columns: {prompt: prompt, reference: reference, id: id, instruction: instruction}"
    lines += ["benchmarks:", f"  - {{kind: table, path: '{bench}', name: main, {cols}}}"]
    if strict:
        lines.append(f"  - {{kind: table, path: '{bench}', name: strict, {cols}, "
                     f"filters: {{max_ref_rank: 1, limit: {strict}}}}}")
    lines += ["compute:", f"  graph: {{enabled: {str(graph).lower()}, layers: all}}",
              f"  faithfulness: {{enabled: {str(faith).lower()}, seeds: [0], max_k: 4}}", f"store: {store}"]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def stored(folder: Path, run_id: str) -> dict[tuple[str, str], dict]:
    """(model, case) -> the stored row (without time and file name) plus its arrays."""
    with Store(folder, readonly=True) as s:
        out = {}
        for r in s.result_rows(run_id):
            key = (r["model_label"], r["case_id"])
            assert key not in out, f"{key} stored twice"
            arrays = s.load_arrays(run_id, *key)
            out[key] = {k: v for k, v in r.items() if k not in ("created", "arrays")} | {"arrays": arrays}
        return out


WALL_CLOCK = ("verdict_seconds",)  # seconds measured while computing: differ from run to run by nature


def _close(a, b, rtol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(_json(k, a[k]), _json(k, b[k]), rtol) for k in a
                                            if k not in WALL_CLOCK)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "fc":
            return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=rtol)
        return np.array_equal(a, b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rtol, abs_tol=rtol) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, str) and isinstance(b, str) and a[:1] in "{[" and rtol:
        try:
            return _close(json.loads(a), json.loads(b), rtol)
        except ValueError:
            pass
    return a == b


def _json(name: str, value):
    """Text arrays (tokens_json, graph_json) decoded, so their numbers compare with a tolerance."""
    if name.endswith("_json") and isinstance(value, np.ndarray):
        return json.loads(value.astype(np.uint8).tobytes().decode("utf-8"))
    return value


def assert_same_runs(a: dict, b: dict, rtol: float = 0.0) -> None:
    """Same keys and values; rtol 0 means identical (floats and arrays bit for bit)."""
    assert a.keys() == b.keys()
    for key in a:
        ra, rb = a[key], b[key]
        if rtol == 0.0:
            assert {k: v for k, v in ra.items() if k != "arrays"} == {k: v for k, v in rb.items() if k != "arrays"}, key
            assert ra["arrays"].keys() == rb["arrays"].keys(), key
            for name in ra["arrays"]:
                np.testing.assert_array_equal(ra["arrays"][name], rb["arrays"][name], err_msg=f"{key} {name}")
        else:
            assert _close(ra, rb, rtol), key
