"""Who is asking: the authentication middleware and submission ownership.

When CELLBLOCK_AUTH requires keys, every request under /v1/submissions must carry one
(`Authorization: Bearer <token>` or `X-Auth-Token`; a browser's WebSocket, which cannot send
a header, offers it as the subprotocol `cellblock.key.<token>`); the middleware looks it up
(core/apikeys.py), applies its rate limit, leaves the key in request[PRINCIPAL] (None when
the API runs without keys), and answers 404 for another key's submission — so no handler has
to remember to. /metrics needs a key too (any key); the operators' dashboard an admin key
(`admin`, called by its handler); languages, health and the docs stay open.
A key's lookup is kept a second per process (KeyCache): a revoked key is refused within it.
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.errors import ApiError, TooMany, not_found
from api.middleware import Handler
from api.state import CONFIG, KEYS, PRINCIPAL, REDIS
from core import apikeys, store
from core.apikeys import Principal
from core.keys import Keys

PROTECTED = ("/v1/submissions", "/v1/sessions")
# Prometheus scrapes with a key too (`authorization: credentials_file` in its scrape config):
# the counters say what runs here and how much, which is not for everyone once keys are on.
METRICS = "/metrics"
KEY_CACHE_S = 1.0
KEY_CACHE_MAX = 10_000

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


# A browser's WebSocket cannot send a header of its own, only subprotocols: a page opening a
# session offers WS_PROTOCOL and WS_KEY + its token (as Kubernetes' API server takes a bearer
# token), and the server answers WS_PROTOCOL, never the one that carries the key.
WS_PROTOCOL = "cellblock.v1"
WS_KEY = "cellblock.key."


def token_of(request: web.Request, layer: str | None = None) -> str | None:
    """The token of `Authorization: Bearer`, of `X-Auth-Token`, on a WebSocket upgrade of the
    subprotocol `cellblock.key.<token>`, then the one a compatibility layer found where its
    clients put it (`layer`: Judge0's query parameter, Piston's path), and last of a bare
    `Authorization: <token>` (the key as clients of Piston's public API send it: aiopyston,
    ultra-piston, piston_rs), so that an opaque one a proxy adds shadows none of the others;
    None when none is sent."""
    header = request.headers.get("Authorization", "").strip()
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    token = request.headers.get("X-Auth-Token", "").strip()
    if token:
        return token
    for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        offered = offered.strip()
        if offered.startswith(WS_KEY):
            return offered[len(WS_KEY) :] or None
    if layer:
        return layer
    if header and header.lower() != "bearer" and not any(c.isspace() for c in header):
        return header
    return None


def _unauthorized(reason: str) -> ApiError:
    return ApiError(401, "unauthorized", reason, "Authorization")


async def _check_rate(r: Any, keys: Keys, p: Principal) -> None:
    if p.rps <= 0:
        return
    wait_ms = int(await r.eval(_RATE_LUA, 1, keys.rate(p.id), str(p.rps)))
    if wait_ms > 0:
        raise TooMany(f"rate limit of {p.rps:g} requests/s for this key", math.ceil(wait_ms / 1000))


class KeyCache:
    """Keys this API process looked up lately (token -> key, or None: unknown or revoked), so a
    keyed request costs no Redis round trip to authenticate, and a flood of them little. Each
    answer is kept KEY_CACHE_S: a revoked key is refused within that."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, Principal | None]] = {}

    async def lookup(self, r: Any, keys: Keys, token: str) -> Principal | None:
        now = time.monotonic()
        digest = apikeys.token_digest(token)  # a token may be kilobytes long: kept by digest
        seen = self._seen.get(digest)
        if seen is not None and seen[0] > now:
            return seen[1]
        if len(self._seen) >= KEY_CACHE_MAX:  # many tokens (most of them made up): start again
            self._seen.clear()
        p = await apikeys.lookup(r, keys, token)
        self._seen[digest] = (now + KEY_CACHE_S, p)
        return p


# Each application has its own (make_app sets it): its keys are in its own Redis.
KEY_CACHE = web.AppKey("key_cache", KeyCache)


async def authenticate(request: web.Request, token: str | None) -> Principal:
    """The key `token` names, after its rate limit; 401 (missing, unknown or revoked) or 429 as
    ApiError. Every API authenticates through here: /v1 (the middleware) and the compatibility
    layers, which find the token where their clients put it."""
    if token is None:
        raise _unauthorized("missing API key: send Authorization: Bearer <token> (or X-Auth-Token)")
    if not token.isascii():  # tokens are ASCII; a header's other bytes arrive as surrogates
        raise _unauthorized("unknown or revoked API key")
    r, keys = request.app[REDIS], request.app[KEYS]
    p = await request.app[KEY_CACHE].lookup(r, keys, token)
    if p is None:
        raise _unauthorized("unknown or revoked API key")
    await _check_rate(r, keys, p)
    return p


async def admin(request: web.Request) -> Principal | None:
    """The admin key an operators' request (GET /v1/dashboard) carries; None when the API runs
    without keys (open, as the rest of the loopback API). 401 without a live key (as
    `authenticate`), 403 for a key that is not an admin's (`cellblock keys create --admin`)."""
    if not request.app[CONFIG].auth_required:
        return None
    p = await authenticate(request, token_of(request))
    if not p.admin:
        raise ApiError(
            403, "admin_required", "the dashboard needs an admin key (cellblock keys create --admin)", "Authorization"
        )
    return p


def middleware(required: bool) -> Middleware:
    """The authentication middleware; `required` is the configuration's decision, taken once."""

    @web.middleware
    async def authenticate_v1(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[PRINCIPAL] = None
        if required and (request.path.startswith(PROTECTED) or request.path == METRICS):
            request[PRINCIPAL] = await authenticate(request, token_of(request))
            sid = request.match_info.get("id")
            if sid is not None and not await visible(request, sid):
                raise not_found()  # another key's submission is no business of this one: as if unknown
        return await handler(request)

    return authenticate_v1


async def visible(request: web.Request, sid: str) -> bool:
    """Whether this request may see submission `sid` (auth off: every one)."""
    p = request[PRINCIPAL]
    if p is None:
        return True
    owner = _owners.get(sid)
    if owner is None:
        stored = await request.app[REDIS].get(request.app[KEYS].owner(sid))
        if stored is None:
            return False
        if len(_owners) >= OWNERS_MAX:
            _owners.clear()
        owner = _owners[sid] = store.text(stored)
    return owner == p.id


# Submission id -> the key that made it, as this process read it: an owner never changes, so a
# client polling or streaming its submission costs no Redis round trip for it after the first.
OWNERS_MAX = 100_000
_owners: dict[str, str] = {}
