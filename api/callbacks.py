"""Deliver callback_url POSTs when submissions finish, with retries.

The worker appends finished submissions that asked for a callback to one Redis stream;
every API process reads it through one consumer group, so each callback is delivered by
one process. An entry is acknowledged after a 2xx or after the last attempt; entries a
dead API process had claimed are taken over after CLAIM_IDLE_MS (XAUTOCLAIM).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.keys import Keys
from core.settings import Config
from core.views import read_view

log = logging.getLogger("cellblock.callbacks")

CLAIM_IDLE_MS = 120_000
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


async def _ensure_group(r: aioredis.Redis, keys: Keys) -> None:
    try:
        await r.xgroup_create(keys.callbacks(), keys.callback_group(), id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def deliver_one(session: aiohttp.ClientSession, r: Any, keys: Keys, cfg: Config, sid: str, url: str) -> bool:
    """POST the submission's result to `url`, retrying; True when the receiver took it (2xx)."""
    body = await read_view(r, keys, sid)
    if body is None:
        return False
    for attempt in range(cfg.callback_attempts):
        try:
            async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=cfg.callback_timeout)) as resp:
                if 200 <= resp.status < 300:
                    log.info("callback %s -> %s delivered (attempt %d)", sid, url, attempt + 1)
                    return True
                log.warning("callback %s -> %s: HTTP %d (attempt %d)", sid, url, resp.status, attempt + 1)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("callback %s -> %s: %s (attempt %d)", sid, url, exc, attempt + 1)
        if attempt + 1 < cfg.callback_attempts:
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    log.error("callback %s -> %s: gave up after %d attempts", sid, url, cfg.callback_attempts)
    return False


async def _handle(
    session: aiohttp.ClientSession, r: Any, keys: Keys, cfg: Config, entry_id: bytes, fields: dict[bytes, bytes]
) -> None:
    try:
        await deliver_one(session, r, keys, cfg, fields[b"id"].decode(), fields[b"url"].decode())
    finally:
        await r.xack(keys.callbacks(), keys.callback_group(), entry_id)


async def deliver_forever(r: Any, keys: Keys, cfg: Config) -> None:
    """Consume the callbacks stream until cancelled; each delivery runs as its own task."""
    consumer = f"{socket.gethostname()}:{os.getpid()}"
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                await _ensure_group(r, keys)
                _next, claimed, *_ = await r.xautoclaim(
                    keys.callbacks(),
                    keys.callback_group(),
                    consumer,
                    min_idle_time=CLAIM_IDLE_MS,
                    start_id="0-0",
                    count=50,
                )
                batches = [(keys.callbacks(), claimed)] if claimed else []
                batches += (
                    await r.xreadgroup(keys.callback_group(), consumer, {keys.callbacks(): ">"}, count=50, block=5000)
                    or []
                )
                for _stream, entries in batches:
                    for entry_id, fields in entries:
                        if not fields:
                            continue
                        task = asyncio.create_task(_handle(session, r, keys, cfg, entry_id, fields))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
            except asyncio.CancelledError:
                for t in tasks:
                    t.cancel()
                raise
            except Exception as exc:  # Redis away: log, wait, go on (never kill the API)
                log.warning("callback loop: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(1.0)
