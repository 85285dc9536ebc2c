"""Sweeps on Ray: one actor per model, the driver the only writer of the store.

- Each model gets one actor (`engine.runs.sweep.ModelWorker`, the worker run_sweep drives in-process) that loads
  the model once (`ray.gpus_per_actor` GPUs; default 1 when the cluster has GPUs) and runs `analyse_case` for the
  cases scheduled to it, at most `IN_FLIGHT` at a time so cancelling is quick. Actors return results; only this
  process writes the store (`engine.runs.sweep.Tally`, as locally), so the store folder lives where the driver runs.
- A dead actor (process killed, node lost) is restarted by Ray (`max_restarts`) and its unfinished cases are
  retried (`max_task_retries`), both `ray.max_retries` times. A result is stored once, when its task returns;
  `Store.put_result` ignores a key that exists. Cases whose retries ran out are reported (`RunSummary.lost`)
  and not stored, so `--resume` computes them.
- Resume, run ids and progress work as in `engine.runs.sweep.run_sweep`; time left comes from the throughput of
  all actors together.

`connect(address)` joins the cluster (also for other commands that run on Ray): the token of a cluster with
token authentication is found where Ray looks for it, and a refused token, an address where nobody answers and
one where something else answers each fail at once with their own error (ClusterAuthFailed, ClusterUnreachable).

The engine package is shipped to the workers (runtime_env py_modules); models are loaded on the workers, so
a model folder must exist there under the same path (hub ids are downloaded there).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Optional

from engine.records import FailureLensError
from engine.runs.config import SweepConfig
from engine.runs.store import Store
from engine.runs.sweep import Cancel, CaseResult, ModelWorker, Progress, RunSummary, Tally, default_run_id, plan_run

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


class ClusterError(FailureLensError):
    """`--ray ADDRESS` could not be joined. The subclass says why; the message names a way out."""


class ClusterUnreachable(ClusterError):
    """Nobody answers at the address, or what answers is not a Ray cluster."""


class ClusterAuthFailed(ClusterError):
    """The cluster uses token authentication and refused this client: no token here, or not its token."""


ADDRESS_HELP = ("check the address: HOST:PORT with the port of `ray start --head --port=PORT` (6379 unless set; "
                "`ray status` on the head prints it), or ray://HOST:10001 for Ray Client (needs ray[client])")
TOKEN_HELP = ("Give this machine the cluster's token (`ray get-auth-token` on the head prints it) in one of the ways "
              "Ray reads it: the file ~/.ray/auth_token, a file named by RAY_AUTH_TOKEN_PATH, or the token itself "
              "in RAY_AUTH_TOKEN. See docs/ray.md.")
GCS_PROBE_S = 10.0  # a Ray head answers in milliseconds; another service on the port never does


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise FailureLensError(f"--ray {address!r} is not a Ray address; use auto, HOST:PORT or ray://HOST:PORT.")
    return host.strip("[]"), int(port)


def probe(address: Optional[str], timeout: float = 5.0) -> None:
    """Fail fast on an address nobody answers at (ray.init itself retries for minutes)."""
    if address in (None, "auto"):
        return
    try:
        socket.create_connection(_split(address), timeout=timeout).close()
    except OSError as e:
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): nothing answers "
                                 f"there. Is the cluster up (`ray status` on its head)? Else {ADDRESS_HELP}.") from None


def token_source() -> Optional[str]:
    """Where Ray reads this process's token from (its order: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH,
    ~/.ray/auth_token), or None when there is none. An unreadable RAY_AUTH_TOKEN_PATH is ClusterAuthFailed."""
    from ray._raylet import AuthenticationTokenLoader
    from ray.exceptions import AuthenticationError

    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    try:
        if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
            return None
    except AuthenticationError:  # Ray's own check of RAY_AUTH_TOKEN_PATH
        raise ClusterAuthFailed(f"RAY_AUTH_TOKEN_PATH is {path!r}, which is not a readable, non-empty token file. "
                                + TOKEN_HELP) from None
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    return f"RAY_AUTH_TOKEN_PATH ({path})" if path else "~/.ray/auth_token"


def _token_mode() -> Optional[str]:
    """Put this process in Ray's token mode when RAY_AUTH_MODE is unset and a token exists (what `ray start` and
    ray.init("auto") do; ray.init with an explicit address does not). A token-mode client also joins a cluster
    without authentication. Returns where the token comes from, None when this process sends none."""
    from ray._raylet import AuthenticationMode, Config, get_authentication_mode

    mode = os.environ.get("RAY_AUTH_MODE")
    source = token_source()
    if mode is None and source is not None:
        os.environ["RAY_AUTH_MODE"] = "token"  # inherited by what this process starts, as Ray does itself
        Config.initialize("")  # Ray caches its config: re-read the mode
    return source if get_authentication_mode() == AuthenticationMode.TOKEN else None


def _refused(address: str, source: Optional[str]) -> ClusterAuthFailed:
    if source is not None:
        why = f"refused the token from {source}: it is not this cluster's token."
    elif os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        why = "uses token authentication, and RAY_AUTH_MODE=disabled here sends none; unset it."
    else:
        why = "uses token authentication, and this machine has no token."
    return ClusterAuthFailed(f"the Ray cluster at {address} {why} {TOKEN_HELP}")


def _check_gcs(address: str, source: Optional[str]) -> None:
    """Ask the head's GCS for the cluster id with this process's token: a refusal is known at once (ray.init
    would retry it for 20 s and report a connection failure). Runs in a thread, as the call blocks for 40 s on a
    port where something else answers."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    outcome: list[Optional[BaseException]] = []

    def ask() -> None:
        try:
            GcsClient(address=address)  # asks the GCS for the cluster id
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - judged below
            outcome.append(e)

    thread = threading.Thread(target=ask, daemon=True, name="ray-gcs-probe")
    thread.start()
    thread.join(GCS_PROBE_S)
    if not outcome:
        raise ClusterUnreachable(f"{address} answers, but not as the head of a Ray cluster (no reply within "
                                 f"{GCS_PROBE_S:.0f} s); {ADDRESS_HELP}.")
    if isinstance(outcome[0], AuthenticationError):
        raise _refused(address, source)
    if outcome[0] is not None:
        raise ClusterUnreachable(f"cannot join the Ray cluster at {address} ({outcome[0]}); {ADDRESS_HELP}.")


