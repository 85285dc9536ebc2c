"""Sweeps on a local Ray instance: the same results as in one process, and none lost or doubled when workers die.

Skipped when Ray is not installed, unless FAILURE_LENS_REQUIRE_RAY=1 (then it fails). One Ray session serves
the whole module (starting Ray is slow).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from sweep_fixtures import assert_same_runs, stored, write_bench, write_config

from engine.runs.config import load_sweep_config
from engine.runs.store import Store
from engine.runs.sweep import run_sweep

try:
    import ray
except ImportError:
    if os.environ.get("FAILURE_LENS_REQUIRE_RAY") == "1":
        pytest.fail("FAILURE_LENS_REQUIRE_RAY=1 but Ray is not installed: pip install -r requirements-ray.txt",
                    pytrace=False)
    pytest.skip("Ray is not installed (pip install -r requirements-ray.txt)", allow_module_level=True)

from engine.runs.ray import RUNTIME_ENV, run_sweep_ray  # noqa: E402

N = 5  # 4 failures + 1 case without reference, per model
RTOL = 1e-4  # actors run torch with one thread: float sums may differ in the last bits from this process


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RUNTIME_ENV)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local(tmp_path_factory, tiny_model_dir):
    """Two models, run in this process: (folder, models, bench, stored rows)."""
    folder = tmp_path_factory.mktemp("ray_local")
    models = {"a": tiny_model_dir("qwen3"), "b": tiny_model_dir("llama")}
    bench = write_bench(folder / "b.jsonl", N)
    run_sweep(load_sweep_config(write_config(folder, models, bench)))
    return folder, models, bench, stored(folder / "store", "t")


def _workers() -> list[int]:
    """Process ids of the model actors (Ray titles them ray::ModelWorker...)."""
    pids = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and (p / "cmdline").read_bytes().startswith(b"ray::ModelWorker"):
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def test_ray_matches_single_process(ray_session, local, tmp_path):
    _, models, bench, expected = local
    events = []
    summary = run_sweep_ray(load_sweep_config(write_config(tmp_path, models, bench)), progress=events.append)
    assert summary.complete and summary.computed == 2 * N and not summary.lost
    assert_same_runs(stored(tmp_path / "store", "t"), expected, rtol=RTOL)
    assert sorted(e.model for e in events if e.phase == "load") == ["a", "b"]
    assert [e.done for e in events if e.phase == "case"] == list(range(1, 2 * N + 1)) and events[-1].phase == "done"


def test_resume_on_ray_with_workers_killed_mid_sweep(ray_session, local, tmp_path):
    _, models, bench, expected = local
    cfg = load_sweep_config(write_config(tmp_path, models, bench))
    seen = []
    run_sweep(cfg, progress=seen.append, cancel=lambda: sum(e.phase == "case" for e in seen) >= 2)  # a partial run
    killed = []

    def kill_workers(p):
        if p.phase == "case" and not killed:
            killed.extend(_workers())
            for pid in killed:
                os.kill(pid, signal.SIGKILL)  # both actors die with cases in flight

    summary = run_sweep_ray(cfg, resume=True, progress=kill_workers)
    assert len(killed) == 2
    assert summary.skipped == 2 and summary.computed == 2 * N - 2 and summary.complete and not summary.lost
    rows = stored(tmp_path / "store", "t")  # raises if a key were stored twice
    assert_same_runs(rows, expected, rtol=RTOL)
    with Store(tmp_path / "store", readonly=True) as s:
        files = [p for p in (tmp_path / "store" / "arrays").rglob("*") if p.is_file()]
        assert len(files) == sum(1 for r in s.result_rows("t") if r["arrays"])  # no array file written twice
