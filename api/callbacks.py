"""Deliver callbacks (callback_url) when submissions finish: signed, to vetted addresses only, with retries.

The worker appends finished submissions that asked for a callback to one Redis stream;
every API process reads it through one consumer group, so each callback is delivered by
one process. An entry is acknowledged after a 2xx, after the last attempt, or when its
destination is refused; entries a dead API process had claimed are taken over after
CLAIM_IDLE_MS (XAUTOCLAIM).

A submission made through the Judge0 layer is delivered as Judge0 does it: PUT, with its 8
default fields, base64-encoded (api/judge0/render.py).

Every delivery is signed the Standard Webhooks way: `webhook-id` is the submission id (the same on
every retry, so a receiver can drop a duplicate), `webhook-timestamp` the attempt's time, and
`webhook-signature` an HMAC-SHA256 with the secret of the API key that submitted, or the
deployment's for submissions made without keys (core/apikeys.py).

Where it goes is checked at every attempt (core/destinations.py has the rule): the host is
resolved, every address it resolves to must be allowed, and the connection is pinned to those
addresses (PinnedResolver), so a DNS answer that changes between the check and the connect
(rebinding) cannot send it elsewhere. A refused destination is given up at once; a redirect is
never followed (it would lead past the check): a 3xx is a failed attempt, like a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from redis.exceptions import ResponseError
from standardwebhooks import Webhook
from yarl import URL

from api.judge0 import render as judge0_render
from api.judge0.requests import DEFAULT_FIELDS
from core import apikeys, destinations, store, views
from core.keys import Keys
from core.settings import Config

log = logging.getLogger("cellblock.callbacks")

CLAIM_IDLE_MS = 120_000
# Deliveries one API process runs at once (each a session, a lookup, up to the attempts' time).
MAX_DELIVERIES = 64
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class Refused(Exception):
    """The callback's host is, or resolves to, an address the rule refuses."""


class PinnedResolver(AbstractResolver):
    """Answers for the one host it was made for, with the addresses checked for it: the connector
    connects to what was vetted, without a second lookup. Any other name is an error."""

    def __init__(self, host: str, addresses: list[ResolveResult]) -> None:
        self.host = host
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        # aiohttp turns a name's trailing dots into one: the same name, the same vetted addresses
        if host.rstrip(".") != self.host.rstrip("."):
            raise OSError(f"{host} was not vetted (only {self.host})")
        return [a for a in self.addresses if family in (socket.AF_UNSPEC, a["family"])]

    async def close(self) -> None:
        return None


async def vet(host: str, port: int, allow: Sequence[destinations.Network]) -> list[ResolveResult]:
    """Every address `host` resolves to, when each of them may receive a callback; Refused when
    one may not (ANY: a connection may use any of them). OSError when the lookup fails."""
    found = await ThreadedResolver().resolve(host, port, family=socket.AF_UNSPEC)
    for a in found:
        why = destinations.refusal(a["host"], allow)
        if why is not None:
            raise Refused(f"{host} resolves to {a['host']}, not a public address ({why})")
    if not found:
        raise OSError(f"{host}: no address")
    return found


async def _signing_secret(r: Any, keys: Keys, sid: str) -> str:
    """The secret of the API key that made submission `sid` (the owner record written at
    submit), or the deployment's when it was made without one."""
    owner = await r.get(keys.owner(sid))
    async with r.pipeline(transaction=True) as pipe:
        apikeys.stage_webhook_secret(pipe, keys, None if owner is None else store.text(owner))
        replies = await pipe.execute()
    return store.text(replies[-1])


def _signed_headers(signer: Webhook, sid: str, data: bytes) -> dict[str, str]:
    now = datetime.now(tz=UTC)  # per attempt: receivers refuse a timestamp older than minutes
    return {
        "Content-Type": "application/json",
        "webhook-id": sid,
        "webhook-timestamp": str(int(now.timestamp())),
        # json.dumps writes ASCII: the text signed is exactly the bytes sent
        "webhook-signature": signer.sign(sid, now, data.decode()),
    }