def _auth_failure(e: BaseException) -> bool:
    from ray.exceptions import AuthenticationError

    while e is not None:
        if isinstance(e, AuthenticationError) or "InvalidAuthToken" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def connect(address: Optional[str]) -> bool:
    """Join Ray in this process. `address`: None or "auto" (this machine's cluster, else a new local one),
    HOST:PORT (the head's GCS port, `ray start --head --port`) or ray://HOST:PORT (Ray Client). Token
    authentication (on by default for clusters started where a token exists) needs no step when the token is
    where Ray looks for it. True if this call initialised Ray (the caller shuts it down); False if it already was.
    Raises ClusterUnreachable, ClusterAuthFailed, or FailureLensError for a malformed address or Ray missing."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    explicit = address not in (None, "auto")
    if explicit:
        probe(address)
    source = _token_mode()
    if explicit and "://" not in address:
        _check_gcs(address, source)
    try:
        ray.init(address=address if explicit else None, runtime_env=RUNTIME_ENV, include_dashboard=False,
                 log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
        if _auth_failure(e):
            raise _refused(address or "auto", source) from None
        raise ClusterUnreachable(f"cannot join the Ray cluster at {address or 'auto'} ({e}); {ADDRESS_HELP}, "
                                 "and that `ray status` works there.") from None
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
    started = connect(address)
    actors: dict[str, Any] = {}
    try:
        with Store(config.store) as store:
            plan = plan_run(store, config, run_id, resume)
            tally = Tally(store, plan, progress)
            n = tally.n
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
                    tally.loading(m.label, done[m.label])

            def submit(label: str) -> None:
                while queues[label] and sum(1 for lab, _ in pending.values() if lab == label) < IN_FLIGHT:
                    bench, case = queues[label].pop(0)
                    pending[actors[label].run.remote(bench, case)] = (label, case.uid)

            for label in queues:
                submit(label)
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
                        done[label] += 1
                        tally.put(label, done[label], res)
                    else:
                        log.info("model %s loaded in worker pid %s", label, value)
                    submit(label)
            return tally.finish(cancelled, tuple(lost))
    finally:
        for actor in actors.values():
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()
