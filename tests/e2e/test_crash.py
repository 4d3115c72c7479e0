"""A worker killed with SIGKILL mid-job loses nothing: RQ's abandoned-job handling retries it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.conftest import RedisServer, make_stack

SLOW = "import time\ntime.sleep(4)\nprint('survived')\n"


def test_kill_9_mid_job_then_the_submission_still_finishes(redis_server: RedisServer, tmp_path: Path) -> None:
    stack = make_stack(redis_server, tmp_path, "crash", workers=1, extra_env={"CELLBLOCK_JOB_GRACE": "2"})
    try:
        resp = stack.request(
            "POST",
            "/v1/submissions",
            {"language": "python3", "source": SLOW, "limits": {"wall_time": 8, "cpu_time": 1}},
        )
        assert resp.status == 201
        sid = resp.body["id"]
        deadline = time.monotonic() + 30
        while stack.request("GET", f"/v1/submissions/{sid}").body["state"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        assert stack.request("GET", f"/v1/submissions/{sid}").body["progress"] == {"test": 1, "of": 1}
        victim = stack.workers[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert stack.request("GET", f"/v1/submissions/{sid}").body["state"] == "running"

        stack.start_worker()  # a fresh worker notices the abandoned job and runs it again
        view = stack.wait_state(sid, timeout=90)
        assert view["verdict"] == "accepted", view
        assert view["stdout"] == "survived\n" and view["attempts"] == 2
    finally:
        stack.stop()
