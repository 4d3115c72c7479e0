"""Two of the middlewares every request passes: the log context (outermost) and errors as JSON;
and the filter that keeps a client's malformed requests out of aiohttp's server log.

Between them, the browser guard (api/browsers.py: it must add CORS headers to refusals too);
inside them, authentication (api/auth.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

import redis.exceptions
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from api.errors import ApiError, refusal_of
from api.state import KEYS, REDIS
from core import metrics
from core.logctx import SUBMISSION

log = logging.getLogger("cellblock.api")
_LOCATION = re.compile(r"^/v1/submissions/([^/]+)$")
# An API key in a path never reaches a log line: the Piston layer's /piston/<key>/..., and
# /<key>/... at the root of the Piston port (an app with KEY_IN_PATH set).
_PISTON_KEY = re.compile(r"^(/piston)/(?!api(?:/|$))[^/]+")
_ROOT_KEY = re.compile(r"^/(?!api(?:/|$))[^/]+")
KEY_IN_PATH = web.AppKey("key_in_path", bool)


def loggable(request: web.Request) -> str:
    """The request's path as a log line may show it."""
    if request.app.get(KEY_IN_PATH):
        return _ROOT_KEY.sub("/<key>", request.path)
    return _PISTON_KEY.sub(r"\1/<key>", request.path)


def refusal(request: web.Request, exc: BaseException) -> ApiError | None:
    """api.errors.refusal_of, Redis unavailability logged; None: a fault."""
    found = refusal_of(exc, request.client_max_size)
    if found is not None and found.code == "unavailable":
        log.warning("Redis unavailable on %s %s: %s", request.method, loggable(request), exc)
    return found


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def log_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every log line of a request about one submission carries its id (from the path, or
    from the Location of a created one); creations and failures get one line each."""
    sid = request.match_info.get("id")
    token = SUBMISSION.set(sid)
    t0 = time.monotonic()
    try:
        resp = await handler(request)
        m = _LOCATION.match(resp.headers.get("Location", ""))
        if m:
            SUBMISSION.set(m.group(1))
        ms = (time.monotonic() - t0) * 1000
        if request.method == "POST" and resp.status < 300:  # a submission made, by any of the APIs
            log.info("%s %s %d in %.1f ms", request.method, loggable(request), resp.status, ms)
        elif resp.status >= 500:
            log.warning("%s %s %d in %.1f ms", request.method, loggable(request), resp.status, ms)
        return resp
    finally:
        SUBMISSION.reset(token)


def not_a_client_fault(record: logging.LogRecord) -> bool:
    """A filter for aiohttp's server log: False for a request the client malformed (a bad
    request line, header or chunk, a body its Content-Encoding does not decode), which aiohttp
    answers 400 itself; like any refusal it is not logged (a traceback for each would let a
    client write ~15 bytes of log per byte it sends)."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, (HttpProcessingError, web.RequestPayloadError))


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure answered as JSON: a refusal as itself, Redis away or refusing writes as a
    503 to retry, anything else as a logged and counted 500."""
    try:
        return await handler(request)
    except Exception as exc:
        found = refusal(request, exc)
        if found is not None:
            return found.response()
        if isinstance(exc, web.HTTPException):
            if exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            return ApiError(exc.status, code, exc.reason, None).response()
        log.exception("unhandled error on %s %s", request.method, loggable(request))
        await _count_error(request.app)
        return ApiError(500, "internal", "internal server error (logged)").response()


async def _count_error(app: web.Application) -> None:
    """Count an unhandled error (a 500) in Redis, beside the workers' internal errors, so that
    every API process reports the total. Redis away: the error is in the log only."""
    try:
        await metrics.stage_counter(app[REDIS], app[KEYS], "internal_errors:api")
    except redis.exceptions.RedisError as exc:
        log.warning("could not count an API error in Redis: %s", exc)
