"""What a run's output events may take on a real Redis (worker/live.py): their JSON text within
the budget whatever bytes the program writes, at most their count, a trickle paced into few
events, and every event before them still there to replay."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from core import models, store
from core.keys import Keys
from core.models import Submission
from tests.conftest import RedisServer
from worker.live import PACE_S, LiveOutput


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


@pytest.fixture
def keys() -> Keys:
    return Keys(f"live-{uuid.uuid4().hex[:8]}")


def staged(r: redis.Redis, keys: Keys) -> str:
    sub = Submission(uuid.uuid4().hex, "python3", {"main.py": b"print(1)"}, [models.TestCase()], stream_output=True)
    with r.pipeline(transaction=True) as pipe:
        store.stage_new(pipe, keys, sub, ttl=60)
        pipe.execute()
    return sub.id


def events(r: redis.Redis, keys: Keys, sid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f[b"event"].decode(), json.loads(f[b"data"])) for _, f in r.xrange(keys.events(sid))]


def outputs(r: redis.Redis, keys: Keys, sid: str) -> list[dict[str, Any]]:
    return [data for kind, data in events(r, keys, sid) if kind == "output"]


@pytest.mark.parametrize("encoding", ["utf-8", "base64"])
@pytest.mark.parametrize("byte", [b"a", b"\x01", b"\xff"])
def test_the_budget_counts_the_text_kept(r: redis.Redis, keys: Keys, encoding: str, byte: bytes) -> None:
    sid = staged(r, keys)
    with LiveOutput(r, keys, sid, 60, encoding, 1, budget=100_000) as out:
        for _ in range(10):
            out.write("stdout", byte * 50_000)
    got = outputs(r, keys, sid)
    kept = sum(len(json.dumps(e["data"])) for e in got)
    assert 90_000 < kept <= 100_000, kept  # a control byte was 6 times its size in the text: 6 times the budget
    assert got[-1].get("truncated") is True and all("truncated" not in e for e in got[:-1])
    assert sum(e["size"] for e in got) < 500_000
    assert [e["offset"] for e in got] == [sum(e["size"] for e in got[:i]) for i in range(len(got))]


def trickle(out: LiveOutput, writes: int) -> float:
    """One byte a millisecond; how long the writes took."""
    t0 = time.monotonic()
    for _ in range(writes):
        out.write("stdout", b"x")
        time.sleep(0.001)
    return time.monotonic() - t0


def test_a_trickle_is_paced(r: redis.Redis, keys: Keys) -> None:
    sid = staged(r, keys)
    with LiveOutput(r, keys, sid, 60, "utf-8", 1) as out:
        took = trickle(out, 300)
    got = outputs(r, keys, sid)
    assert len(got) <= took / PACE_S + 2, (len(got), took)  # one send per PACE_S at most, and the last
    assert "".join(e["data"] for e in got) == "x" * 300


def test_the_count_is_capped_with_a_notice(r: redis.Redis, keys: Keys) -> None:
    sid = staged(r, keys)
    with LiveOutput(r, keys, sid, 60, "utf-8", 1, events=3) as out:
        trickle(out, 500)  # half a second: three sends even on a machine busy enough to take 0.1 s each
    got = outputs(r, keys, sid)
    assert len(got) == 3 and all(e["data"] for e in got[:2]), got
    assert got[-1]["truncated"] is True and got[-1]["size"] == 0 and "truncated" not in str(got[:2])
    assert out.count == 3 and out.stopped


def test_what_is_counted_is_what_was_sent(r: redis.Redis, keys: Keys) -> None:
    sid = staged(r, keys)
    with LiveOutput(r, keys, sid, 60, "utf-8", 1, budget=len(json.dumps("abc")), events=10) as out:
        out.write("stdout", b"abc")  # exactly the budget: all of it sent, nothing cut
    got = outputs(r, keys, sid)
    assert got == [{"test": 1, "stream": "stdout", "offset": 0, "size": 3, "data": "abc"}]
    assert (out.count, out.sent, out.stopped) == (1, len(json.dumps("abc")), False)  # no event for a silent stream


def test_a_replay_at_the_default_test_count_starts_at_the_first_event() -> None:
    from core.settings import load

    # each test: a running state and its verdict; the submission: queued, compiling, finished
    assert store.OUTPUT_EVENTS + 2 * load({}).max_tests + 3 <= store.EVENTS_MAXLEN


def test_once_truncated_no_later_test_streams(r: redis.Redis, keys: Keys) -> None:
    from worker.jobs import HeldEvents

    sid = staged(r, keys)
    sub = Submission(sid, "python3", {"main.py": b""}, [models.TestCase()] * 3, stream_output=True)
    held = HeldEvents(r, keys, sub, 60, live_budget=1_000)
    for test in (1, 2, 3):
        live = held.live(test)
        assert live is not None
        with live:
            live.write("stdout", b"z" * 3_000)  # the first test spends the budget
    got = outputs(r, keys, sid)
    assert [e["test"] for e in got] == [1] and got[0]["truncated"] is True, got
