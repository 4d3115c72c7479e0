"""Judge0's answers to what it refuses: 422 with per-field messages, 400 {"error"}, 401 and 403
with an empty body, 404 {"status": 404, "error": "Not Found"}; any cellblock refusal (ApiError)
in those shapes, its status and Retry-After kept."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from api.errors import ApiError, TooMany


class Judge0Error(Exception):
    """A refusal in Judge0's shape: `body` None means an empty body."""

    def __init__(self, status: int, body: object | None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> web.Response:
        if self.body is None:
            return web.Response(status=self.status, headers=self.headers)
        return web.json_response(self.body, status=self.status, headers=self.headers)


def field_error(field: str, message: str) -> Judge0Error:
    return Judge0Error(422, {field: [message]})


def error(status: int, message: str) -> Judge0Error:
    return Judge0Error(status, {"error": message})


NOT_FOUND = Judge0Error(404, {"status": 404, "error": "Not Found"})
UNAUTHORIZED = Judge0Error(401, None)
FORBIDDEN = Judge0Error(403, None)


def from_api_error(exc: ApiError, field_name: Callable[[str], str]) -> Judge0Error:
    """cellblock's refusal as Judge0 answers it; `field_name` names a /v1 field the Judge0 way."""
    if exc.status == 401:
        return UNAUTHORIZED
    if exc.status == 404:
        return NOT_FOUND
    if exc.status in (403, 422) and exc.field:
        return field_error(field_name(exc.field), exc.reason)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooMany) else None
    return Judge0Error(exc.status, {"error": exc.reason}, headers)
