"""Request handlers: module-level, typed, one per endpoint. Validation is in api/validation.py."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import redis.exceptions
from aiohttp import web
from rq import Queue, Worker

from api import admission, intake, openapi
from api.auth import visible
from api.errors import ApiError, invalid, not_found
from api.state import CONFIG, KEYS, LANGUAGES, PRINCIPAL, REDIS, SYNC_REDIS
from api.validation import BATCH_FIELDS, parse_submission
from core.limits import LIMIT_NAMES, LIMIT_UNITS
from core.models import SUBMISSION_ID
from core.views import read_view
from jail.spec import Limits

_SUBMISSION_ID = re.compile(SUBMISSION_ID)
REDIS_FULL = 0.95  # of maxmemory: /v1/health says degraded (writes fail at the cap)


async def _view(request: web.Request, sid: str, with_request: bool = False) -> dict[str, Any] | None:
    """The view of `sid`; None when unknown or expired. The request's own submission, or one
    whose id is in the path (the auth middleware checked it is this key's)."""
    return await read_view(request.app[REDIS], request.app[KEYS], sid, with_request)


async def create_submission(request: web.Request) -> web.Response:
    """POST /v1/submissions: 201 {id}, or 200 with the result when `wait` and it finished in time."""
    cfg = request.app[CONFIG]
    await admission.refuse_early(request)
    body = await intake.read_json(request)
    accepted = parse_submission(body, cfg, request.app[LANGUAGES], request[PRINCIPAL])
    taken = await intake.take(request, [accepted], accepted.wait)
    (sid,) = taken.ids
    location = f"/v1/submissions/{sid}"
    if taken.retry or accepted.wait > 0:
        view = await _view(request, sid)
        if view is not None and view["state"] == "finished":
            return web.json_response(view, status=200, headers={"Location": location})
        if taken.retry:  # a retry with the same Idempotency-Key
            return web.json_response(view or {"id": sid, "state": "queued"}, status=201, headers={"Location": location})
    return web.json_response({"id": sid, "state": "queued"}, status=201, headers={"Location": location})


async def create_batch(request: web.Request) -> web.Response:
    """POST /v1/submissions/batch {submissions: [...]}: all accepted or none (422 names the index)."""
    cfg = request.app[CONFIG]
    await admission.refuse_early(request)
    body = await intake.read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object", "body")
    unknown = set(body) - BATCH_FIELDS
    if unknown:  # as a single submission's are: a misspelt field is not silently dropped
        raise invalid(sorted(unknown)[0], f"unknown field; known: {', '.join(sorted(BATCH_FIELDS))}", "unknown_field")
    items = body.get("submissions")
    if not isinstance(items, list) or not items:
        raise invalid("submissions", "must be a non-empty list of submission objects")
    if len(items) > cfg.max_batch:
        raise invalid("submissions", f"at most {cfg.max_batch} per batch, got {len(items)}", "too_many")
    accepted = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("wait"):
            raise invalid(f"submissions[{i}].wait", "not supported in a batch; poll or use events")
        accepted.append(
            parse_submission(item, cfg, request.app[LANGUAGES], request[PRINCIPAL], prefix=f"submissions[{i}].")
        )
    taken = await intake.take(request, accepted)  # a retry with the same Idempotency-Key: the first ids
    return web.json_response({"ids": taken.ids}, status=201)


# What GET /v1/submissions/{id}?include= may add to the view.
INCLUDES = ("request",)


async def get_submission(request: web.Request) -> web.Response:
    """GET /v1/submissions/{id}: state, and the full result once finished; `?include=request`
    adds the submission as it was asked (core.views.request_view)."""
    include = [part for part in request.query.get("include", "").split(",") if part]
    for part in include:
        if part not in INCLUDES:
            raise invalid("include", f"unknown: {part!r}; known: {', '.join(INCLUDES)}")
    view = await _view(request, request.match_info["id"], "request" in include)
    if view is None:
        raise not_found()
    return web.json_response(view)


async def list_submissions(request: web.Request) -> web.Response:
    """GET /v1/submissions?ids=a,b,c: several submissions at once (unknown ids say so)."""
    cfg = request.app[CONFIG]
    raw = request.query.get("ids", "")
    ids = [i for i in raw.split(",") if i]
    if not ids:
        raise invalid("ids", "give ids=<id>,<id>,...", "missing")
    if len(ids) > cfg.max_batch:
        raise invalid("ids", f"at most {cfg.max_batch} ids, got {len(ids)}", "too_many")
    out: list[dict[str, Any]] = []
    for sid in ids:
        ours = _SUBMISSION_ID.fullmatch(sid) and await visible(request, sid)
        view = await _view(request, sid) if ours else None
        out.append(view if view is not None else {"id": sid, "error": "not_found"})
    return web.json_response({"submissions": out})


async def languages(request: web.Request) -> web.Response:
    """GET /v1/languages: what this deployment runs, with versions and limits (and what each
    limit's number counts: seconds, bytes or items)."""
    out = []
    for lang in sorted(request.app[LANGUAGES].values(), key=lambda lang: lang.id):
        out.append(
            {
                "id": lang.id,
                "name": lang.name,
                "version": lang.version,
                "source_name": lang.source,
                "compiled": lang.compiled,
                "limits": {
                    "default": _limits_json(lang.run_limits.default),
                    "max": _limits_json(lang.run_limits.maximum),
                },
            }
        )
    return web.json_response({"languages": out, "limit_units": LIMIT_UNITS})


def _limits_json(limits: Limits) -> dict[str, float]:
    return {name: getattr(limits, name) for name in LIMIT_NAMES}


def _workers_and_depth(request: web.Request) -> dict[str, Any]:
    queue = Queue(request.app[CONFIG].queue, connection=request.app[SYNC_REDIS])
    return {"workers": Worker.count(queue=queue), "queue_depth": queue.count}


async def _probe(request: web.Request) -> tuple[bool, dict[str, Any]]:
    """Whether Redis answers and at least one worker is alive, with what was seen."""
    body: dict[str, Any] = {"redis": False, "workers": 0, "queue_depth": None}
    try:
        await request.app[REDIS].ping()
        body["redis"] = True
        body.update(await asyncio.to_thread(_workers_and_depth, request))
    except Exception as exc:  # any Redis failure means "not healthy", reported, not raised
        body["error"] = f"{type(exc).__name__}: {exc}"
    return body["redis"] and body["workers"] > 0, body


async def _memory_full(request: web.Request) -> str | None:
    """Why Redis is about to refuse new work although it answers: its memory at REDIS_FULL of
    its maxmemory, past which it refuses writes (`noeviction`, as cellblock asks for; a
    `volatile-*` policy too once no key it may evict is left); None when it has room, has no
    cap, evicts any key (`allkeys-*`), or does not tell this user (an ACL without INFO)."""
    try:
        info = await request.app[REDIS].info("memory")
    except redis.exceptions.ResponseError:
        return None
    used, cap = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if cap and used >= REDIS_FULL * cap and not str(info.get("maxmemory_policy", "")).startswith("allkeys-"):
        return (
            f"Redis holds {used} of its {cap} bytes (maxmemory): at the cap it refuses new submissions"
            " until entries expire"
        )
    return None


async def health(request: web.Request) -> web.Response:
    """GET /v1/health: 200 when Redis answers, has room for new work and at least one worker is
    alive, else 503. (Readiness, /v1/ready, does not ask for room: a full Redis still serves
    every read.)"""
    ok, body = await _probe(request)
    if ok and (full := await _memory_full(request)) is not None:
        ok, body["error"] = False, full
    body["status"] = "ok" if ok else "degraded"
    return web.json_response(body, status=200 if ok else 503)


async def ready(request: web.Request) -> web.Response:
    """GET /v1/ready: the same test as /v1/health, in the readiness probe's shape."""
    ok, body = await _probe(request)
    del body["queue_depth"]
    return web.json_response({"ready": ok, **body}, status=200 if ok else 503)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.SPEC)


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=openapi.html(), content_type="text/html")
