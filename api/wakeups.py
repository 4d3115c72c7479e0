"""Wake requests that wait on a submission: one Pub/Sub subscription per channel per API process.

The worker publishes a submission's id on `Keys.finished()` in the transaction that stores
its result (a broadcast: every API process hears every finish), and on the submission's own
`Keys.events_channel(sid)` in every transaction that appends to its event stream (heard only
where someone reads that stream). An API process holds one Pub/Sub connection per kind and a
table of waiters (id -> futures), so a `wait` request or an SSE stream holds no Redis
connection while it waits, however many of them there are: it reads Redis (briefly) only
when woken.

Pub/Sub only wakes; what happened is in Redis. A message can be missed (the subscription
reconnecting after a Redis restart), so every waiter is woken after a resubscription, and
waiters also look again on a clock of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.exceptions

from core.keys import Keys
from core.models import State

log = logging.getLogger("cellblock.api")

# A `wait` reads the submission's state this often in case its wake-up was lost.
RECHECK_S = 2.0
# After the subscription fails, wait this long before subscribing again, doubling up to
# RESUBSCRIBE_MAX_S while Redis stays away.
RESUBSCRIBE_S = 0.5
RESUBSCRIBE_MAX_S = 8.0
# One read on the subscription waits at most this long (below the client's socket timeout).
LISTEN_TIMEOUT_S = 10.0
# Waiters of one submission woken per turn of the event loop (see _release).
WAKE_CHUNK = 16
# A new per-submission subscription waits at most this long for Redis to confirm it.
SUBSCRIBE_WAIT_S = 2.0


class Wake(enum.Enum):
    """Why a waiter's `next` returned."""

    MESSAGE = "message"  # its submission's own message
    RESUBSCRIBED = "resubscribed"  # the channel was down for a while: look again
    TIMEOUT = "timeout"


class Waiter:
    """One request's wake-ups for one submission; a wake-up that comes between two `next`
    calls is kept, so none is missed while the request reads or writes."""

    def __init__(self, pending: set[asyncio.Future[Wake]]) -> None:
        self._pending = pending
        self._future = self._arm()

    def _arm(self) -> asyncio.Future[Wake]:
        future: asyncio.Future[Wake] = asyncio.get_running_loop().create_future()
        self._pending.add(future)
        return future

    async def next(self, within: float) -> Wake:
        """The next wake-up, or TIMEOUT after `within` seconds."""
        try:
            reason = await asyncio.wait_for(asyncio.shield(self._future), within)
        except TimeoutError:
            return Wake.TIMEOUT
        self._pending.discard(self._future)
        self._future = self._arm()
        return reason

    def close(self) -> None:
        self._pending.discard(self._future)
        self._future.cancel()


def _release(futures: list[asyncio.Future[Wake]], reason: Wake) -> None:
    """Wake `futures`, WAKE_CHUNK at a time, each chunk after what is ready to run by then: five
    hundred readers of one submission woken at once would otherwise all run before any other
    request that is ready (asyncio runs ready callbacks in order), and delay it by all of them."""
    for future in futures[:WAKE_CHUNK]:
        if not future.done():
            future.set_result(reason)
    if len(futures) > WAKE_CHUNK:
        asyncio.get_running_loop().call_soon(_release, futures[WAKE_CHUNK:], reason)


class Wakeups:
    """The waiters of one broadcast channel, whose messages are submission ids."""

    def __init__(self, r: Any, channel: str) -> None:
        self._redis = r
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Future[Wake]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.watching = 0  # requests inside `watch` now

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def watch(self, sid: str) -> AsyncIterator[Waiter]:
        """Listen for `sid` from now on. Enter it before reading what the wake-ups announce
        (or before the job is queued) and none can be missed, however fast the worker."""
        pending = self._waiters.get(sid)
        first = pending is None
        if pending is None:
            pending = self._waiters[sid] = set()
        waiter = Waiter(pending)
        self.watching += 1
        try:
            await self._listen_to(sid, first)
            yield waiter
        finally:
            self.watching -= 1
            waiter.close()
            if not pending and self._waiters.get(sid) is pending:
                del self._waiters[sid]
                await self._stop_listening_to(sid)

    async def _listen_to(self, sid: str, first: bool) -> None:
        """Hook: hear `sid`'s messages from now on (`first`: nobody else watches it); a
        broadcast channel hears them all already."""

    async def _stop_listening_to(self, sid: str) -> None:
        """Hook: the last waiter of `sid` has left."""

    def _channels(self) -> list[str]:
        """What a new subscription subscribes to."""
        return [self._channel]

    def _sid(self, channel: bytes, data: bytes) -> str:
        """The submission a message is about."""
        return data.decode()

    def _subscribed(self, channel: bytes) -> None:
        """Hook: Redis confirmed a subscription to `channel`."""

    def _connected(self) -> None:
        """Hook: a new subscription is live (the last one, if any, is gone)."""

    def _wake(self, sid: str, reason: Wake) -> None:
        _release(list(self._waiters.get(sid, ())), reason)

    async def _listen_forever(self) -> None:
        pause = RESUBSCRIBE_S
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    # Live before the channels are listed: a watcher that comes while they are
                    # subscribed subscribes its own (twice at worst, which Redis takes), and
                    # none falls between the list and the subscription.
                    self._pubsub = pubsub
                    self._connected()
                    await pubsub.subscribe(*self._channels())
                    pause = RESUBSCRIBE_S
                    # Whatever happened while unsubscribed: let every waiter look again.
                    for sid in list(self._waiters):
                        self._wake(sid, Wake.RESUBSCRIBED)
                    while True:
                        message = await pubsub.get_message(timeout=LISTEN_TIMEOUT_S)
                        if message is None:
                            continue
                        if message["type"] == "message":
                            self._wake(self._sid(message["channel"], message["data"]), Wake.MESSAGE)
                        elif message["type"] == "subscribe":
                            self._subscribed(message["channel"])
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("channel %s: %s; subscribing again in %.1fs", self._channel, exc, pause)
            except Exception:  # the listener must outlive any surprise; waiters re-check meanwhile
                log.exception("channel %s failed; subscribing again in %.1fs", self._channel, pause)
            finally:
                self._pubsub = None
            await asyncio.sleep(pause)
            pause = min(RESUBSCRIBE_MAX_S, 2 * pause)

    _pubsub: Any = None  # the live subscription, while there is one


