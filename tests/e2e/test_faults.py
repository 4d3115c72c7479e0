"""Faults with real processes: Redis restarted (AOF on) under a running stack, and the API
restarted while a client waits with `wait`."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest

from core.keys import Keys
from tests.conftest import RedisServer, Stack, error_of, free_port, make_stack, start_redis

pytestmark = pytest.mark.slow


def get_view(stack: Stack, sid: str, timeout: float = 30) -> dict[str, Any]:
    """GET, retrying while the API reconnects (503) after the restart."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = stack.request("GET", f"/v1/submissions/{sid}", timeout=10)
            if resp.status == 200:
                return dict(resp.body)
        except OSError:
            pass
        assert time.monotonic() < deadline, "API never answered after the Redis restart"
        time.sleep(0.1)


def test_redis_restart_with_aof_keeps_queued_and_finished(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    port = free_port()
    server = start_redis(data, port, "--appendfsync", "always")
    stack = make_stack(server, tmp_path, "faults-redis", workers=1)
    try:
        finished = stack.submit({"language": "python3", "source": "print('kept')"})
        assert finished["verdict"] == "accepted"
        worker = stack.workers[0]
        worker.send_signal(signal.SIGTERM)  # no worker: the next one stays queued
        assert worker.wait(timeout=30) == 0
        queued = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print('later')"})
        assert queued.status == 201
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=15)
        server = start_redis(data, port, "--appendfsync", "always")  # same dir: replays the AOF
        again = get_view(stack, finished["id"])
        assert again["state"] == "finished" and again["stdout"] == "kept\n", again
        assert get_view(stack, queued.body["id"])["state"] == "queued"
        stack.start_worker()
        view = stack.wait_state(queued.body["id"])  # the API answers again (get_view above)
        assert view["verdict"] == "accepted" and view["stdout"] == "later\n"
    finally:
        stack.stop()
        server.proc.terminate()
        server.proc.wait(timeout=10)


def test_api_restart_while_a_client_waits(redis_server: RedisServer, tmp_path: Path) -> None:
    """The waiting client gets either its result or a clear failure (a closed connection, or
    an error status with a JSON body), never a wrong result; the submission is not lost."""
    stack = make_stack(redis_server, tmp_path, "faults-api", workers=1, extra_env={"CELLBLOCK_DRAIN_TIMEOUT": "1"})
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                stack.request,
                "POST",
                "/v1/submissions",
                {"language": "python3", "source": "import time\ntime.sleep(3)\nprint('slow')\n", "wait": 30},
            )
            time.sleep(1.0)
            assert stack.api is not None
            stack.api.send_signal(signal.SIGTERM)
            assert wait([waiting], timeout=30).done, "the waiting client got no answer"
        stack.api.wait(timeout=20)
        exc = waiting.exception()
        resp = None if exc is not None else waiting.result()
        if resp is None:  # the expected "clear error" when the API goes away: a closed connection
            assert isinstance(exc, OSError), repr(exc)
        elif resp.status == 200:  # the finished result
            assert resp.body["state"] == "finished" and resp.body["stdout"] == "slow\n", resp.body
        elif resp.status == 201:  # not finished in time, but accepted: its id to poll
            assert resp.body["id"] and resp.body["state"] == "queued", resp.body
        else:  # an error, in JSON
            assert resp.status == 503, (resp.status, resp.body)
            assert error_of(resp)["code"], resp.body
        stack.start_api()
        stack.wait_healthy(1)
        r = redis_server.client()
        keys = Keys(stack.env["CELLBLOCK_KEY_PREFIX"])
        names = [k.decode() for k in r.scan_iter(keys.submission("*")) if not k.endswith(b":events")]
        r.close()
        assert len(names) == 1, names  # the submission was stored before the API went away
        sid = names[0].removeprefix(keys.submission(""))
        assert ":" not in sid, names  # a submission's hash, not a key beside it
        if resp is not None and resp.status in (200, 201):
            assert resp.body["id"] == sid, (resp.body, sid)
        view = stack.wait_state(sid)
        assert view["verdict"] == "accepted" and view["stdout"] == "slow\n"
    finally:
        stack.stop()
