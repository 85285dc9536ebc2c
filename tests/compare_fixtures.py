"""A stand-in zoo for the dashboard tests when the real one is not trained: tiny random Qwen3 models.

`build_stand_in(root)` writes <root>/models/{index.json, xs, s, m-step00001..3} and <root>/failures.jsonl in the
zoo's formats; `use_zoo(monkeypatch, root)` points engine.zoo at it. Failures are the short eval cases of the
shipped benchmark with each model's top-1 token as target and its runner-up as contrast (Δℓ > 0 by construction).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from tiny_models import build_tiny

SIZES = {"xs": dict(num_hidden_layers=1), "s": dict(num_hidden_layers=2)}
CHECKPOINTS = ("m-step00001", "m-step00002", "m-step00003")
PER_FAMILY = 2


def _failures(name: str, folder: Path) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.zoo import FAMILIES, load_benchmark

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    out = []
    for family in FAMILIES:
        for case in sorted(load_benchmark("eval", family), key=lambda c: len(c.prompt))[:PER_FAMILY]:
            with torch.no_grad():
                logits = model(torch.tensor([tok(case.prompt)["input_ids"]])).logits[0, -1]
            top = logits.topk(2).indices.tolist()
            out.append(dict(model=name, case_id=case.id, family=family, prompt=case.prompt,
                            target=tok.decode([top[0]]), target_id=top[0], contrast=tok.decode([top[1]]),
                            contrast_id=top[1], logit_diff=float(logits[top[0]] - logits[top[1]]),
                            segments={k: [list(s) for s in v] for k, v in case.segments.items()}))
    return out


def build_stand_in(root: Path) -> Path:
    models = root / "models"
    builds = {**SIZES, **{c: dict(num_hidden_layers=2, hidden_size=32 + 16 * i, intermediate_size=64)
                          for i, c in enumerate(CHECKPOINTS)}}
    failures = []
    for name, overrides in builds.items():
        folder = build_tiny("qwen3", root / "build" / name, **overrides)
        shutil.move(str(folder), models / name)
        failures += _failures(name, models / name)
    (models / "index.json").write_text(json.dumps({"sizes": list(SIZES), "checkpoints": list(CHECKPOINTS)}))
    with (root / "failures.jsonl").open("w") as f:
        for rec in failures:
            f.write(json.dumps(rec) + "\n")
    return root


def use_zoo(monkeypatch, root: Path) -> None:
    import engine.zoo as zoo

    monkeypatch.setattr(zoo, "MODELS_DIR", root / "models")
    monkeypatch.setattr(zoo, "FAILURES_PATH", root / "failures.jsonl")
    zoo._index.cache_clear()


# ---- fixtures shared by the AppTest files (import them by name into a test module) ----------------------

@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    """None with the built zoo; else a stand-in of tiny random models in the zoo's formats."""
    from engine import zoo

    if zoo.zoo_sizes() and zoo.zoo_checkpoints() and zoo.load_failures():
        return None
    return build_stand_in(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(autouse=True)
def zoo_or_stand_in(stand_in, monkeypatch):
    from engine import zoo

    if stand_in is not None:
        use_zoo(monkeypatch, stand_in)
    yield
    zoo._index.cache_clear()


@pytest.fixture(autouse=True)
def no_legacy_pages_mode(monkeypatch):
    """AppTest resets Streamlit's legacy pages/ flag before every run, which would run page files without app.py
    (and ui.layout.page's way out, a rerun, drops button clicks). A real server sets the flag once, at start.
    Still needed with Streamlit 1.67: AppTest sets the flag to None before every run, and without this fixture
    test_app_pages' clicks that load a model are lost (checked: two of its tests fail)."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def no_legacy(self, *a, **kw):
        init(self, *a, **kw)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", no_legacy)
