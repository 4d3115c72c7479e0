"""Access control and fairness: API keys, per-key rate limits and in-flight quotas,
queue backpressure, submission ownership and idempotent POSTs.

Keys live in Redis hashed (sha256 of the token); `cellblock keys` (cli/keys.py) manages
them. Every check that must hold across API processes runs in Redis atomically (Lua).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from api.errors import ApiError, TooMany, invalid
from api.state import CONFIG, KEYS, LANGUAGES, QUEUE_DEPTH, REDIS
from jail.spec import Limits
from worker.config import Config
from worker.keys import Keys

PRINCIPAL = "cellblock.principal"
# How long an in-flight entry may outlive its job timeout before the quota forgets it.
IN_FLIGHT_SLACK = 60

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# The limits a key may have a ceiling for: every limit a submission may set.
LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(Limits))
SIZE_LIMITS = ("memory", "output", "file_size", "disk", "stack")


def parse_size(text: str) -> int:
    """'256M' -> bytes (K, M, G are powers of 1024; a plain number is bytes)."""
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = t[-1:] if t[-1:] in ("k", "m", "g") else ""
    value = float(t[: len(t) - len(unit)])
    if value <= 0 or not math.isfinite(value):
        raise ValueError(f"size must be positive: {text!r}")
    return int(value * _UNITS[unit])


@functools.cache  # per Config (frozen): decided once, not on every request
def auth_required(cfg: Config) -> bool:
    """CELLBLOCK_AUTH: required | off | auto (off only when listening on loopback)."""
    mode = cfg.auth.strip().lower()
    if mode in ("required", "on"):
        return True
    if mode == "off":
        return False
    if mode != "auto":
        raise ValueError(f"CELLBLOCK_AUTH={cfg.auth!r}: use required, off or auto")
    host = cfg.host.strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


@dataclass(slots=True)
class Principal:
    """The API key a request authenticated with (its limits; 0 / empty = no limit)."""

    id: str
    rps: float = 0.0
    max_in_flight: int = 0
    max_limits: dict[str, float] = field(default_factory=dict)  # limit name -> highest value it may ask
    languages: list[str] = field(default_factory=list)

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes]) -> Principal:
        def s(k: str) -> str:
            return h.get(k.encode(), b"").decode()

        return cls(id=s("id"), rps=float(s("rps") or 0), max_in_flight=int(s("max_in_flight") or 0),
                   max_limits=json.loads(s("max_limits") or "{}"),
                   languages=[x for x in s("languages").split(",") if x])


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_max_limit(text: str) -> tuple[str, float]:
    """'memory=256M' -> ('memory', 268435456.0): a key's ceiling for one limit (sizes take
    K/M/G, times are seconds). ValueError names what is wrong."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in LIMIT_NAMES:
        raise ValueError(f"{text!r}: give NAME=VALUE with NAME one of {', '.join(LIMIT_NAMES)}")
    number = float(parse_size(value)) if name in SIZE_LIMITS else float(value)
    if number <= 0 or not math.isfinite(number):
        raise ValueError(f"{text!r}: the ceiling must be a positive number")
    return name, number


def create_key(r: Any, keys: Keys, name: str = "", rps: float = 0, max_in_flight: int = 0,
               max_limits: dict[str, float] | None = None, languages: list[str] | None = None) -> tuple[str, str]:
    """Store a new key (hashed). Returns (key id, token); the token is not stored anywhere.
    `max_limits`: limit name -> the highest value the key may ask for (see check_key_limits)."""
    unknown = set(max_limits or {}) - set(LIMIT_NAMES)
    if unknown:
        raise ValueError(f"unknown limits {sorted(unknown)}; known: {', '.join(LIMIT_NAMES)}")
    token = "cb_" + secrets.token_urlsafe(32)
    key_id = secrets.token_hex(8)
    digest = token_digest(token)
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(keys.api_key(key_id), mapping={
            "id": key_id, "name": name, "hash": digest, "rps": str(rps), "max_in_flight": str(max_in_flight),
            "max_limits": json.dumps(max_limits or {}),
            "languages": ",".join(languages or []), "created_at": str(time.time()), "revoked": "0"})
        pipe.set(keys.api_key_by_hash(digest), key_id)
        pipe.sadd(keys.api_key_ids(), key_id)
        pipe.execute()
    return key_id, token


def list_keys(r: Any, keys: Keys) -> list[dict[str, str]]:
    out = []
    for raw in sorted(r.smembers(keys.api_key_ids())):
        h = r.hgetall(keys.api_key(raw.decode()))
        if h:
            out.append({k.decode(): v.decode() for k, v in h.items() if k != b"hash"})
    return out


def revoke_key(r: Any, keys: Keys, key_id: str) -> bool:
    """Mark a key revoked and drop its token index. False when unknown."""
    h = r.hgetall(keys.api_key(key_id))
    if not h:
        return False
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(keys.api_key(key_id), mapping={"revoked": "1", "revoked_at": str(time.time())})
        pipe.delete(keys.api_key_by_hash(h[b"hash"].decode()))
        pipe.execute()
    return True


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-Auth-Token", "").strip() or None


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, "unauthorized", reason, "Authorization")


async def authenticate(r: Any, keys: Keys, request: web.Request) -> Principal:
    token = _token(request)
    if token is None:
        raise _unauthorized("missing API key: send Authorization: Bearer <token> (or X-Auth-Token)")
    key_id = await r.get(keys.api_key_by_hash(token_digest(token)))
    if key_id is None:
        raise _unauthorized("unknown or revoked API key")
    h = await r.hgetall(keys.api_key(key_id.decode()))
    if not h or h.get(b"revoked") == b"1":
        raise _unauthorized("unknown or revoked API key")
    return Principal.from_hash(h)


