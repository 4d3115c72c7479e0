"""SIGTERM with real processes: a worker finishes the job in hand (bounded by
CELLBLOCK_DRAIN_TIMEOUT) and takes no new one; the API stops accepting and finishes
its open requests."""

from __future__ import annotations

import http.client
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import RedisServer, make_stack

pytestmark = pytest.mark.slow

SLEEPER = "import time\ntime.sleep({s})\nprint('done')\n"


def test_worker_sigterm_finishes_job_in_hand_and_takes_no_new_one(redis_server: RedisServer, tmp_path: Path) -> None:
    stack = make_stack(redis_server, tmp_path, "drain", workers=1, extra_env={"CELLBLOCK_DRAIN_TIMEOUT": "30"})
    try:
        first = stack.request("POST", "/v1/submissions", {"language": "python3", "source": SLEEPER.format(s=2)})
        stack.wait_state(first.body["id"], {"running"})
        second = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(2)"})
        worker = stack.workers[0]
        t0 = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        rc = worker.wait(timeout=30)
        assert rc == 0, stack.logs()
        assert time.monotonic() - t0 < 20
        done = stack.wait_state(first.body["id"], timeout=1)
        assert done["verdict"] == "accepted" and done["attempts"] == 1, done
        assert stack.request("GET", f"/v1/submissions/{second.body['id']}").body["state"] == "queued"
        stack.start_worker()  # the queued one is not lost
        assert stack.wait_state(second.body["id"])["verdict"] == "accepted"
    finally:
        stack.stop()


def test_worker_drain_timeout_bounds_the_wait_and_the_job_is_retried(redis_server: RedisServer, tmp_path: Path) -> None:
    stack = make_stack(redis_server, tmp_path, "drain-timeout", workers=1, extra_env={"CELLBLOCK_DRAIN_TIMEOUT": "1"})
    try:
        sub = stack.request(
            "POST",
            "/v1/submissions",
            {"language": "python3", "source": SLEEPER.format(s=4), "limits": {"wall_time": 10}},
        )
        sid = sub.body["id"]
        stack.wait_state(sid, {"running"})
        worker = stack.workers[0]
        t0 = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)
        assert time.monotonic() - t0 < 10, stack.logs()
        assert "drain timeout" in (tmp_path / "worker0.log").read_text()
        stack.start_worker()
        done = stack.wait_state(sid, timeout=90)
        assert done["verdict"] == "accepted" and done["attempts"] >= 2, done
    finally:
        stack.stop()


def test_api_sigterm_finishes_open_requests_and_stops_accepting(redis_server: RedisServer, tmp_path: Path) -> None:
    stack = make_stack(redis_server, tmp_path, "api-drain", workers=1, extra_env={"CELLBLOCK_DRAIN_TIMEOUT": "30"})
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                stack.request,
                "POST",
                "/v1/submissions",
                {"language": "python3", "source": SLEEPER.format(s=2), "wait": 30},
            )
            time.sleep(1.0)  # the request is in flight, waiting for its result
            assert stack.api is not None
            stack.api.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(OSError):  # no new connection accepted
                conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=3)
                try:
                    conn.request("GET", "/v1/health")
                    conn.getresponse()
                finally:
                    conn.close()
            resp = waiting.result(timeout=40)  # an answer: an exception here fails the test
        assert resp.status == 200 and resp.body["state"] == "finished", resp.body
        assert resp.body["verdict"] == "accepted"
        assert stack.api.wait(timeout=30) == 0, stack.logs()
    finally:
        stack.stop()
