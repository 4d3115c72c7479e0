"""CellblockWorker's changes to RQ's worker bookkeeping, against a real Redis: the heartbeat
goes out at most once a second unless a longer TTL is asked, and a state it already has
is not written again."""

from __future__ import annotations

import threading
import time
import uuid

from rq import Queue

from tests.conftest import RedisServer
from worker.runner import WORKER_HEARTBEAT_EVERY_S, CellblockWorker


def test_heartbeat_is_coalesced_but_never_shortened(redis_server: RedisServer) -> None:
    r = redis_server.client()
    w = CellblockWorker([Queue(f"q-{uuid.uuid4().hex[:8]}", connection=r)], connection=r, worker_ttl=420)
    try:
        w.heartbeat()
        assert 470 <= r.ttl(w.key) <= 480  # worker_ttl + 60, as RQ sets it
        r.expire(w.key, 100)
        w.heartbeat()  # again within the second, no longer TTL asked: skipped
        assert r.ttl(w.key) <= 100
        w.heartbeat(1000)  # a longer TTL is always sent
        assert 990 <= r.ttl(w.key) <= 1000
        r.expire(w.key, 100)
        time.sleep(WORKER_HEARTBEAT_EVERY_S + 0.1)
        w.heartbeat()  # a second later: sent
        assert r.ttl(w.key) > 400
    finally:
        r.delete(w.key)
        r.close()


def test_state_written_only_when_it_changes(redis_server: RedisServer) -> None:
    r = redis_server.client()
    w = CellblockWorker([Queue(f"q-{uuid.uuid4().hex[:8]}", connection=r)], connection=r)
    try:
        w.set_state("busy")
        assert r.hget(w.key, "state") == b"busy"
        r.hset(w.key, "state", "marker")
        w.set_state("busy")  # already busy: no round trip
        assert r.hget(w.key, "state") == b"marker"
        w.set_state("idle")
        assert r.hget(w.key, "state") == b"idle"
    finally:
        r.delete(w.key)
        r.close()


def test_stopping_the_command_subscription_never_hangs(redis_server: RedisServer) -> None:
    """RQ's own unsubscribe hung for 60 s about one time in four (its Pub/Sub thread read the
    UNSUBSCRIBE reply before it was told to stop, then read on): a worker stopped with SIGTERM
    stayed alive until SIGKILLed. Twenty rounds would meet that race almost surely."""
    r = redis_server.client()
    try:
        for _ in range(20):
            w = CellblockWorker([Queue(f"q-{uuid.uuid4().hex[:8]}", connection=r)], connection=r)
            w.subscribe()
            time.sleep(0.02)  # the thread is in its blocking read
            stopper = threading.Thread(target=w.unsubscribe, daemon=True)
            t0 = time.monotonic()
            stopper.start()
            stopper.join(timeout=5)
            assert not stopper.is_alive(), "unsubscribe hung"
            assert time.monotonic() - t0 < 2
            assert w.pubsub_thread is not None and not w.pubsub_thread.is_alive()
    finally:
        r.close()