# Token bucket: capacity max(1, rps), refilled at rps per second. Returns 0 when allowed,
# else the milliseconds until a token is there.
_RATE_LUA = """
local rps = tonumber(ARGV[1])
local cap = math.max(1, rps)
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or cap)
local ts = tonumber(redis.call('HGET', KEYS[1], 'ts') or now)
tokens = math.min(cap, tokens + (now - ts) * rps)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rps * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rps * 1000) + 1000)
return wait
"""

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


async def check_rate(r: Any, keys: Keys, p: Principal) -> None:
    if p.rps <= 0:
        return
    wait_ms = int(await r.eval(_RATE_LUA, 1, keys.rate(p.id), str(p.rps)))
    if wait_ms > 0:
        raise TooMany(f"rate limit of {p.rps:g} requests/s for this key", math.ceil(wait_ms / 1000))


async def admit_in_flight(r: Any, keys: Keys, p: Principal, sids: list[str], forget_after: int) -> None:
    if p.max_in_flight <= 0:
        return
    n = int(await r.eval(_IN_FLIGHT_LUA, 1, keys.in_flight(p.id), str(p.max_in_flight),
                         keys.submission(""), str(forget_after), *sids))
    if n >= 0:
        raise TooMany(f"{n} submissions in flight for this key, at most {p.max_in_flight}", 1,
                      code="too_many_in_flight")


async def release_in_flight(r: Any, keys: Keys, p: Principal, sids: list[str]) -> None:
    if p.max_in_flight > 0 and sids:
        await r.zrem(keys.in_flight(p.id), *sids)


def check_key_limits(p: Principal, sub: Any, language: Any, prefix: str = "") -> None:
    """Languages and resource ceilings of the key. Limits the request leaves at the
    language default are capped to the key's ceiling; limits it asks for above it are 422."""
    if p.languages and sub.language not in p.languages:
        raise ApiError(403, "language_not_allowed",
                       f"this API key may use {', '.join(p.languages)}, not {sub.language}", prefix + "language")
    default = language.run_limits.default
    for name, ceiling in p.max_limits.items():
        if name in sub.limits:
            if sub.limits[name] > ceiling:
                raise invalid(f"{prefix}limits.{name}", f"{sub.limits[name]:g} is above this API key's ceiling "
                              f"{ceiling:g}", "above_key_ceiling")
        elif getattr(default, name) > ceiling:
            sub.limits[name] = float(ceiling)


async def principal(request: web.Request) -> Principal | None:
    """Authenticate (when auth is required) and apply the key's rate limit; None: auth off."""
    if PRINCIPAL in request:
        p: Principal | None = request[PRINCIPAL]
        return p
    p = None
    if auth_required(request.app[CONFIG]):
        r, keys = request.app[REDIS], request.app[KEYS]
        p = await authenticate(r, keys, request)
        await check_rate(r, keys, p)
    request[PRINCIPAL] = p
    return p


async def visible(request: web.Request, sid: str) -> bool:
    """Whether this request may see submission `sid` (auth off: every one)."""
    p = await principal(request)
    if p is None:
        return True
    r: Any = request.app[REDIS]
    owner = await r.get(request.app[KEYS].owner(sid))
    return owner is not None and owner.decode() == p.id


def _idem_digest(value: str) -> str:
    if not value or len(value) > 255:
        raise invalid("Idempotency-Key", "must be 1 to 255 characters")
    return hashlib.sha256(value.encode()).hexdigest()


async def admit(request: web.Request, accepted: list[Any], batch: bool = False) -> str | None:
    """Everything before enqueueing: key ceilings and languages, Idempotency-Key, queue
    backpressure, the in-flight quota (the owner record is written with the submission, in
    jobs.submit). Returns the id of the submission an earlier request with the same
    Idempotency-Key created (nothing reserved then), else None. After None, call `undo` if
    enqueueing fails."""
    cfg, keys = request.app[CONFIG], request.app[KEYS]
    r: Any = request.app[REDIS]
    p = await principal(request)
    if p is not None:
        for i, a in enumerate(accepted):
            prefix = f"submissions[{i}]." if batch else ""
            check_key_limits(p, a.submission, request.app[LANGUAGES][a.submission.language], prefix)
    sids = [a.submission.id for a in accepted]
    idem = request.headers.get("Idempotency-Key")
    if idem is not None:
        idem_key = keys.idempotency(p.id if p else "anonymous", _idem_digest(idem))
        value = ",".join(sids)
        if not await r.set(idem_key, value, nx=True, ex=cfg.submission_ttl):
            existing = await r.get(idem_key)
            if existing is not None:
                return existing.decode()
            await r.set(idem_key, value, ex=cfg.submission_ttl)
        request["cellblock.idem"] = idem_key
    try:
        await request.app[QUEUE_DEPTH].admit(r, cfg, len(accepted))
        if p is not None:
            forget = max(a.job_timeout for a in accepted) * (cfg.job_retries + 1) + IN_FLIGHT_SLACK
            await admit_in_flight(r, keys, p, sids, forget)
    except BaseException:
        await undo(request, accepted)
        raise
    return None


async def undo(request: web.Request, accepted: list[Any]) -> None:
    """Release what `admit` reserved (enqueueing failed)."""
    keys = request.app[KEYS]
    r: Any = request.app[REDIS]
    sids = [a.submission.id for a in accepted]
    try:
        if "cellblock.idem" in request:
            await r.delete(request["cellblock.idem"])
        p = request.get(PRINCIPAL)
        if p is not None:
            await release_in_flight(r, keys, p, sids)
    except Exception:  # Redis away: the entries expire on their own
        pass
