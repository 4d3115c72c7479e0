"""The `wait` wake-up (api/wakeups.py) against a real Redis: woken by the worker's message,
still answered when a message is missed, and subscribed again after a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import redis.asyncio as aioredis

from api.wakeups import RECHECK_S, EventWakeups, FinishedWaiters, Wake
from core.keys import Keys
from tests.conftest import RedisServer, free_port, start_redis

KEYS = Keys("waiters-test")


async def finish_later(r: aioredis.Redis, sid: str, publish: bool, after: float) -> None:
    """What the worker's finish transaction does, as far as a waiter can see."""
    await asyncio.sleep(after)
    await r.hset(KEYS.submission(sid), "state", "finished")
    if publish:
        await r.publish(KEYS.finished(), sid)


async def timed_wait(
    waiters: FinishedWaiters, r: aioredis.Redis, sid: str, publish: bool, after: float = 0.2, seconds: float = 30
) -> float:
    """Seconds from the start of the wait to its end, the submission finishing `after` s in."""
    await r.hset(KEYS.submission(sid), "state", "running")
    t0 = time.monotonic()
    async with waiters.until_finished(sid) as wait:
        finisher = asyncio.create_task(finish_later(r, sid, publish, after))
        await wait(seconds)
        await finisher
    return time.monotonic() - t0


async def subscribed(r: aioredis.Redis, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if dict(await r.pubsub_numsub(KEYS.finished())).get(KEYS.finished().encode(), 0) >= 1:
                return True
        except (OSError, aioredis.ConnectionError):
            pass
        await asyncio.sleep(0.1)
    return False


def test_woken_by_message_by_recheck_or_by_the_clock(redis_server: RedisServer) -> None:
    async def go() -> tuple[float, float, float]:
        r = aioredis.Redis.from_url(redis_server.url)
        waiters = FinishedWaiters(r, KEYS)
        waiters.start()
        try:
            assert await subscribed(r, 5)
            woken = await timed_wait(waiters, r, "a", publish=True)
            missed = await timed_wait(waiters, r, "b", publish=False)
            t0 = time.monotonic()
            async with waiters.until_finished("never") as wait:
                await wait(0.5)
            return woken, missed, time.monotonic() - t0
        finally:
            await waiters.stop()
            await r.aclose()

    woken, missed, timed_out = asyncio.run(go())
    assert woken < 0.2 + 0.5  # the message, well before the first re-check
    assert 0.2 < missed < RECHECK_S + 1.0  # no message: the periodic read of the state
    assert 0.5 <= timed_out < 1.5  # never finished: the time is up


def test_subscribed_again_after_a_redis_restart(tmp_path: Path) -> None:
    port = free_port()
    servers = [start_redis(tmp_path, port)]

    async def go() -> tuple[float, float]:
        r = aioredis.Redis.from_url(servers[0].url)
        waiters = FinishedWaiters(r, KEYS)
        waiters.start()
        try:
            assert await subscribed(r, 5)
            servers[0].proc.terminate()
            await asyncio.to_thread(servers[0].proc.wait, 10)
            servers.append(await asyncio.to_thread(start_redis, tmp_path, port))
            with contextlib.suppress(aioredis.ConnectionError):
                await r.ping()  # the first command after the restart meets the closed connection
            # A submission that finished while the channel was down: found by the re-check.
            across = await timed_wait(waiters, r, "c", publish=False)
            assert await subscribed(r, 15), "the listener did not subscribe again"
            woken = await timed_wait(waiters, r, "d", publish=True)
            return across, woken
        finally:
            await waiters.stop()
            await r.aclose()

    try:
        across, woken = asyncio.run(go())
    finally:
        for s in servers:
            s.proc.terminate()
            s.proc.wait(10)
    assert across < RECHECK_S + 1.0
    assert woken < 0.2 + 0.5  # through the new subscription


def test_event_streams_hear_their_own_channel_at_once(redis_server: RedisServer) -> None:
    """EventWakeups subscribes to a submission's channel while someone watches it: a publish
    right after `watch` is entered is heard (no window between subscribing and reading), other
    submissions' messages wake nobody, and many watchers subscribing at once all hear theirs."""

    async def go() -> None:
        r = aioredis.Redis.from_url(redis_server.url)
        wakeups = EventWakeups(r, KEYS)
        wakeups.start()
        try:
            assert await subscribed_to(r, KEYS.events_channel(""), 5)

            async def one(sid: str) -> float:
                async with wakeups.watch(sid) as waiter:
                    t0 = time.monotonic()
                    await r.publish(KEYS.events_channel(sid), sid)
                    assert await waiter.next(5) is Wake.MESSAGE
                    await r.publish(KEYS.events_channel("someone-else"), "x")
                    assert await waiter.next(0.3) is Wake.TIMEOUT
                    return time.monotonic() - t0

            took = await asyncio.gather(*(one(f"s{i}") for i in range(50)))
            assert max(took) < 0.3 + 1.0, took
            assert wakeups.watching == 0
            await asyncio.sleep(0.2)  # the unsubscriptions are processed
            channels = await r.pubsub_channels(f"{KEYS.prefix}:events:s*")
            assert channels == [], channels  # nobody watches: nothing stays subscribed
        finally:
            await wakeups.stop()
            await r.aclose()

    asyncio.run(go())


async def subscribed_to(r: aioredis.Redis, channel: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if dict(await r.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1:
            return True
        await asyncio.sleep(0.05)
    return False
