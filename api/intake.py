"""The one way validated submissions enter the service, whichever API they came through (/v1,
api/judge0, api/piston): admitted (Idempotency-Key, backpressure, the key's quota), queued,
and, when the client waits, followed until finished or its wait is over."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api import admission
from api.errors import ApiError
from api.state import CONFIG, FINISHED, KEYS, PRINCIPAL, REDIS, SYNC_REDIS
from api.validation import Accepted
from core import queue


@dataclass(slots=True)
class Taken:
    """The ids of the submissions taken, in request order; `retry`: an Idempotency-Key retry
    answered with the ids the first request made (nothing new was queued)."""

    ids: list[str]
    retry: bool = False


async def read_json(request: web.Request) -> Any:
    """The request's body as JSON, within CELLBLOCK_CLIENT_TIMEOUT; 400/408/413 as ApiError."""
    seconds = request.app[CONFIG].client_timeout
    try:
        async with asyncio.timeout(seconds):  # a body trickled in slowly holds a connection: bounded
            raw = await request.read()  # above CELLBLOCK_MAX_BODY: a 413 from the error middleware
    except TimeoutError:
        raise ApiError(408, "request_timeout", f"the body did not arrive within {seconds:g} s", "body") from None
    except web.RequestPayloadError as exc:  # e.g. a Content-Encoding the body does not decode by
        reason = " ".join(str(exc).split())
        raise ApiError(400, "malformed_body", f"the body could not be read: {reason}", "body") from None
    except ConnectionResetError:  # the client left before its body came: nobody reads this answer
        raise ApiError(400, "incomplete_body", "the connection closed before the body arrived", "body") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}", "body") from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "body is nested too deeply", "body") from None


async def _enqueue(request: web.Request, accepted: list[Accepted]) -> None:
    cfg = request.app[CONFIG]
    pairs = [(a.submission, a.job_timeout) for a in accepted]
    p = request[PRINCIPAL]
    try:
        await asyncio.to_thread(queue.submit, request.app[SYNC_REDIS], cfg, pairs, p.id if p else None)
    except queue.Unconfirmed:
        raise  # they may run: the Idempotency-Key and the in-flight entries stay theirs
    except BaseException:
        await admission.undo(request, accepted)
        raise


async def take(request: web.Request, accepted: list[Accepted], wait: float = 0.0) -> Taken:
    """Admit and queue `accepted` (all or none); with `wait` > 0 (one submission), return once
    it finished or `wait` seconds passed, whichever comes first."""
    earlier = await admission.admit(request, accepted)
    if earlier is not None:
        return Taken(list(earlier), retry=True)
    ids = [a.submission.id for a in accepted]
    if wait <= 0:
        await _enqueue(request, accepted)
        return Taken(ids)
    (sid,) = ids
    async with request.app[FINISHED].until_finished(sid) as finished:  # before the job exists: no wake-up missed
        await _enqueue(request, accepted)
        await finished(wait)
    return Taken(ids)


async def take_to_the_end(request: web.Request, accepted: Accepted) -> str | None:
    """For an API whose clients cannot poll (Piston's `/execute` answers with the result): queue
    one submission and wait until it is finished. If no worker has started it within
    CELLBLOCK_MAX_WAIT, it is withdrawn (it never runs: a retry cannot run it twice) and None is
    returned; once a worker has it, its own job timeout bounds the wait. Returns its id."""
    cfg, r, keys = request.app[CONFIG], request.app[REDIS], request.app[KEYS]
    (sid,) = (await take(request, [accepted], cfg.max_wait)).ids
    if await r.hget(keys.submission(sid), "state") == b"finished":
        return sid
    if await asyncio.to_thread(queue.withdraw, request.app[SYNC_REDIS], cfg, sid):
        await admission.undo(request, [accepted])
        return None
    async with request.app[FINISHED].until_finished(sid) as finished:
        await finished(accepted.job_timeout)
    return sid
