"""Judge0's endpoints (`routes(prefix)`), each behind `endpoint`: the API key from `X-Auth-Token`
(the header Judge0 uses; `Authorization: Bearer` and an `X-Auth-Token` query parameter work
too), and every refusal in Judge0's shape."""

from __future__ import annotations

import asyncio
import functools
import os
import platform
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from rq import Queue, Worker

from api import admission, auth, intake, middleware
from api.judge0 import catalog, render, requests
from api.judge0.errors import FORBIDDEN, NOT_FOUND, Judge0Error, error, from_api_error
from api.state import CONFIG, KEYS, LANGUAGES, PRINCIPAL, REDIS, SYNC_REDIS
from api.validation import Accepted
from core.views import Stored, read_stored
from jail.spec import Limits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BATCH_EMPTY = "there should be at least one submission in a batch"


def endpoint(handler: Handler) -> Handler:
    """Authenticate as Judge0 does (every path, when keys are required) and answer refusals
    in its shapes. Failures that are not refusals go on to the error middleware (a 5xx)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            request[PRINCIPAL] = None
            if request.app[CONFIG].auth_required:
                token = auth.token_of(request, request.query.get("X-Auth-Token"))
                request[PRINCIPAL] = await auth.authenticate(request, token)
            return await handler(request)
        except Judge0Error as exc:
            return exc.response()
        except Exception as exc:
            found = middleware.refusal(request, exc)
            if found is None:
                raise
            return from_api_error(found, requests.judge0_field).response()

    return wrapped


def _table(request: web.Request) -> dict[int, catalog.Judge0Language]:
    return catalog.languages(request.app[LANGUAGES])


async def _stored(request: web.Request, text: str) -> Stored | None:
    """The submission a token names, if it exists, was made through this layer (one made through
    /v1 or Piston has none of Judge0's fields) and this key may see it."""
    sid = render.submission_id(text)
    if sid is None or not await auth.visible(request, sid):
        return None
    stored = await read_stored(request.app[REDIS], request.app[KEYS], sid)
    return stored if stored is not None and stored.submission.compat.get("api") == "judge0" else None


async def _body(request: web.Request) -> Any:
    """The JSON body whatever the content type (Judge0's clients all send JSON)."""
    return await intake.read_json(request) if request.can_read_body else {}


def _parse(request: web.Request, body: Any, encoded: bool) -> Accepted:
    cfg = request.app[CONFIG]
    return requests.parse(body, encoded, cfg, _table(request), request.app[LANGUAGES], request[PRINCIPAL])


async def create_submission(request: web.Request) -> web.Response:
    """POST /submissions: 201 {token}; with wait=true, 201 and the submission once finished (or
    as it stands when CELLBLOCK_MAX_WAIT is over: the client polls with the token)."""
    await admission.refuse_early(request)
    body = await _body(request)
    switches = requests.switches(request.query, body)
    accepted = _parse(request, body, switches.base64)
    wait = request.app[CONFIG].max_wait if switches.wait else 0.0
    taken = await intake.take(request, [accepted], wait)
    (sid,) = taken.ids
    if not switches.wait:
        return web.json_response({"token": render.token(sid)}, status=201)
    stored = await read_stored(request.app[REDIS], request.app[KEYS], sid)
    if stored is None:
        raise NOT_FOUND
    try:
        return web.json_response(render.render(stored, switches.fields, switches.base64), status=201)
    except render.NotUtf8:
        return web.json_response({"token": render.token(sid), "error": render.NOT_UTF8}, status=201)


async def get_submission(request: web.Request) -> web.Response:
    """GET /submissions/{token}."""
    switches = requests.switches(request.query)
    stored = await _stored(request, request.match_info["token"])
    if stored is None:
        raise NOT_FOUND
    try:
        return web.json_response(render.render(stored, switches.fields, switches.base64))
    except render.NotUtf8:
        raise error(400, render.NOT_UTF8) from None


def _batch_size(request: web.Request, n: int) -> None:
    most = request.app[CONFIG].max_batch
    if n == 0:
        raise error(400, BATCH_EMPTY)
    if n > most:
        raise error(400, f"number of submissions in a batch should be less than or equal to {most}")


async def get_batch(request: web.Request) -> web.Response:
    """GET /submissions/batch?tokens=a,b,c: in that order, null for an unknown token."""
    switches = requests.switches(request.query)
    raw = request.query.get("tokens") or request.headers.get("tokens") or ""
    tokens = [t for t in raw.split(",") if t.strip()]
    _batch_size(request, len(tokens))
    out: list[dict[str, Any] | None] = []
    for text in tokens:
        stored = await _stored(request, text)
        try:
            out.append(None if stored is None else render.render(stored, switches.fields, switches.base64))
        except render.NotUtf8:
            raise error(400, render.NOT_UTF8_BATCH) from None
    return web.json_response({"submissions": out})


async def create_batch(request: web.Request) -> web.Response:
    """POST /submissions/batch {submissions: [...]}: an array in input order, {token} or that
    item's field errors; 201 when any was created, else 422. Never waits."""
    await admission.refuse_early(request)
    body = await _body(request)
    encoded = requests.switches(request.query, fields=False).base64
    items = body.get("submissions") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise error(400, BATCH_EMPTY)
    _batch_size(request, len(items))
    answers: list[Any] = []
    accepted: list[Accepted] = []
    for item in items:
        try:
            accepted.append(_parse(request, item, encoded))
            answers.append(None)
        except Judge0Error as exc:
            if exc.status != 422:
                raise
            answers.append(exc.body)
    if not accepted:
        return web.json_response(answers, status=422)
    taken = await intake.take(request, accepted)
    ids = iter(taken.ids)
    return web.json_response([a if a is not None else {"token": render.token(next(ids))} for a in answers], status=201)


async def forbidden(request: web.Request) -> web.Response:
    """The listing and DELETE: Judge0 guards them with X-Auth-User, which cellblock has none of."""
    raise FORBIDDEN


async def authenticate(request: web.Request) -> web.Response:
    """POST /authenticate: 200 when the key is good (`endpoint` checked it), else 401."""
    return web.Response(status=200)


async def languages(request: web.Request) -> web.Response:
    listed = [lang for lang in _table(request).values() if lang.listed]
    return web.json_response([{"id": lang.id, "name": lang.name} for lang in sorted(listed, key=_by_name)])


async def all_languages(request: web.Request) -> web.Response:
    listed = [lang for lang in _table(request).values() if lang.listed]
    return web.json_response(
        [{"id": lang.id, "name": lang.name, "is_archived": False} for lang in sorted(listed, key=_by_name)]
    )


def _by_name(lang: catalog.Judge0Language) -> tuple[str, int]:
    return lang.name, lang.id


async def language(request: web.Request) -> web.Response:
    try:
        found = _table(request).get(int(request.match_info["id"]))
    except ValueError:
        found = None
    if found is None:
        raise NOT_FOUND
    lang = found.language
    return web.json_response(
        {
            "id": found.id,
            "name": found.name,
            "is_archived": False,
            "source_file": lang.source,
            "compile_cmd": " ".join(lang.compile).replace("{options}", "%s") if lang.compile else None,
            "run_cmd": " ".join(lang.run).replace("{args}", "").strip(),
        }
    )


async def statuses(request: web.Request) -> web.Response:
    return web.json_response([{"id": n, "description": text} for n, text in catalog.STATUSES.items()])


async def about(request: web.Request) -> web.Response:
    """`version` is the Judge0 release this layer follows: the SDK picks its language table by it."""
    docs = f"{request.scheme}://{request.host}/docs"  # this deployment's own API documentation
    return web.json_response(
        {"version": catalog.VERSION, "homepage": docs, "source_code": docs, "maintainer": "cellblock"}
    )


async def version(request: web.Request) -> web.Response:
    return web.Response(text=catalog.VERSION)


async def isolate(request: web.Request) -> web.Response:
    """Judge0 answers `isolate --version`; cellblock runs its own jail, and says so."""
    return web.Response(
        text="cellblock jail: user, mount, pid, net, ipc, uts, cgroup and time namespaces, cgroup caps,"
        " seccomp (docs/jail.md); not isolate\n"
    )


async def license_text(request: web.Request) -> web.Response:
    """Judge0 answers its licence's text; cellblock's is Apache-2.0 (pyproject.toml)."""
    return web.Response(text="cellblock is licensed under the Apache License, Version 2.0 (Apache-2.0)\n")


async def config_info(request: web.Request) -> web.Response:
    """Judge0's configuration keys (the SDK needs every one), cellblock's real values in Judge0's
    units: the defaults are the jail's (most languages use them; each language's own are in
    /v1/languages), the maxima the lowest language ceiling (so they hold for every language)."""
    cfg = request.app[CONFIG]
    langs = list(request.app[LANGUAGES].values())
    default = requests.judge0_limits_of(Limits())
    ceilings = [requests.judge0_limits_of(lang.run_limits.maximum) for lang in langs]
    top = {field: min(c[field] for c in ceilings) for field in default} if ceilings else default
    off = dict.fromkeys(
        (
            "allow_enable_network", "allow_enable_per_process_and_thread_memory_limit",
            "allow_enable_per_process_and_thread_time_limit", "enable_network",
            "enable_per_process_and_thread_memory_limit", "enable_per_process_and_thread_time_limit",
            "enable_submission_delete", "maintenance_mode", "redirect_stderr_to_stdout", "use_docs_as_homepage",
        ),
        False,
    )  # fmt: skip
    on = dict.fromkeys(
        (
            "enable_additional_files", "enable_batched_submissions", "enable_callbacks",
            "enable_command_line_arguments", "enable_compiler_options", "enable_wait_result",
        ),
        True,
    )  # fmt: skip
    return web.json_response(
        {
            **off,
            **on,
            "allowed_languages_for_compile_options": sorted(
                catalog.name_of(lang) for lang in langs if lang.compiled and lang.id in catalog.PRIMARY_IDS
            ),
            "callbacks_max_tries": cfg.callback_attempts,
            "callbacks_timeout": float(cfg.callback_timeout),
            "cpu_extra_time": 0.0,
            "max_cpu_extra_time": requests.MAX_CPU_EXTRA_TIME,
            "cpu_time_limit": float(default["cpu_time_limit"]),
            "max_cpu_time_limit": float(top["cpu_time_limit"]),
            "wall_time_limit": float(default["wall_time_limit"]),
            "max_wall_time_limit": float(top["wall_time_limit"]),
            "memory_limit": int(default["memory_limit"]),
            "max_memory_limit": int(top["memory_limit"]),
            "stack_limit": int(default["stack_limit"]),
            "max_stack_limit": int(top["stack_limit"]),
            "max_processes_and_or_threads": int(default["max_processes_and_or_threads"]),
            "max_max_processes_and_or_threads": int(top["max_processes_and_or_threads"]),
            "max_file_size": int(default["max_file_size"]),
            "max_max_file_size": int(top["max_file_size"]),
            "number_of_runs": 1,
            "max_number_of_runs": min(requests.MAX_RUNS, cfg.max_tests),
            "max_queue_size": cfg.max_queue,
            "max_submission_batch_size": cfg.max_batch,
            "max_extract_size": cfg.max_source // 1024,
            "submission_cache_duration": 0.0,
        }
    )


async def system_info(request: web.Request) -> web.Response:
    pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return web.json_response(
        {
            "Architecture": platform.machine(),
            "CPU(s)": str(os.cpu_count() or 1),
            "Model name": platform.processor() or platform.machine(),
            "Mem": f"{pages * size / 2**30:.1f}Gi",
        }
    )


def _workers(request: web.Request) -> list[dict[str, Any]]:
    cfg = request.app[CONFIG]
    queue = Queue(cfg.queue, connection=request.app[SYNC_REDIS])
    states = [str(w.get_state()) for w in Worker.all(queue=queue)]
    busy = sum(state == "busy" for state in states)
    return [
        {
            "queue": cfg.queue,
            "size": queue.count,
            "available": len(states),
            "idle": len(states) - busy,
            "working": busy,
            "paused": 0,
            "failed": 0,
        }
    ]


async def workers(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(_workers, request))


async def not_found(request: web.Request) -> web.Response:
    raise NOT_FOUND


def routes(prefix: str) -> list[web.AbstractRouteDef]:
    """Judge0's paths under `prefix` ("/judge0", or "" at the root of its own port)."""
    table: list[tuple[str, str, Handler]] = [
        ("POST", "/submissions", create_submission),
        ("GET", "/submissions", forbidden),
        ("GET", "/submissions/batch", get_batch),
        ("POST", "/submissions/batch", create_batch),
        ("GET", "/submissions/{token}", get_submission),
        ("DELETE", "/submissions/{token}", forbidden),
        ("GET", "/languages", languages),
        ("GET", "/languages/all", all_languages),
        ("GET", "/languages/{id}", language),
        ("GET", "/statuses", statuses),
        ("GET", "/about", about),
        ("GET", "/version", version),
        ("GET", "/config_info", config_info),
        ("GET", "/system_info", system_info),
        ("GET", "/workers", workers),
        ("GET", "/isolate", isolate),
        ("GET", "/license", license_text),
        ("POST", "/authenticate", authenticate),
        ("POST", "/authorize", forbidden),
    ]
    # With and without a trailing slash, as Rails routes them (judge0api asks for
    # `submissions/`); anything else is Judge0's 404.
    out = [
        web.route(method, prefix + variant, endpoint(handler))
        for method, path, handler in table
        for variant in (path, path + "/")
    ]
    return [*out, web.route("*", prefix + "/{tail:.*}", endpoint(not_found))]
