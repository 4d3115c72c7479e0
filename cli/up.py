"""`cellblock up`: Redis (unless CELLBLOCK_REDIS_URL is set), the API and one worker per CPU,
in the foreground. SIGINT/SIGTERM stops the children in order: API and workers first
(workers finish their current job, then get SIGKILL after STOP_GRACE_S), Redis last (it
flushes its AOF on SIGTERM). A worker that dies is restarted; if Redis or the API dies,
everything stops with an error.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import redis

from core.settings import Config

log = logging.getLogger("cellblock.up")

STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _child_setup() -> None:
    """In each child before exec: own session (Ctrl-C reaches only the supervisor, which
    then stops children in order) and SIGTERM if the supervisor itself dies."""
    os.setsid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL, preexec_fn=_child_setup)
        log.info("started %s pid %d", self.name, self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s pid %d did not stop in time: SIGKILL", self.name, self.proc.pid)
            self.proc.kill()
            self.proc.wait()


def redis_argv(cfg: Config) -> list[str]:
    """redis-server with AOF, bound to loopback / a private unix socket, data under var/redis."""
    argv = [
        "redis-server",
        "--dir",
        str(cfg.redis_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--port",
        str(cfg.redis_port),
        # Bounded, and never evicting: a submission or a queued job must not vanish to make
        # room. At the cap Redis refuses writes, and the API answers 503 until there is room.
        "--maxmemory",
        str(cfg.redis_maxmemory),
        "--maxmemory-policy",
        "noeviction",
    ]
    if not cfg.redis_port:
        argv += ["--unixsocket", str(cfg.redis_socket), "--unixsocketperm", "700"]
    return argv


def wait_for_redis(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            return
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            last = exc
            time.sleep(0.05)
    raise RuntimeError(f"Redis at {url} did not answer within {timeout}s: {last}")


class Stop(Exception):
    pass


def up(cfg: Config) -> int:
    env = dict(os.environ)
    children: list[Child] = []
    redis_child: Child | None = None

    def on_signal(signum: int, _frame: object) -> None:
        raise Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    if os.geteuid() != 0 and cfg.worker_count() > 0:
        log.warning("not root: the workers' jail needs root (namespaces, cgroups); they will fail to run jobs")
    try:
        if not cfg.redis_url:
            cfg.redis_dir.mkdir(parents=True, exist_ok=True)
            redis_child = Child("redis", redis_argv(cfg), env)
            redis_child.start()
            env["CELLBLOCK_REDIS_URL"] = cfg.own_redis_url()
            wait_for_redis(cfg.own_redis_url())
        py = [sys.executable, "-m", "cli"]
        children.append(Child("api", [*py, "api"], env))
        for i in range(cfg.worker_count()):
            children.append(Child(f"worker-{i}", [*py, "worker"], env))
        for c in children:
            c.start()
        base = f"http://{cfg.host}:{cfg.port}"
        log.info(
            "cellblock up: API on %s (Judge0 CE API at %s, Piston at %s), %d workers, redis %s",
            base,
            f"http://{cfg.host}:{cfg.judge0_port}" if cfg.judge0_port else f"{base}/judge0",
            f"http://{cfg.host}:{cfg.piston_port}" if cfg.piston_port else f"{base}/piston",
            cfg.worker_count(),
            cfg.shown_redis_url(),
        )
        # The address a person types in a browser (a wildcard bind is reached on loopback).
        host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::", "") else cfg.host
        page = f"http://{f'[{host}]' if ':' in host else host}:{cfg.port}"
        log.info("open %s/ in a browser: the playground (%s/dashboard: the operations dashboard)", page, page)
        while True:
            time.sleep(0.5)
            if redis_child is not None and not redis_child.alive():
                raise RuntimeError("redis-server exited")
            for c in children:
                if c.alive():
                    continue
                rc = c.proc.returncode if c.proc else None
                if c.name == "api":
                    raise RuntimeError(f"the API exited with {rc}")
                now = time.monotonic()
                c.restarts = [t for t in c.restarts if now - t < 60] + [now]
                if len(c.restarts) > 5:
                    raise RuntimeError(f"{c.name} keeps dying (last exit {rc})")
                log.warning("%s exited with %s: restarting", c.name, rc)
                c.start()
    except Stop as s:
        log.info("stopping on %s", s)
    except RuntimeError as exc:
        log.error("%s: stopping", exc)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for c in children:
            c.stop()
        # children drain for CELLBLOCK_DRAIN_TIMEOUT (job in hand / open requests), then stop themselves
        deadline = time.monotonic() + max(STOP_GRACE_S, cfg.drain_timeout + 5)
        for c in children:
            c.wait(deadline)
        if redis_child is not None:
            redis_child.stop()
            redis_child.wait(time.monotonic() + STOP_GRACE_S)
        log.info("stopped")
    return code
