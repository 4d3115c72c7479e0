"""The first result wins (core/store.py): once a submission is finished, a late attempt — a
worker that was cut off while its job ran again elsewhere, a session the API gave up on —
neither replaces its result nor adds events, counts or callbacks. On a real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from core import metrics, models, store
from core.keys import Keys
from core.models import Result, State, Submission, Verdict
from tests.conftest import RedisServer


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def new_submission(r: redis.Redis, keys: Keys) -> Submission:
    sub = Submission(uuid.uuid4().hex, "python3", {"main": b"print(1)"}, [models.TestCase()],
                     callback_url="https://example.org/hook")  # fmt: skip
    with r.pipeline(transaction=True) as pipe:
        store.stage_new(pipe, keys, sub, ttl=60)
        pipe.execute()
    return sub


def result_of(r: redis.Redis, keys: Keys, sid: str) -> dict[str, object]:
    return dict(json.loads(r.hget(keys.submission(sid), "result") or b"{}"))


def finished_events(r: redis.Redis, keys: Keys, sid: str) -> int:
    return sum(1 for _, fields in r.xrange(keys.events(sid)) if fields[b"event"] == b"finished")


def test_a_late_result_changes_nothing(r: redis.Redis) -> None:
    keys = Keys(f"frw-{uuid.uuid4().hex[:8]}")
    sub = new_submission(r, keys)
    first = Result(sub.id, Verdict.ACCEPTED, message="second attempt", attempts=2)
    assert store.finish(r, keys, sub, first, ttl=60)
    stream = r.xrange(keys.events(sub.id))

    late_events = [("state", {"state": str(State.RUNNING), "test": 1, "of": 1})]
    store.write_events(r, keys, sub.id, late_events, ttl=60)  # the late attempt's progress
    late = Result(sub.id, Verdict.WRONG_ANSWER, message="first attempt", attempts=1)
    assert not store.finish(r, keys, sub, late, ttl=60, events=late_events)

    assert result_of(r, keys, sub.id)["attempts"] == 2
    assert r.hget(keys.submission(sub.id), "state") == b"finished"
    assert r.xrange(keys.events(sub.id)) == stream  # nothing after `finished`
    assert finished_events(r, keys, sub.id) == 1
    assert r.xlen(keys.callbacks()) == 1  # one callback
    assert metrics.read_submissions(r, keys) == {("python3", "accepted"): 1}  # counted once


def test_no_result_for_a_submission_that_is_gone(r: redis.Redis) -> None:
    keys = Keys(f"frw-{uuid.uuid4().hex[:8]}")
    sub = Submission(uuid.uuid4().hex, "python3", {"main": b""}, [models.TestCase()])  # expired: never stored
    assert not store.finish(r, keys, sub, Result(sub.id, Verdict.ACCEPTED), ttl=60)
    store.write_events(r, keys, sub.id, [("state", {"state": str(State.RUNNING)})], ttl=60)
    assert r.exists(keys.submission(sub.id), keys.events(sub.id)) == 0


def test_the_api_and_a_worker_race_to_finish_a_session(r: redis.Redis, redis_server: RedisServer) -> None:
    """The API's lost-worker check (finish_async) and the worker's own end: whichever is first."""
    keys = Keys(f"frw-{uuid.uuid4().hex[:8]}")
    sub = new_submission(r, keys)
    worker = Result(sub.id, Verdict.ACCEPTED, message="done")
    api = Result(sub.id, Verdict.INTERNAL_ERROR, message="the worker stopped")

    async def api_finish() -> bool:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            return await store.finish_async(client, keys, sub, api, ttl=60)
        finally:
            await client.aclose()

    assert store.finish(r, keys, sub, worker, ttl=60)
    assert not asyncio.run(api_finish())
    assert result_of(r, keys, sub.id)["verdict"] == "accepted" and finished_events(r, keys, sub.id) == 1
