"""The API's one error type: a refusal with its HTTP status, code, field and reason.

Body: {"error": {"status": 422, "code": "unknown_language", "field": "language",
"reason": "..."}}. api/middleware.py turns every failure into such a body.
"""

from __future__ import annotations

import redis.exceptions
from aiohttp import web

from core import queue
from core.inputs import InputError


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


def not_found() -> ApiError:
    """404 for a submission id that is unknown, expired, or another API key's."""
    return ApiError(404, "not_found", "no such submission (unknown or expired)", "id")


def refused(exc: InputError, prefix: str = "") -> ApiError:
    """The 422 for input that core's rules refuse; `prefix` places it (e.g. "submissions[3].")."""
    return invalid(prefix + exc.field, exc.reason, exc.code)


# Replies with which Redis refuses a command for a while, through no fault of the request.
_REDIS_REFUSALS = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


def refusal_of(exc: BaseException, max_body: int) -> ApiError | None:
    """The refusal a failure is answered with when it is not a fault of the API: a refusal
    itself, a body above CELLBLOCK_MAX_BODY (413), Redis away or refusing writes (503, retry).
    None: a real fault (a logged 500). Every API answers these in its own shape."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiError(413, "body_too_large", f"request body above {max_body} bytes", "body")
    if redis_unavailable(exc):
        return TooMany("the queue (Redis) is unavailable; retry later", 1, status=503, code="unavailable")
    if isinstance(exc, queue.NotReplicated):
        return TooMany(f"{exc}: nothing was queued; retry later", 1, status=503, code="unavailable")
    if isinstance(exc, queue.Unconfirmed):
        return TooMany(f"{exc}: the submission may run; retry with the same Idempotency-Key to learn its id",
                       1, status=503, code="unavailable")  # fmt: skip
    return None


def redis_unavailable(exc: BaseException) -> bool:
    """True when `exc` means Redis cannot serve now (down, loading, out of memory, or unable
    to persist: MISCONF), so the request deserves a 503 and a retry, not a 500."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, *_REDIS_REFUSALS)):
        return True
    # MISCONF (cannot persist) and NOREPLICAS (min-replicas-to-write unmet) have no class of
    # their own; inside a pipeline the reply text is prefixed.
    return isinstance(exc, redis.exceptions.ResponseError) and any(
        reply in str(exc) for reply in ("MISCONF", "NOREPLICAS")
    )