class EventWakeups(Wakeups):
    """Event streams (SSE): one channel per submission (`Keys.events_channel(sid)`), subscribed
    while someone reads that submission's events. The worker publishes on it whenever it appends
    events; with nobody subscribed that costs Redis a lookup and no API process anything (a
    broadcast channel cost every API process a message per event of every submission)."""

    def __init__(self, r: Any, keys: Keys) -> None:
        # The base channel is never published on: it keeps the subscription open while no
        # stream is.
        super().__init__(r, keys.events_channel(""))
        self._keys = keys
        self._confirmed: dict[bytes, asyncio.Event] = {}
        # Counts wake-ups and confirmations: a read started at an older count may have missed
        # what the newer one announced (api/streams.py shares reads of one count only).
        self.generation = 0

    def _channels(self) -> list[str]:
        return [self._channel, *(self._keys.events_channel(sid) for sid in self._waiters)]

    def _sid(self, channel: bytes, data: bytes) -> str:
        return channel.decode().removeprefix(self._channel)

    def _subscribed(self, channel: bytes) -> None:
        self.generation += 1  # nothing the channel carries from here on can have been read
        confirmed = self._confirmed.pop(channel, None)
        if confirmed is not None:
            confirmed.set()

    def _connected(self) -> None:
        # Subscriptions asked of the connection that failed will never be confirmed: release
        # their waiters (each reads on its own clock), and let the next watcher ask again.
        for confirmed in self._confirmed.values():
            confirmed.set()
        self._confirmed.clear()

    def _wake(self, sid: str, reason: Wake) -> None:
        self.generation += 1
        super()._wake(sid, reason)

    async def _listen_to(self, sid: str, first: bool) -> None:
        """The first watcher subscribes to `sid`'s channel; every watcher waits (at most
        SUBSCRIBE_WAIT_S) until Redis has confirmed it, so that what it reads next cannot miss a
        wake-up. Without a live subscription, the listener subscribes to every watched channel
        when it connects, and wakes everyone."""
        channel = self._keys.events_channel(sid)
        confirmed = self._confirmed.get(channel.encode())
        pubsub = self._pubsub
        try:
            if confirmed is None and first and pubsub is not None:
                confirmed = self._confirmed[channel.encode()] = asyncio.Event()
                await pubsub.subscribe(channel)
            if confirmed is not None:
                await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_WAIT_S)
        except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
            # The next first watcher asks again (a later confirmation of this one is harmless).
            self._confirmed.pop(channel.encode(), None)
            log.warning("subscribing to %s: %s; the stream looks again on its own clock", channel, exc)

    async def _stop_listening_to(self, sid: str) -> None:
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await pubsub.unsubscribe(self._keys.events_channel(sid))


class FinishedWaiters(Wakeups):
    """`wait` requests: woken by the `finished` channel."""

    def __init__(self, r: Any, keys: Keys) -> None:
        super().__init__(r, keys.finished())
        self._keys = keys

    @contextlib.asynccontextmanager
    async def until_finished(self, sid: str) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
        """Yields `wait(seconds)`, which returns when `sid` is finished or the time is up (the
        caller then reads the hash). Enter it before the submission is queued."""
        async with self.watch(sid) as waiter:

            async def wait(seconds: float) -> None:
                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    if await waiter.next(min(left, RECHECK_S)) is Wake.MESSAGE or await self._finished(sid):
                        return

            yield wait

    async def _finished(self, sid: str) -> bool:
        """Whether `sid` is finished (or gone). Redis away counts as "not yet": the request
        keeps waiting through a restart, and the caller's own read reports an outage."""
        try:
            state = await self._redis.hget(self._keys.submission(sid), "state")
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False
        return state is None or state.decode() == State.FINISHED
