"""Shared fixtures: a real redis-server on a free port in a temp dir, and a real service stack
(API + workers as subprocesses, the real jail) talking to it. Nothing is mocked.

A missing redis-server fails loudly: the service cannot be tested without it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent


# How much slower this host runs than the one the waits were made for: 5 in the test VM
# (TCG, its imports over 9p; Makefile's test-v2), where a stack's first start takes a minute.
TIME_SCALE = float(os.environ.get("TESTS_TIME_SCALE", "1"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a process with stdout+stderr to `log` (the parent's copy of the file is closed)."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


@dataclass
class RedisServer:
    url: str
    port: int
    proc: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def start_redis(data: Path, port: int, *extra: str) -> RedisServer:
    """A real redis-server with AOF on, its data in `data`, answering PING (AOF loaded)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server not found: run `make test` (it installs deploy/host-packages.txt)")
    log = data / f"redis-{time.monotonic_ns()}.log"
    proc = spawn(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            *extra,
            "--save",
            "",
            "--daemonize",
            "no",
        ],
        dict(os.environ),
        log,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url, proc, log)
    return RedisServer(url, port, proc)


def wait_for_redis(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 15) -> None:
    """Until the redis-server `proc` answers PING at `url` (its AOF loaded); killed and the test
    failed, with its log, if it exits or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with redis.Redis.from_url(url) as r:
                r.ping()
            return
        except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                pytest.fail(f"redis-server did not start: {log.read_text()}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"), free_port())
    proc = server.proc
    yield server
    proc.terminate()
    proc.wait(timeout=10)


@dataclass
class Response:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Stack:
    """A running API plus workers. `request` speaks JSON over a fresh connection each time."""

    port: int
    env: dict[str, str]
    redis_url: str
    log_dir: Path
    api: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    address: str = "127.0.0.1"  # where the API listens

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 90,
    ) -> Response:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            hdrs = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type", "")
            parsed: Any = json.loads(payload) if "json" in ctype else payload.decode(errors="replace")
            return Response(resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()

    def submit(self, body: dict[str, Any], wait: float | bool = True) -> dict[str, Any]:
        """POST with wait; poll until finished if the wait ran out. Returns the finished view."""
        resp = self.request("POST", "/v1/submissions", {**body, "wait": wait})
        assert resp.status in (200, 201), resp.body
        if resp.body.get("state") == "finished":
            return dict(resp.body)
        return self.wait_state(resp.body["id"], timeout=120)

    def wait_state(
        self,
        sid: str,
        states: Collection[str] = ("finished",),
        timeout: float = 60,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Poll GET until the submission is in one of `states`; its view then."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.request("GET", f"/v1/submissions/{sid}", headers=headers).body
            if view.get("state") in states:
                return dict(view)
            assert time.monotonic() < deadline, f"not {sorted(states)} after {timeout}s: {view}\n{self.logs()}"
            time.sleep(0.05)

    def keys(self, *args: str) -> str:
        """`cellblock keys ARGS` on this stack's Redis and prefix; its stdout (exit 0 asserted)."""
        out = subprocess.run(
            [sys.executable, "-m", "cli", "keys", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start_worker(self, wrap: Callable[[list[str]], list[str]] | None = None) -> subprocess.Popen[bytes]:
        """A worker; its command through `wrap` if given (e.g. tests.cgroup_layout.in_cgroup)."""
        n = len(self.workers)
        argv = [sys.executable, "-m", "cli", "worker"]
        proc = spawn(wrap(argv) if wrap else argv, self.env, self.log_dir / f"worker{n}.log")
        self.workers.append(proc)
        return proc

    def start_api(self) -> None:
        self.api = spawn([sys.executable, "-m", "cli", "api"], self.env, self.log_dir / "api.log")

    def wait_healthy(self, workers: int, timeout: float = 60) -> None:
        timeout *= TIME_SCALE
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.api is not None and self.api.poll() is None, self.logs()
            try:
                resp = self.request("GET", "/v1/health", timeout=5)
                last = resp.body
                if resp.status == 200 and resp.body["workers"] >= workers:
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.1)
        pytest.fail(f"stack not healthy after {timeout}s: {last}\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.log_dir.glob("*.log"))
        )

    def stop(self) -> None:
        procs = [p for p in [self.api, *self.workers] if p is not None]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def error_of(resp: Response) -> dict[str, Any]:
    """The JSON error of a refusal: {"error": {status, code, field, reason}}, its status the
    response's and its reason given."""
    assert isinstance(resp.body, dict) and "error" in resp.body, resp.body
    err: dict[str, Any] = resp.body["error"]
    assert err["status"] == resp.status, (resp.status, err)
    assert err["reason"], err
    return err


def start_api_only(redis_url: str, tmp: Path, extra_env: dict[str, str] | None = None, timeout: float = 30) -> Stack:
    """An API and no worker, on `redis_url` (which may be dead), logging to `tmp`: returned once
    it answers GET /v1/health, whatever the answer (no worker: never a 200)."""
    env = dict(os.environ)
    env.update(
        {
            "CELLBLOCK_REDIS_URL": redis_url,
            "CELLBLOCK_PORT": str(free_port()),
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        }
    )
    stack = Stack(int(env["CELLBLOCK_PORT"]), env, redis_url, tmp)
    stack.start_api()
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert stack.api is not None and stack.api.poll() is None, stack.logs()
            try:
                stack.request("GET", "/v1/health", timeout=10)
                return stack
            except OSError:
                assert time.monotonic() < deadline, f"the API did not answer in {timeout}s\n{stack.logs()}"
                time.sleep(0.1)
    except BaseException:
        stack.stop()
        raise


def isolated_api(redis_server: RedisServer, tmp: Path, name: str, **env: str) -> Stack:
    """An API and no worker on the shared Redis, on a key prefix and a queue of its own."""
    unique = f"{name}-{uuid.uuid4().hex[:8]}"
    return start_api_only(redis_server.url, tmp, {"CELLBLOCK_KEY_PREFIX": unique, "CELLBLOCK_QUEUE": unique, **env})


def make_stack(
    redis_server: RedisServer,
    tmp: Path,
    name: str,
    workers: int,
    extra_env: dict[str, str] | None = None,
    worker_wrap: Callable[[list[str]], list[str]] | None = None,
) -> Stack:
    """API + `workers` workers on their own queue and key prefix (isolated from other stacks,
    including pending callback deliveries of an earlier stack on the same Redis); each worker's
    command through `worker_wrap` if given."""
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        {
            "CELLBLOCK_REDIS_URL": redis_server.url,
            "CELLBLOCK_PORT": str(free_port()),
            "CELLBLOCK_QUEUE": f"q-{name}",
            "CELLBLOCK_KEY_PREFIX": f"cb-{name}",
            "CELLBLOCK_MAINTENANCE_INTERVAL": "2",
            "CELLBLOCK_MAX_BODY": str(1024 * 1024),
            "CELLBLOCK_MAX_SOURCE": str(256 * 1024),
            "CELLBLOCK_MAX_INPUT": str(512 * 1024),
            "CELLBLOCK_MAX_TESTS": "20",
            "CELLBLOCK_MAX_BATCH": "10",
            "CELLBLOCK_MAX_WAIT": "60",
            "CELLBLOCK_LOG_FORMAT": "json",
            "CELLBLOCK_CACHE_DIR": str(tmp / "compile-cache"),
            "PYTHONPATH": str(ROOT),
            **(extra_env or {}),
        }
    )
    stack = Stack(int(env["CELLBLOCK_PORT"]), env, redis_server.url, tmp)
    stack.start_api()
    for _ in range(workers):
        stack.start_worker(worker_wrap)
    try:
        stack.wait_healthy(workers)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API + 2 workers shared by one test module. Tests must not stop it. Module scope, so
    that no worker (and no jail state it keeps) outlives the service tests into tests/jail
    and tests/security, which check the host for leftovers."""
    if os.geteuid() != 0:
        pytest.fail("the workers run the jail, which needs root: run the tests as root")
    s = make_stack(redis_server, tmp_path_factory.mktemp("stack"), "main", workers=2)
    yield s
    s.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures the fault tests on many hosts measured (tests/hosts.py), whatever the outcome."""
    from tests.hosts import FIGURES

    if FIGURES:
        terminalreporter.section("faults on many hosts")
        for line in FIGURES:
            terminalreporter.write_line(line)
