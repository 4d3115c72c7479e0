"""GET /v1/submissions/{id}/events: a submission's events as Server-Sent Events.

Replayed from the start (or after `Last-Event-ID`): `state`, `test`, then `finished`, after
which the stream ends. A stream holds no Redis connection while it waits: it reads the event
stream with XRANGE (quick, never blocking) and sleeps on the events channel (api/wakeups.py)
until the worker appends more, sending a keep-alive comment every KEEPALIVE_S. Each API
process holds at most CELLBLOCK_MAX_STREAMS streams; one more is a 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError

from api.errors import TooMany, invalid, not_found
from api.state import CONFIG, EVENTS, KEYS, REDIS
from api.wakeups import EventWakeups, Waiter, Wake

# A reader that heard nothing looks again this often, and sends a keep-alive comment.
KEEPALIVE_S = 10.0
KEEPALIVE_JITTER = 0.2  # each wait is KEEPALIVE_S, give or take this share
_EVENT_ID = re.compile(r"\d{1,20}-\d{1,20}")
BATCH = 100
U64 = (1 << 64) - 1


def _after(request: web.Request) -> str:
    """The stream id to replay after: Last-Event-ID (a Redis stream id), else the start."""
    last = request.headers.get("Last-Event-ID")
    if last is None:
        return "0-0"
    last = last.strip()
    # Redis's ids are two unsigned 64-bit numbers; the very last one has nothing after it.
    if not _EVENT_ID.fullmatch(last) or not (0, 0) <= _id(last.encode()) < (U64, U64):
        raise invalid("Last-Event-ID", "must be the id of an event of this stream (e.g. 1700000000000-0)")
    return last


def _id(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq)


async def submission_events(request: web.Request) -> web.StreamResponse:
    """GET /v1/submissions/{id}/events (the auth middleware has checked the id is this key's)."""
    sid = request.match_info["id"]
    r, keys = request.app[REDIS], request.app[KEYS]
    last = _after(request)
    if not await r.exists(keys.submission(sid)):
        raise not_found()
    most = request.app[CONFIG].max_streams
    if request.app[EVENTS].watching >= most:
        raise TooMany(f"{most} event streams open on this API process; retry later", 5, 503, "overloaded")
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    async with request.app[EVENTS].watch(sid) as waiter:  # before the first read: nothing is missed
        try:
            await resp.prepare(request)
            await _relay(r, keys.events(sid), last, resp, request.app[EVENTS], waiter)
            await resp.write_eof()
        except (ConnectionResetError, ClientConnectionResetError):
            pass  # the client went away: nothing to answer, nothing to log
    return resp


# Redis clients below are typed Any: redis-py types a stream reply as unions of str, bytes and
# None, and this client always answers bytes.
async def _relay(
    r: Any, stream: str, last: str, resp: web.StreamResponse, wakeups: EventWakeups, waiter: Waiter
) -> None:
    """Write the events after `last` as they come, until `finished` (or the stream is gone)."""
    while True:
        entries, newest = await _read(r, stream, last, wakeups.generation)
        frames = []  # one write for what one read brought: a wake-up of many streams costs less
        for entry_id, fields in entries:
            last = entry_id.decode()
            kind = fields[b"event"].decode()
            frames.append(f"id: {last}\nevent: {kind}\ndata: {fields[b'data'].decode()}\n\n".encode())
            if kind == "finished":
                await resp.write(b"".join(frames))
                return
        if frames:
            await resp.write(b"".join(frames))
        if len(entries) == BATCH:
            continue
        if not entries and _past_the_end(newest, last):
            return  # resumed at or after `finished`, or the stream expired
        # Each stream's own period: streams opened together do not all wake together.
        if await waiter.next(KEEPALIVE_S * random.uniform(1 - KEEPALIVE_JITTER, 1 + KEEPALIVE_JITTER)) is Wake.TIMEOUT:
            await resp.write(b": keep-alive\n\n")


# Reads in flight, by (stream, position): streams at the same place share one XRANGE, so a
# wake-up of many readers of one submission costs Redis one read, not one per reader.
_reading: dict[tuple[str, str, int], asyncio.Task[Any]] = {}


async def _read(r: Any, stream: str, last: str, generation: int) -> Any:
    """The next BATCH entries of `stream` after `last`, and its newest entry (a list of none or
    one), in one round trip, read after wake-up number `generation` (EventWakeups.generation):
    a read begun before a wake-up may miss what it announced, so only readers that come after
    the same one share a read."""
    key = (stream, last, generation)
    task = _reading.get(key)
    if task is None:
        task = _reading[key] = asyncio.create_task(_read_now(r, stream, last))
        task.add_done_callback(lambda _: _reading.pop(key, None))
    return await asyncio.shield(task)


async def _read_now(r: Any, stream: str, last: str) -> Any:
    async with r.pipeline(transaction=False) as pipe:
        pipe.xrange(stream, min=f"({last}", count=BATCH)
        pipe.xrevrange(stream, count=1)
        return await pipe.execute()


def _past_the_end(newest: Any, last: str) -> bool:
    """Whether nothing more will come after `last`: the stream is gone (expired: no newest
    entry), or its newest event is `finished` and `last` is at or after it."""
    if not newest:
        return True
    entry_id, fields = newest[0]
    return bool(fields[b"event"] == b"finished" and _id(last.encode()) >= _id(entry_id))
