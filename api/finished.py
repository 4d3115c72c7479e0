"""Wake `wait` requests when their submission finishes: one Pub/Sub subscription per API process.

The worker publishes a finished submission's id on `Keys.finished()` in the same transaction
that stores the result. Each API process holds one subscription and a table of waiters
(id -> futures), so a waiting request costs no Redis connection and one wake-up, however
many events its submission goes through.

Pub/Sub only wakes; the result itself is in the submission hash. A message can be missed
(the subscription reconnecting after a Redis restart), so a waiter also reads the state
every RECHECK_S seconds and believes the hash, never the message alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.exceptions

from worker.keys import Keys
from worker.models import State

log = logging.getLogger("cellblock.api")

# A waiter reads the submission's state this often in case its wake-up was lost.
RECHECK_S = 2.0
# After the subscription fails, wait this long before subscribing again.
RESUBSCRIBE_S = 0.5
# One read on the subscription waits at most this long (below the client's socket timeout).
LISTEN_TIMEOUT_S = 10.0


class FinishedWaiters:
    """Futures of requests waiting for submissions, resolved by the `finished` channel."""

    def __init__(self, r: Any, keys: Keys) -> None:
        self._redis = r
        self._keys = keys
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, sid: str, seconds: float) -> None:
        """Return when `sid` is finished or `seconds` have passed (the caller reads the hash)."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + seconds
        while True:
            # Registered before the state is read, so a wake-up in between is not lost.
            future: asyncio.Future[None] = loop.create_future()
            waiting = self._waiters.setdefault(sid, set())
            waiting.add(future)
            try:
                left = deadline - time.monotonic()
                if left <= 0 or await self._finished(sid):
                    return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(future, min(left, RECHECK_S))
            finally:
                waiting.discard(future)
                if not waiting:
                    self._waiters.pop(sid, None)

    async def _finished(self, sid: str) -> bool:
        state = await self._redis.hget(self._keys.submission(sid), "state")
        return state is None or state.decode() == State.FINISHED

    def _wake(self, sid: str) -> None:
        for future in self._waiters.get(sid, ()):
            if not future.done():
                future.set_result(None)

    async def _listen_forever(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._keys.finished())
                    # Whatever finished while unsubscribed: let every waiter look again.
                    for sid in list(self._waiters):
                        self._wake(sid)
                    while True:
                        message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                        if message is not None and message["type"] == "message":
                            self._wake(message["data"].decode())
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                log.warning("finished channel: %s; subscribing again in %.1fs", exc, RESUBSCRIBE_S)
                await asyncio.sleep(RESUBSCRIBE_S)
