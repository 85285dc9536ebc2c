"""Sweeps on a Ray cluster started the standard way, as a user would: `ray get-auth-token --generate`, then
`ray start --head` (which turns token authentication on because a token exists) and a second node with
`ray start --address`, each started in its own session; the sweep is `python -m engine sweep --ray
127.0.0.1:PORT` in a subprocess whose environment holds no Ray settings. Everything Ray writes goes to a temporary
folder (HOME and --temp-dir); every process the test started (found by its session id) is killed by its pid at the end.

Skipped when Ray is not installed, unless FAILURE_LENS_REQUIRE_RAY=1 (then it fails).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sweep_fixtures import stored

try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("FAILURE_LENS_REQUIRE_RAY") == "1":
        pytest.fail("FAILURE_LENS_REQUIRE_RAY=1 but Ray is not installed: pip install -r requirements-ray.txt",
                    pytrace=False)
    pytest.skip("Ray is not installed (pip install -r requirements-ray.txt)", allow_module_level=True)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
N = 4  # cases per model
MODELS = ("xs", "s")
START_S = 120  # `ray start` on a busy 2-core machine


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any Ray setting, HOME in the temporary folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return env | {"HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)} | extra


class Cluster:
    """Ray nodes started with `ray start`, each in its own session (whose id is the pid of `ray start`; its
    daemons and the raylet's workers stay in it)."""

    def __init__(self, root: Path):
        self.root, self.home, self.sessions = root, root / "home", {}
        self.home.mkdir()
        self.port, self.extra = _free_ports(1)[0], {}

    def run_ray(self, name: str, *args: str, **env: str) -> str:
        log = self.root / f"{name}.log"
        with open(log, "w") as out:
            p = subprocess.Popen([str(RAY), *args], env=_env(self.home, **env), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            self.sessions[name] = p.pid
            rc = p.wait(timeout=START_S)
        text = log.read_text(errors="replace")
        assert rc == 0, f"`ray {' '.join(args)}` failed:\n{text[-3000:]}"
        return text

    def start(self, name: str, *args: str, **env: str) -> str:
        dash, agent, metrics = _free_ports(3)  # not Ray's defaults: other Ray instances may hold those
        head = [f"--port={self.port}", "--include-dashboard=false", f"--dashboard-port={dash}"]
        return self.run_ray(name, "start", *args, *(head if "--head" in args else []), f"--temp-dir={self.root / name}",
                            "--disable-usage-stats", f"--dashboard-agent-listen-port={agent}",
                            f"--metrics-export-port={metrics}", **env)

    def kill(self, name: str) -> None:
        """SIGKILL every process of node `name`: its session, whose id is the pid of its `ray start`."""
        for pid in self.pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.sessions.pop(name, None)

    def pids(self, name: str, title: bytes = b"") -> list[int]:
        """Processes of node `name` whose command line starts with `title` (Ray titles actors ray::CLASS...).
        Ray gives each worker process its own process group, but they stay in the node's session."""
        out = []
        for p in Path("/proc").iterdir():
            try:
                if (p.name.isdigit() and os.getsid(int(p.name)) == self.sessions.get(name)
                        and (p / "cmdline").read_bytes().startswith(title)):
                    out.append(int(p.name))
            except OSError:
                continue
        return out


@pytest.fixture(scope="module")
def cluster():
    """A token-authenticated head (1 CPU) and a worker node (1 CPU) on this machine."""
    c = Cluster(Path(tempfile.mkdtemp(prefix="flray-")))  # short: Ray's socket paths must stay < 108 bytes
    try:
        c.run_ray("token", "get-auth-token", "--generate")
        assert (c.home / ".ray" / "auth_token").is_file()
        head = c.start("head", "--head", "--num-cpus=1")
        assert "Token authentication is enabled" in head  # Ray's default once a token exists
        # a joining node turns token mode on only when told (`ray start --head` does it when it finds a token)
        c.start("worker", f"--address=127.0.0.1:{c.port}", "--num-cpus=1", RAY_AUTH_MODE="token")
        yield c
    finally:
        for name in list(c.sessions):
            c.kill(name)
        shutil.rmtree(c.root, ignore_errors=True)


def _config(folder: Path) -> Path:
    models = "\n".join(f"  - {{source: 'zoo:{m}', label: {m}}}" for m in MODELS)
    path = folder / "s.yaml"
    path.write_text(f"name: t\nmodels:\n{models}\nbenchmarks:\n  - {{kind: zoo, filters: {{limit: {N}}}}}\n"
                    "store: store\nray: {cpus_per_actor: 1, max_retries: 0}\n", encoding="utf-8")
    return path


def _sweep(cluster: Cluster, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine", "sweep", *args, "--quiet"], cwd=ROOT,
                            env=_env(cluster.home, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sweep_on_token_cluster_survives_a_lost_node_with_resume(cluster, tmp_path):
    """One actor per model, one CPU per node: one model runs on the worker node, which is killed (all its
    processes) as soon as that model's actor exists. Its cases are reported lost, `--resume` computes them on the
    head, and the store holds every (model, case) once."""
    cfg = _config(tmp_path)
    address = f"127.0.0.1:{cluster.port}"
    first = _sweep(cluster, str(cfg), "--ray", address)
    try:
        deadline = time.monotonic() + 180
        while not cluster.pids("worker", b"ray::ModelWorker") and first.poll() is None:
            assert time.monotonic() < deadline, "no model actor started on the worker node"
            time.sleep(0.05)
        assert first.poll() is None, f"the sweep ended before reaching the worker node: {first.communicate()}"
        cluster.kill("worker")
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 2, (out, err)
    assert "workers kept dying" in err and "--resume" in err
    partial = stored(tmp_path / "store", "t")
    assert 0 < len(partial) < len(MODELS) * N  # the head's model finished, the lost one did not

    second = _sweep(cluster, str(cfg), "--ray", address, "--resume")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, (out, err)
    m = re.search(r"(\d+) computed .*, (\d+) already stored, (\d+) in all", out)
    assert m and [int(g) for g in m.groups()] == [len(MODELS) * N - len(partial), len(partial), len(MODELS) * N]
    rows = stored(tmp_path / "store", "t")  # raises if a (model, case) is stored twice
    cases = {c for _, c in rows}
    assert len(cases) == N and set(rows) == {(mod, c) for mod in MODELS for c in cases}


def test_wrong_token_and_wrong_address_get_their_own_messages(cluster, tmp_path):
    cfg = _config(tmp_path)
    address = f"127.0.0.1:{cluster.port}"
    closed = _free_ports(1)[0]
    bad_path = tmp_path / "missing_token"
    runs = {"wrong token": _sweep(cluster, str(cfg), "--ray", address, RAY_AUTH_TOKEN="not-the-token"),
            "no token": _sweep(cluster, str(cfg), "--ray", address, HOME=str(tmp_path)),
            "bad token path": _sweep(cluster, str(cfg), "--ray", address, RAY_AUTH_TOKEN_PATH=str(bad_path)),
            "wrong address": _sweep(cluster, str(cfg), "--ray", f"127.0.0.1:{closed}")}
    errs = {}
    for name, p in runs.items():
        _, errs[name] = p.communicate(timeout=120)
        assert p.returncode == 2 and "Traceback" not in errs[name], (name, errs[name])
    assert "refused the token from RAY_AUTH_TOKEN" in errs["wrong token"]
    assert "has no token" in errs["no token"]
    assert f"RAY_AUTH_TOKEN_PATH is '{bad_path}'" in errs["bad token path"]
    for name in ("wrong token", "no token", "bad token path"):
        assert all(way in errs[name] for way in ("~/.ray/auth_token", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"))
    assert "nothing answers there" in errs["wrong address"] and "token" not in errs["wrong address"]
    assert not (tmp_path / "store").exists()  # each failed before the sweep opened its store


def test_a_port_where_something_else_answers_is_not_taken_for_a_cluster(tmp_path):
    """A listening socket that never speaks gRPC: the address is refused after GCS_PROBE_S, without the minutes
    Ray would retry. In a subprocess, as the probe leaves a blocked Ray call behind."""
    script = ("import socket, time, engine.runs.ray as r\n"
              "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(5)\n"
              "r.GCS_PROBE_S = 2\n"
              "t = time.monotonic()\n"
              "try:\n    r.connect(f'127.0.0.1:{srv.getsockname()[1]}')\n"
              "except r.ClusterUnreachable as e:\n    print(f'{time.monotonic() - t:.1f}', e)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seconds, message = done.stdout.split(" ", 1)
    assert "answers, but not as the head of a Ray cluster" in message and float(seconds) < 30
