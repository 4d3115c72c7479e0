"""CELLBLOCK_REDIS_REPLICAS: the API accepts a submission only once a replica has it (WAIT), and
otherwise answers 503 with nothing queued; Redis's own min-replicas-to-write refusal (NOREPLICAS)
is a 503 too. On real redis-servers: a primary with a replica, and one without."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from core.keys import Keys
from tests.conftest import error_of, free_port, start_api_only, start_redis

BODY = {"language": "python3", "source": "print(1)"}


def queued(r: redis.Redis, queue: str) -> int:
    return int(r.llen(f"rq:queue:{queue}"))


def test_accepted_means_on_a_replica(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    primary = start_redis(tmp_path / "p", free_port())
    replica = start_redis(tmp_path / "r", free_port(), "--replicaof", "127.0.0.1", str(primary.port))
    env = {"CELLBLOCK_REDIS_REPLICAS": "1", "CELLBLOCK_QUEUE": "replicas", "CELLBLOCK_KEY_PREFIX": "replicas"}
    (tmp_path / "api").mkdir()
    stack = start_api_only(primary.url, tmp_path / "api", env)
    try:
        with replica.client() as on_replica:
            deadline = time.monotonic() + 15
            while on_replica.info("replication")["master_link_status"] != "up":
                assert time.monotonic() < deadline, "the replica never caught up"
                time.sleep(0.05)
            replica.proc.send_signal(signal.SIGSTOP)  # a replica that lags
            try:
                with ThreadPoolExecutor(1) as pool:
                    answer = pool.submit(stack.request, "POST", "/v1/submissions", BODY)
                    time.sleep(0.4)
                    assert not answer.done(), "answered before the replica had it"
                    replica.proc.send_signal(signal.SIGCONT)
                    resp = answer.result(timeout=30)
            finally:
                replica.proc.send_signal(signal.SIGCONT)
            assert resp.status == 201, resp.body
            # The answer came once the replica had it: it is there, job and all.
            assert on_replica.exists(Keys("replicas").submission(resp.body["id"])) == 1
            assert queued(on_replica, "replicas") == 1
    finally:
        stack.stop()
        for server in (replica, primary):
            server.proc.terminate()
            server.proc.wait(timeout=10)


def test_no_replica_in_time_is_503_and_nothing_queued(tmp_path: Path) -> None:
    alone = start_redis(tmp_path, free_port())
    env = {"CELLBLOCK_REDIS_REPLICAS": "1", "CELLBLOCK_QUEUE": "alone", "CELLBLOCK_KEY_PREFIX": "alone"}
    stack = start_api_only(alone.url, tmp_path, env)
    try:
        resp = stack.request("POST", "/v1/submissions", BODY, headers={"Idempotency-Key": "k1"})
        assert resp.status == 503 and resp.headers["retry-after"] == "1", resp.body
        assert "replica" in error_of(resp)["reason"] and "nothing was queued" in error_of(resp)["reason"]
        with alone.client() as r:
            assert queued(r, "alone") == 0 and not list(r.scan_iter("alone:sub:*"))
        # The key was released with it: the same request again is refused again, not answered from it.
        again = stack.request("POST", "/v1/submissions", BODY, headers={"Idempotency-Key": "k1"})
        assert again.status == 503
    finally:
        stack.stop()
        alone.proc.terminate()
        alone.proc.wait(timeout=10)


def test_redis_refusing_writes_without_replicas_is_503(tmp_path: Path) -> None:
    """min-replicas-to-write: the primary itself refuses writes while too few replicas keep up."""
    guarded = start_redis(tmp_path, free_port(), "--min-replicas-to-write", "1")
    stack = start_api_only(guarded.url, tmp_path)
    try:
        resp = stack.request("POST", "/v1/submissions", BODY)
        assert resp.status == 503 and error_of(resp)["code"] == "unavailable", resp.body
        assert " 500 in " not in stack.logs(), stack.logs()
    finally:
        stack.stop()
        guarded.proc.terminate()
        guarded.proc.wait(timeout=10)
