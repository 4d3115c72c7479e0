"""The API's one error type and the middleware that turns every failure into a JSON body.

Body: {"error": {"status": 422, "code": "unknown_language", "field": "language",
"reason": "..."}}. Redis being away or refusing writes (disk full: MISCONF, maxmemory: OOM,
a read-only replica, still loading) is a 503 the client may retry; unexpected exceptions
are logged and still answered in JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import redis.exceptions
from aiohttp import web

log = logging.getLogger("cellblock.api")


class ApiError(Exception):
    """A request the API refuses: HTTP status, machine-readable code, the field, and why."""

    def __init__(self, status: int, code: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.field = field

    def response(self) -> web.Response:
        body = {"error": {"status": self.status, "code": self.code, "field": self.field, "reason": self.reason}}
        return web.json_response(body, status=self.status)


class TooMany(ApiError):
    """429/503 with a Retry-After header."""

    def __init__(self, reason: str, retry_after: int, status: int = 429, code: str = "rate_limited") -> None:
        super().__init__(status, code, reason, None)
        self.retry_after = max(1, retry_after)

    def response(self) -> web.Response:
        resp = super().response()
        resp.headers["Retry-After"] = str(self.retry_after)
        return resp


def invalid(field: str, reason: str, code: str = "invalid") -> ApiError:
    """422 for a well-formed request whose `field` is unacceptable."""
    return ApiError(422, code, reason, field)


# Replies with which Redis refuses a command for a while, through no fault of the request.
_REDIS_REFUSALS = (redis.exceptions.ReadOnlyError, redis.exceptions.OutOfMemoryError,
                   redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)


def redis_unavailable(exc: BaseException) -> bool:
    """True when `exc` means Redis cannot serve now (down, loading, out of memory, or unable
    to persist: MISCONF), so the request deserves a 503 and a retry, not a 500."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, *_REDIS_REFUSALS)):
        return True
    # MISCONF has no class of its own; inside a pipeline the reply text is prefixed.
    return isinstance(exc, redis.exceptions.ResponseError) and "MISCONF" in str(exc)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPRequestEntityTooLarge:
        return ApiError(413, "body_too_large", f"request body above {request.client_max_size} bytes",
                        "body").response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return ApiError(exc.status, code, exc.reason, None).response()
    except Exception as exc:
        if redis_unavailable(exc):
            log.warning("Redis unavailable on %s %s: %s", request.method, request.path, exc)
            return ApiError(503, "unavailable", "the queue (Redis) is unavailable; retry later").response()
        log.exception("unhandled error on %s %s", request.method, request.path)
        from api.metrics import count_api_error  # api.metrics -> api.state -> api.backpressure -> here

        await count_api_error(request.app)
        return ApiError(500, "internal", "internal server error (logged)").response()
