"""Wake `wait` requests when their submission finishes: one Pub/Sub subscription per API process.

The worker publishes a finished submission's id on `Keys.finished()` in the same transaction
that stores the result. Each API process holds one subscription and a table of waiters
(id -> futures), so a waiting request costs no Redis connection and one wake-up, however
many events its submission goes through.

Pub/Sub only wakes; the result itself is in the submission hash. A message can be missed
(the subscription reconnecting after a Redis restart), so a waiter that heard nothing reads
the state every RECHECK_S seconds, and after a resubscription every waiter reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.exceptions

from core.keys import Keys
from core.models import State

log = logging.getLogger("cellblock.api")

# A waiter reads the submission's state this often in case its wake-up was lost.
RECHECK_S = 2.0
# After the subscription fails, wait this long before subscribing again, doubling up to
# RESUBSCRIBE_MAX_S while Redis stays away.
RESUBSCRIBE_S = 0.5
RESUBSCRIBE_MAX_S = 8.0
# One read on the subscription waits at most this long (below the client's socket timeout).
LISTEN_TIMEOUT_S = 10.0


class FinishedWaiters:
    """Requests waiting for submissions, woken by the `finished` channel."""

    def __init__(self, r: Any, keys: Keys) -> None:
        self._redis = r
        self._keys = keys
        # id -> the futures of its waiters; a future's result says whether the wake-up was
        # the submission's own message (True) or a resubscription (False: look again).
        self._waiters: dict[str, set[asyncio.Future[bool]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def watch(self, sid: str) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
        """Listen for `sid` from now on; yields `wait(seconds)`, which returns when `sid` is
        finished or the time is up (the caller then reads the hash). Enter it before the
        submission is queued and no wake-up can be missed, however fast the job."""
        loop = asyncio.get_running_loop()
        waiting = self._waiters.setdefault(sid, set())
        future: asyncio.Future[bool] = loop.create_future()
        waiting.add(future)

        async def wait(seconds: float) -> None:
            nonlocal future
            deadline = time.monotonic() + seconds
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    if await asyncio.wait_for(asyncio.shield(future), min(left, RECHECK_S)):
                        return
                if await self._finished(sid):
                    return
                if future.done():  # a resubscription: listen again
                    waiting.discard(future)
                    future = loop.create_future()
                    waiting.add(future)

        try:
            yield wait
        finally:
            waiting.discard(future)
            future.cancel()
            if not waiting and self._waiters.get(sid) is waiting:
                del self._waiters[sid]

    async def _finished(self, sid: str) -> bool:
        """Whether `sid` is finished (or gone). Redis away counts as "not yet": the request
        keeps waiting through a restart, and the caller's own read reports an outage."""
        try:
            state = await self._redis.hget(self._keys.submission(sid), "state")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False
        return state is None or state.decode() == State.FINISHED

    def _wake(self, sid: str, finished: bool) -> None:
        for future in self._waiters.get(sid, ()):
            if not future.done():
                future.set_result(finished)

    async def _listen_forever(self) -> None:
        pause = RESUBSCRIBE_S
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._keys.finished())
                    pause = RESUBSCRIBE_S
                    # Whatever finished while unsubscribed: let every waiter look again.
                    for sid in list(self._waiters):
                        self._wake(sid, finished=False)
                    while True:
                        message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                        if message is not None and message["type"] == "message":
                            self._wake(message["data"].decode(), finished=True)
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("finished channel: %s; subscribing again in %.1fs", exc, pause)
            except Exception:  # the listener must outlive any surprise; waiters re-check meanwhile
                log.exception("finished channel failed; subscribing again in %.1fs", pause)
            await asyncio.sleep(pause)
            pause = min(RESUBSCRIBE_MAX_S, 2 * pause)
