"""Backpressure: when the API reads the queue length again (a unit test with a fake Redis)."""

from __future__ import annotations

import asyncio

import pytest

from api.backpressure import QueueDepth
from api.errors import TooMany
from core.settings import load


class FakeQueue:
    """Stands in for Redis: LLEN answers `length`, and counts the calls."""

    def __init__(self) -> None:
        self.length = 0
        self.reads = 0

    async def llen(self, _key: str) -> int:
        self.reads += 1
        return self.length


def test_queue_depth_reads_near_the_bound_and_not_when_nearly_empty() -> None:
    cfg = load({"CELLBLOCK_MAX_QUEUE": "100"})
    q, gauge = FakeQueue(), QueueDepth()

    async def admit_many(n: int) -> None:
        for _ in range(n):
            await gauge.admit(q, cfg, 1)

    asyncio.run(admit_many(10))
    assert q.reads == 1  # 10 of 100: one reading serves them all

    q.length = 99  # another API process filled the queue; this one's reading is stale
    gauge.read_at = float("-inf")  # ... until it is older than DEPTH_REUSE_S
    asyncio.run(admit_many(1))
    q.length = 100  # that one was queued
    with pytest.raises(TooMany) as refused:
        asyncio.run(admit_many(1))
    assert refused.value.status == 503
    assert q.reads == 3  # near the bound, every request reads the length again


def test_queue_depth_off_when_unbounded() -> None:
    q = FakeQueue()
    asyncio.run(QueueDepth().admit(q, load({"CELLBLOCK_MAX_QUEUE": "0"}), 1000))
    assert q.reads == 0
