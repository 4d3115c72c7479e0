"""With Redis away the API still answers, in JSON: 503 from health and from submissions."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import Stack, error_of, free_port, make_stack, start_api_only, start_redis


def test_redis_down_is_503_not_500(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    stack = start_api_only(f"redis://127.0.0.1:{dead}/0", tmp_path)
    try:
        health = stack.request("GET", "/v1/health", timeout=10)
        assert health.status == 503 and health.body["redis"] is False and health.body["status"] == "degraded"
        resp = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"})
        assert resp.status == 503 and error_of(resp)["code"] == "unavailable"
        resp = stack.request("GET", "/v1/submissions/" + "0" * 32)  # a well-formed id: Redis is asked
        assert resp.status == 503
        assert stack.request("GET", "/v1/languages").status == 200  # needs no Redis
    finally:
        stack.stop()


def test_redis_refusing_writes_is_503_not_500(tmp_path: Path) -> None:
    """Redis up but refusing writes (maxmemory reached: OOM; a failed snapshot: MISCONF, as
    on a full disk): the API answers 503 `unavailable`, and works again once Redis does."""
    server = start_redis(tmp_path, free_port(), "--enable-protected-configs", "yes")  # to move `dir` below
    body = {"language": "python3", "source": "print(1)"}
    r = server.client()
    stack: Stack | None = None
    try:
        stack = start_api_only(server.url, tmp_path)
        health = stack.request("GET", "/v1/health", timeout=10)  # no worker: "degraded", but Redis reachable
        assert health.status == 503 and health.body["redis"] is True and health.body["status"] == "degraded", (
            health.body
        )
        r.config_set("maxmemory", "1")
        resp = stack.request("POST", "/v1/submissions", body)
        assert resp.status == 503 and error_of(resp)["code"] == "unavailable", resp
        r.config_set("maxmemory", "0")
        assert stack.request("POST", "/v1/submissions", body).status == 201

        gone = tmp_path / "gone"
        gone.mkdir()
        r.config_set("save", "3600 1")
        r.config_set("dir", str(gone))
        gone.rmdir()
        r.bgsave()
        deadline = time.monotonic() + 10
        while r.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline, "BGSAVE into a removed directory did not fail"
            time.sleep(0.05)
        resp = stack.request("POST", "/v1/submissions", body)
        assert resp.status == 503 and error_of(resp)["code"] == "unavailable", resp
        assert "unhandled error" not in (tmp_path / "api.log").read_text()
    finally:
        if stack is not None:
            stack.stop()
        server.proc.kill()
        server.proc.wait(timeout=10)


def test_health_says_when_redis_is_full(tmp_path: Path) -> None:
    """At its maxmemory Redis still answers but refuses writes: health is degraded and says why
    (readiness is not: every read still works), and ok again once there is room."""
    server = start_redis(tmp_path, free_port())
    r = server.client()
    stack = make_stack(server, tmp_path, "full", workers=1)
    try:
        assert stack.request("GET", "/v1/health").status == 200
        # 97 % full: degraded, while writes (the worker's heartbeats) still go through. The
        # ballast makes the stack's own few KB of comings and goings a rounding error.
        r.set("ballast", b"x" * (32 << 20))
        r.config_set("maxmemory", str(int(r.info("memory")["used_memory"] / 0.97)))
        health = stack.request("GET", "/v1/health")
        assert health.status == 503 and health.body["status"] == "degraded", health.body
        assert "maxmemory" in health.body["error"] and health.body["redis"] is True, health.body
        assert stack.request("GET", "/v1/ready").status == 200
        r.config_set("maxmemory-policy", "allkeys-lru")  # it would evict, not refuse: not full
        assert stack.request("GET", "/v1/health").status == 200
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", "0")
        assert stack.request("GET", "/v1/health").status == 200
    finally:
        stack.stop()
        server.proc.kill()
        server.proc.wait(timeout=10)