async def _send(method: str, url: URL, data: bytes, headers: dict[str, str], addresses: list[ResolveResult]) -> int:
    """One request to `url`, connected to `addresses` only, never following a redirect: its status."""
    # A session of its own: its connector knows only these addresses, and keeps no connection
    # that a later delivery, vetted for another host, could reuse.
    connector = aiohttp.TCPConnector(resolver=PinnedResolver(url.raw_host or "", addresses), use_dns_cache=False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(method, url, data=data, headers=headers, allow_redirects=False) as resp,
    ):
        return resp.status


async def _ensure_group(r: aioredis.Redis, keys: Keys) -> None:
    try:
        await r.xgroup_create(keys.callbacks(), keys.callback_group(), id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def _payload(r: Any, keys: Keys, sid: str) -> tuple[str, dict[str, Any]] | None:
    """The method and body of submission `sid`'s callback, by the API it came through."""
    fields = await r.hgetall(keys.submission(sid))
    if not fields or b"spec" not in fields:
        return None
    if json.loads(fields[b"spec"]).get("compat", {}).get("api") == "judge0":
        return "PUT", judge0_render.render(views.stored(fields), DEFAULT_FIELDS, encoded=True)
    return "POST", views.submission_view(fields)


async def deliver_one(r: Any, keys: Keys, cfg: Config, sid: str, url: str) -> bool:
    """Send the submission's result to `url`, signed, retrying; True when the receiver took it (2xx)."""
    payload = await _payload(r, keys, sid)
    if payload is None:
        return False
    method, body = payload
    data = json.dumps(body).encode()  # the bytes signed are the bytes sent
    signer = Webhook(await _signing_secret(r, keys, sid))
    target = URL(url)
    for attempt in range(cfg.callback_attempts):
        try:
            async with asyncio.timeout(cfg.callback_timeout):  # the lookup, the connect and the reply
                addresses = await vet(target.raw_host or "", target.port or 0, cfg.callback_networks)
                status = await _send(method, target, data, _signed_headers(signer, sid, data), addresses)
            if 200 <= status < 300:
                log.info("callback %s -> %s delivered (attempt %d)", sid, url, attempt + 1)
                return True
            redirect = " (a redirect: not followed)" if 300 <= status < 400 else ""
            log.warning("callback %s -> %s: HTTP %d%s (attempt %d)", sid, url, status, redirect, attempt + 1)
        except Refused as exc:
            log.error("callback %s -> %s refused: %s; not delivered (CELLBLOCK_CALLBACK_ALLOW)", sid, url, exc)
            return False
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("callback %s -> %s: %s (attempt %d)", sid, url, exc, attempt + 1)
        if attempt + 1 < cfg.callback_attempts:
            await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    log.error("callback %s -> %s: gave up after %d attempts", sid, url, cfg.callback_attempts)
    return False


async def _handle(r: Any, keys: Keys, cfg: Config, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
    try:
        await deliver_one(r, keys, cfg, fields[b"id"].decode(), fields[b"url"].decode())
    finally:
        await r.xack(keys.callbacks(), keys.callback_group(), entry_id)


async def deliver_forever(r: Any, keys: Keys, cfg: Config) -> None:
    """Consume the callbacks stream until cancelled; each delivery runs as its own task."""
    consumer = f"{socket.gethostname()}:{os.getpid()}"
    tasks: set[asyncio.Task[None]] = set()
    while True:
        try:
            if len(tasks) >= MAX_DELIVERIES:  # slow receivers: leave the rest in the stream for now
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            room = min(50, MAX_DELIVERIES - len(tasks))
            await _ensure_group(r, keys)
            _next, claimed, *_ = await r.xautoclaim(
                keys.callbacks(),
                keys.callback_group(),
                consumer,
                min_idle_time=CLAIM_IDLE_MS,
                start_id="0-0",
                count=room,
            )
            batches = [(keys.callbacks(), claimed)] if claimed else []
            batches += (
                await r.xreadgroup(keys.callback_group(), consumer, {keys.callbacks(): ">"}, count=room, block=5000)
                or []
            )
            for _stream, entries in batches:
                for entry_id, fields in entries:
                    if not fields:
                        continue
                    task = asyncio.create_task(_handle(r, keys, cfg, entry_id, fields))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        except asyncio.CancelledError:
            for t in tasks:
                t.cancel()
            raise
        except Exception as exc:  # Redis away: log, wait, go on (never kill the API)
            log.warning("callback loop: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(1.0)
