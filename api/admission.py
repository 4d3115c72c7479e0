"""Admitting submissions before they are queued: Idempotency-Key, queue backpressure and the
key's in-flight quota, each held across API processes by Redis (the quota in one Lua script).

`admit` reserves; `undo` releases what it reserved when queueing fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from aiohttp import web

from api.errors import ApiError, TooMany, invalid
from api.state import CONFIG, IDEMPOTENCY, KEYS, PRINCIPAL, QUEUE_DEPTH, REDIS
from api.validation import Accepted
from core import store
from core.apikeys import Principal
from core.keys import Keys

# How long an in-flight entry may outlive its job timeout before the quota forgets it.
IN_FLIGHT_SLACK = 60

# In-flight quota: KEYS[1] the key's zset of unfinished submission ids (score: when to
# forget them). ARGV: max, submission key prefix, forget-at, ids... Entries whose submission
# is finished or past their score are dropped first; then all ids are admitted or none.
# Returns -1 when admitted, else the number in flight.
_IN_FLIGHT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, sid in ipairs(members) do
  if redis.call('HGET', ARGV[2] .. sid, 'state') == 'finished' then
    redis.call('ZREM', KEYS[1], sid)
  end
end
local n = redis.call('ZCARD', KEYS[1])
local want = #ARGV - 3
if n + want > tonumber(ARGV[1]) then
  return n
end
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[i])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) + 60)
return -1
"""


# A key found at its in-flight quota is refused again without asking Redis for this long (per
# API process), and that refusal is answered only after this long: a client that ignores
# Retry-After then costs a dict lookup per request, not a body to parse and a script to run,
# and a closed loop of them sends ten requests a second per connection, not thousands. The
# quota is soft by as much.
FULL_RECHECK_S = 0.1
_full_until: dict[str, float] = {}  # key id -> until when it is known to be at its quota


async def refuse_early(request: web.Request) -> None:
    """Before the body is read: a 429 for a key known to be at its in-flight quota."""
    p = request[PRINCIPAL]
    if p is not None and _full_until.get(p.id, 0.0) > time.monotonic():
        await asyncio.sleep(FULL_RECHECK_S)
        raise _too_many_in_flight(p, p.max_in_flight)


def _too_many_in_flight(p: Principal, n: int) -> TooMany:
    return TooMany(f"{n} submissions in flight for this key, at most {p.max_in_flight}", 1, code="too_many_in_flight")


async def _admit_in_flight(r: Any, keys: Keys, p: Principal, sids: list[str], forget_after: int) -> None:
    if p.max_in_flight <= 0:
        return
    if len(sids) > p.max_in_flight:  # could never be admitted: not a matter of waiting
        raise invalid(
            "submissions", f"{len(sids)} submissions at once, this key's quota is {p.max_in_flight} in flight"
        )
    n = int(
        await r.eval(
            _IN_FLIGHT_LUA, 1, keys.in_flight(p.id), str(p.max_in_flight), keys.submission(""), str(forget_after), *sids
        )
    )
    if n >= 0:
        if n >= p.max_in_flight:  # full, not only too small for this batch
            _full_until[p.id] = time.monotonic() + FULL_RECHECK_S
        raise _too_many_in_flight(p, n)


def _idem_digest(value: str) -> str:
    if not value or len(value) > 255:
        raise invalid("Idempotency-Key", "must be 1 to 255 characters")
    # Header text is the bytes as sent (aiohttp keeps bytes that are not UTF-8 as surrogates).
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


def _record(stored: bytes | str) -> dict[str, Any]:
    """An Idempotency-Key record. One written before records held a fingerprint was the ids
    joined by commas: it stands for the request it was made for (kept until its TTL)."""
    text = store.text(stored)
    if text.startswith("{"):
        record: dict[str, Any] = json.loads(text)
        return record
    return {"request": None, "ids": text.split(",")}


async def admit(request: web.Request, accepted: list[Accepted]) -> list[str] | None:
    """Everything before queueing: Idempotency-Key, queue backpressure, the in-flight quota (the
    owner record is written with the submission, in core.queue.submit). Returns the ids an
    earlier identical request with the same Idempotency-Key created (nothing reserved then),
    else None. After None, call `undo` if queueing fails."""
    cfg, keys, r = request.app[CONFIG], request.app[KEYS], request.app[REDIS]
    p = request[PRINCIPAL]
    sids = [a.submission.id for a in accepted]
    idem = request.headers.get("Idempotency-Key")
    if idem is not None:
        idem_key = keys.idempotency(p.id if p else "anonymous", _idem_digest(idem))
        # The key stands for one request: this endpoint with this body (IETF draft
        # "The Idempotency-Key HTTP Header Field": another request under it is a 422).
        fingerprint = hashlib.sha256(request.path.encode() + b"\0" + await request.read()).hexdigest()
        record = json.dumps({"request": fingerprint, "ids": sids})
        if not await r.set(idem_key, record, nx=True, ex=cfg.submission_ttl):
            existing = await r.get(idem_key)
            if existing is not None:
                earlier = _record(existing)
                if earlier["request"] not in (fingerprint, None):
                    raise ApiError(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was sent with another request (endpoint or body); use a new key",
                        "Idempotency-Key",
                    )
                return list(earlier["ids"])
            await r.set(idem_key, record, ex=cfg.submission_ttl)
        request[IDEMPOTENCY] = idem_key
    try:
        await request.app[QUEUE_DEPTH].admit(r, cfg, len(accepted))
        if p is not None:
            forget = max(a.job_timeout for a in accepted) * (cfg.job_retries + 1) + IN_FLIGHT_SLACK
            await _admit_in_flight(r, keys, p, sids, forget)
    except BaseException:
        await undo(request, accepted)
        raise
    return None


async def undo(request: web.Request, accepted: list[Accepted]) -> None:
    """Release what `admit` reserved (queueing failed)."""
    r, keys = request.app[REDIS], request.app[KEYS]
    try:
        if IDEMPOTENCY in request:
            await r.delete(request[IDEMPOTENCY])
        p = request[PRINCIPAL]
        if p is not None and p.max_in_flight > 0:
            await r.zrem(keys.in_flight(p.id), *[a.submission.id for a in accepted])
    except Exception:  # Redis away: the entries expire on their own
        pass
