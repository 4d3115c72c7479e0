"""`cellblock up` starts its own Redis (AOF, unix socket under var/), the API and workers, and
says where the playground is; `cellblock submit` talks to it; SIGTERM stops every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import redis

from tests.conftest import ROOT, free_port, spawn


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_up_submit_and_clean_stop(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBLOCK_")}
    env.update(
        {
            "CELLBLOCK_VAR_DIR": str(tmp_path / "var"),
            "CELLBLOCK_PORT": str(port),
            "CELLBLOCK_WORKERS": "1",
            "CELLBLOCK_CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONPATH": str(ROOT),
        }
    )
    up = spawn([sys.executable, "-m", "cli", "up"], env, tmp_path / "up.log")
    try:
        url = f"http://127.0.0.1:{port}"
        prog = tmp_path / "hello.py"
        prog.write_text("print('hello', input())\n")
        stdin = tmp_path / "in.txt"
        stdin.write_text("world\n")
        deadline = time.monotonic() + 60
        while True:
            res = cli(env, "submit", str(prog), "--stdin", str(stdin), "--url", url)
            if res.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert res.returncode == 0, res.stderr + (tmp_path / "up.log").read_text()
        assert "hello world" in res.stdout
        # What a newcomer opens: the address `up` prints serves the playground.
        assert f"open {url}/ in a browser" in (tmp_path / "up.log").read_text()
        with urllib.request.urlopen(url + "/", timeout=10) as page:
            assert b"<title>cellblock playground</title>" in page.read()

        tests = tmp_path / "tests"
        tests.mkdir()
        (tests / "1.in").write_text("a\n")
        (tests / "1.out").write_text("hello a\n")
        (tests / "2.in").write_text("b\n")
        (tests / "2.out").write_text("hello c\n")
        res = cli(env, "submit", str(prog), "--tests", str(tests), "--json", "--url", url)
        assert res.returncode == 1, res.stderr
        view = json.loads(res.stdout)
        assert view["language"] == "python3" and view["verdict"] == "wrong_answer"
        assert [t["verdict"] for t in view["tests"]] == ["accepted", "wrong_answer"]

        assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()  # AOF on
        own = redis.Redis(unix_socket_path=str(tmp_path / "var" / "redis" / "redis.sock"))
        try:  # bounded, never evicting a submission (CELLBLOCK_REDIS_MAXMEMORY, default 1G)
            assert own.config_get("maxmemory") == {"maxmemory": str(1 << 30)}
            assert own.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        finally:
            own.close()
        kids = children_of(up.pid)
        assert len(kids) == 3  # redis, api, 1 worker

        # a worker that dies is restarted, and the new one serves
        worker = next(k for k in kids if b"worker" in Path(f"/proc/{k}/cmdline").read_bytes())
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            now = children_of(up.pid)
            if len(now) == 3 and worker not in now:
                break
            assert time.monotonic() < deadline, f"worker not restarted: {now}"
            time.sleep(0.1)
        res = cli(env, "submit", str(prog), "--stdin", str(stdin), "--url", url)
        assert res.returncode == 0 and "hello world" in res.stdout, res.stderr
        kids = now
    finally:
        up.send_signal(signal.SIGTERM)
        rc = up.wait(timeout=30)
    assert rc == 0, (tmp_path / "up.log").read_text()
    time.sleep(0.2)
    assert not any(Path(f"/proc/{k}").exists() for k in kids), "children left behind"
    assert not (tmp_path / "var" / "redis" / "redis.sock").exists()
