"""Sweeps on Ray: one actor per model, the driver the only writer of the store.

- Each model gets one actor (`ModelWorker`) that loads the model once (`ray.gpus_per_actor` GPUs; default 1 when
  the cluster has GPUs) and runs `engine.runs.sweep.analyse_case` for the cases scheduled to it, at most
  `IN_FLIGHT` at a time so cancelling is quick. Actors return results; only this process writes the store, so
  the store folder lives where the driver runs.
- A dead actor (process killed, node lost) is restarted by Ray (`max_restarts`) and its unfinished cases are
  retried (`max_task_retries`), both `ray.max_retries` times. A result is stored once, when its task returns;
  `Store.put_result` ignores a key that exists. Cases whose retries ran out are reported (`RunSummary.lost`)
  and not stored, so `--resume` computes them.
- Resume, run ids and progress work as in `engine.runs.sweep.run_sweep`; time left comes from the throughput of
  all actors together.

The engine package is shipped to the workers (runtime_env py_modules); models are loaded on the workers, so
a model folder must exist there under the same path (hub ids are downloaded there).
"""
from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, Optional

from engine.records import FailureLensError
from engine.runs.config import SweepConfig
from engine.runs.store import Store
from engine.runs.sweep import (
    Cancel,
    CaseResult,
    Clock,
    Progress,
    RunSummary,
    SweepProgress,
    analyse_case,
    default_run_id,
    load_spec,
    plan_run,
)

log = logging.getLogger(__name__)

IN_FLIGHT = 2  # cases queued per actor: one running, one ready to start
INSTALL = "pip install -r requirements-ray.txt"
# this engine, shipped to the workers (they need torch, transformers ... installed, as the driver has)
RUNTIME_ENV = {"py_modules": [str(Path(__file__).resolve().parents[1])], "excludes": ["__pycache__", "*.pyc"]}


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FailureLensError(f"Ray is not installed, so --ray cannot be used. Install it with `{INSTALL}`, "
                               "or run the sweep without --ray.") from None
    return ray


class ModelWorker:
    """Body of the per-model actor. The model loads on first use, so a restarted actor reloads it by itself."""

    def __init__(self, spec: Any, config: SweepConfig, device: str):
        self.spec, self.config, self.device, self.handle = spec, config, device, None

    def _handle(self) -> Any:
        if self.handle is None:
            self.handle = load_spec(self.spec, self.config, self.device)
        return self.handle

    def ready(self) -> int:
        """Load the model now (errors surface before any case); returns the worker's process id."""
        import os

        self._handle()
        return os.getpid()

    def run(self, bench: Any, case: Any) -> CaseResult:
        return analyse_case(self._handle(), case, bench, self.config)


def probe(address: Optional[str], timeout: float = 5.0) -> None:
    """Fail fast on an address nobody answers at (ray.init itself retries for minutes)."""
    if address in (None, "auto"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise FailureLensError(f"--ray {address!r} is not a Ray address; use auto, HOST:PORT or ray://HOST:PORT.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise FailureLensError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}); check the address "
                               "and that the cluster is up (`ray status` on its head node).") from None


def _connect(ray: Any, address: Optional[str]) -> bool:
    """Join the cluster at `address` ("auto": this machine's cluster, else a new local one). True if started here."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=None if address in (None, "auto") else address, runtime_env=RUNTIME_ENV,
                 include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise FailureLensError(f"cannot reach the Ray cluster at {address!r} ({e}); check the address "
                               "(e.g. ray://head:10001 or head:6379) and that `ray status` works there.") from None
    return True


def _cause(e: Exception) -> Exception:
    return getattr(e, "cause", None) or e


def run_sweep_ray(config: SweepConfig, address: Optional[str] = None, resume: bool = False,
                  run_id: Optional[str] = None, progress: Progress = None, cancel: Cancel = None,
                  gpus_per_actor: Optional[float] = None) -> RunSummary:
    """The sweep of `engine.runs.sweep.run_sweep` on Ray. address None uses Ray as already initialised in this
    process (or starts a local one); the Ray session is shut down at the end only if it was started here."""
    ray = require_ray()
    run_id = run_id or default_run_id(config)
    emit = progress or (lambda p: None)
    if not ray.is_initialized():
        probe(address)
    started = _connect(ray, address)
    actors: dict[str, Any] = {}
    try:
        with Store(config.store) as store:
            plan = plan_run(store, config, run_id, resume)
            clock = Clock(plan.total, plan.skipped)
            n = len(plan.cases)
            gpus = gpus_per_actor if gpus_per_actor is not None else config.ray.gpus_per_actor
            if gpus is None:
                gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
            retries = config.ray.max_retries
            Actor = ray.remote(ModelWorker).options(num_cpus=config.ray.cpus_per_actor, num_gpus=gpus,
                                                    max_restarts=retries, max_task_retries=retries)
            queues = {m.label: list(plan.todo[m.label]) for m in config.models if plan.todo[m.label]}
            done = {label: n - len(q) for label, q in queues.items()}
            pending: dict[Any, tuple[str, str]] = {}  # object ref -> (model label, case uid or "" for ready)
            for m in config.models:
                if m.label in queues:
                    actors[m.label] = Actor.remote(m, config, "cuda" if gpus > 0 else "cpu")
                    pending[actors[m.label].ready.remote()] = (m.label, "")
                    emit(SweepProgress("load", m.label, done[m.label], n, clock.done, plan.total, clock.elapsed,
                                       clock.eta))

            def submit(label: str) -> None:
                while queues[label] and sum(1 for lab, _ in pending.values() if lab == label) < IN_FLIGHT:
                    bench, case = queues[label].pop(0)
                    pending[actors[label].run.remote(bench, case)] = (label, case.uid)

            for label in queues:
                submit(label)
            statuses: dict[str, int] = {}
            lost: list[str] = []
            cancelled = False
            while pending:
                if cancel and not cancelled and cancel():
                    cancelled = True  # finish the cases already running, start no more
                    for q in queues.values():
                        q.clear()
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    label, uid = pending.pop(ref)
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:  # raised by our code in the actor
                        if uid:
                            raise
                        raise FailureLensError(f"model {label} did not load on its Ray worker: {_cause(e)}") from None
                    except ray.exceptions.RayError as e:  # the actor died more often than max_retries
                        log.warning("model %s, case %s: %s", label, uid or "(loading)", e)
                        lost += [f"{label}/{uid}"] if uid else []
                        lost += [f"{label}/{c.uid}" for _, c in queues[label]]
                        queues[label].clear()
                        continue
                    if uid:
                        res: CaseResult = value
                        store.put_result(run_id, label, res.case_id, res.row, res.arrays or None)
                        statuses[res.row.status] = statuses.get(res.row.status, 0) + 1
                        clock.tick()
                        done[label] += 1
                        emit(SweepProgress("case", label, done[label], n, clock.done, plan.total, clock.elapsed,
                                           clock.eta, uid, res.row.status))
                    else:
                        log.info("model %s loaded in worker pid %s", label, value)
                    submit(label)
            emit(SweepProgress("done", "", n, n, clock.done, plan.total, clock.elapsed,
                               clock.eta if clock.done < plan.total else 0.0))
            return RunSummary(run_id, str(store.folder), plan.total, plan.skipped, clock.computed, statuses,
                              cancelled, clock.elapsed, tuple(lost))
    finally:
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()
