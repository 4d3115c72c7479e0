"""With Redis away the API still answers, in JSON: 503 from health and from submissions."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tests.conftest import ROOT, Stack, free_port, spawn


def test_redis_down_is_503_not_500(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    env = dict(os.environ)
    env.update({"CELLBLOCK_REDIS_URL": f"redis://127.0.0.1:{dead}/0", "CELLBLOCK_PORT": str(free_port()),
                "PYTHONPATH": str(ROOT)})
    stack = Stack(int(env["CELLBLOCK_PORT"]), env, env["CELLBLOCK_REDIS_URL"], tmp_path)
    stack.api = spawn([sys.executable, "-m", "cli", "api"], env, tmp_path / "api.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = stack.request("GET", "/v1/health", timeout=10)
                break
            except OSError:
                assert time.monotonic() < deadline, stack.logs()
                time.sleep(0.1)
        assert health.status == 503 and health.body["redis"] is False and health.body["status"] == "degraded"
        resp = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"})
        assert resp.status == 503 and resp.body["error"]["code"] == "unavailable"
        resp = stack.request("GET", "/v1/submissions/abc")
        assert resp.status == 503
        assert stack.request("GET", "/v1/languages").status == 200  # needs no Redis
    finally:
        stack.stop()
