"""A throwaway cellblock stack for the load scripts: `cellblock up` in a temp dir on a free
loopback port (own Redis, own compile cache), waited for, its processes found by role,
and stopped; the temp dir goes with it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    var: Path  # CELLBLOCK_VAR_DIR: its Redis listens on var/redis/redis.sock

    def wait_ready(self, workers: int, seconds: float = 90) -> None:
        """Until /v1/ready counts `workers` live workers."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/v1/ready", timeout=5) as resp:
                    if json.load(resp)["workers"] >= workers:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"stack at {self.base} not ready after {seconds}s")

    def members(self) -> list[tuple[int, str]]:
        """(pid, role) of the stack's processes: `api`, `worker`, `redis`, and `builder`
        for each worker's container builder (jail.zygote)."""
        procs: dict[int, tuple[int, list[bytes]]] = {}  # pid -> (ppid, argv)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            procs[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), argv)
        found = []
        for pid, (ppid, argv) in procs.items():
            if ppid == self.proc.pid:
                if b"cli" in argv[:-1]:
                    found.append((pid, argv[argv.index(b"cli") + 1].decode()))
                elif b"redis-server" in argv[0]:  # its title: "redis-server unixsocket:..."
                    found.append((pid, "redis"))
            elif any(b"jail.zygote" in a for a in argv) and procs.get(ppid, (0, []))[0] == self.proc.pid:
                found.append((pid, "builder"))
        return found


@contextmanager
def running(workers: int, log: Path | None = None, **env: str) -> Iterator[Stack]:
    """`cellblock up` with `workers` workers and the given CELLBLOCK_* settings (the caller's
    own CELLBLOCK_* are dropped), output to `log` (default: in the temp dir); SIGTERM at the
    end, SIGKILL a minute later."""
    tmp = Path(tempfile.mkdtemp(prefix="cellblock-load-"))
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("CELLBLOCK_")}
    full.update(
        {
            "CELLBLOCK_VAR_DIR": str(tmp / "var"),
            "CELLBLOCK_HOST": "127.0.0.1",
            "CELLBLOCK_PORT": str(port),
            "CELLBLOCK_WORKERS": str(workers),
            "CELLBLOCK_CACHE_DIR": str(tmp / "cache"),
            "CELLBLOCK_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            **env,
        }
    )
    with open(log or tmp / "stack.log", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up"],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield Stack(proc, f"http://127.0.0.1:{port}", tmp / "var")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
