"""Piston's endpoints (`routes(prefix)`), each behind `endpoint`: the API key from the path
(`<prefix>/<key>/api/v2/...`: Piston's clients cannot send a header) or from `Authorization:
Bearer` / `X-Auth-Token`, and every refusal as Piston's `{"message"}`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api import admission, auth, intake, middleware
from api.errors import ApiError
from api.piston import connect, render, requests, runtimes
from api.piston.requests import PistonError
from api.state import CONFIG, KEYS, LANGUAGES, PRINCIPAL, REDIS
from core.models import State
from core.views import read_stored

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PISTON_VERSION = "3.1.1"


def endpoint(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            request[PRINCIPAL] = None
            if request.app[CONFIG].auth_required:
                token = auth.token_of(request, request.match_info.get("key"))
                request[PRINCIPAL] = await auth.authenticate(request, token)
            return await handler(request)
        except Exception as exc:
            if not isinstance(exc, PistonError):
                found = middleware.refusal(request, exc)
                if found is None:
                    raise
                exc = requests.refusal(found)
            return web.json_response({"message": exc.message}, status=exc.status, headers=exc.headers)

    return wrapped


async def _body(request: web.Request) -> Any:
    """The body as JSON whatever its content type: piston-client posts text/plain, pistonpy none."""
    try:
        return await intake.read_json(request)
    except ApiError as exc:
        if exc.code == "malformed_json":
            raise PistonError(exc.reason) from None
        raise


async def execute(request: web.Request) -> web.Response:
    """POST /api/v2/execute: runs it and answers when it is done (Piston is synchronous)."""
    await admission.refuse_early(request)
    execution = requests.parse(await _body(request), request.app[CONFIG], request.app[LANGUAGES], request[PRINCIPAL])
    sid = await intake.take_to_the_end(request, execution.accepted)
    if sid is None:
        raise PistonError("no worker was free in time: nothing was run; try again later", 503, {"Retry-After": "5"})
    stored = await read_stored(request.app[REDIS], request.app[KEYS], sid)
    if stored is None or stored.state is not State.FINISHED:  # a worker died with it: RQ retries it
        raise PistonError("the run did not finish within its time; it may still finish, unseen", 504)
    return web.json_response(render.render(stored, execution.runtime.cellblock.compiled))


async def list_runtimes(request: web.Request) -> web.Response:
    return web.json_response([r.json() for r in runtimes.runtimes(request.app[LANGUAGES])])


async def packages(request: web.Request) -> web.Response:
    """Read-only: cellblock's languages are host packages, installed by the operator."""
    return web.json_response(
        [
            {"language": r.language, "language_version": r.version, "installed": True}
            for r in runtimes.runtimes(request.app[LANGUAGES])
        ]
    )


async def manage_packages(request: web.Request) -> web.Response:
    raise PistonError("package management is not available", 403)


async def version(request: web.Request) -> web.Response:
    return web.json_response({"message": f"Piston v{PISTON_VERSION}"})


async def not_found(request: web.Request) -> web.Response:
    raise PistonError("Not Found", 404)


def routes(prefix: str) -> list[web.AbstractRouteDef]:
    """Piston's paths under `prefix` ("/piston", or "" at the root of its own port), and again
    under `prefix/<key>` for clients that cannot send a header."""
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/", version),
        ("GET", "/api/v2/runtimes", list_runtimes),
        ("POST", "/api/v2/execute", execute),
        ("GET", "/api/v2/connect", connect.connect),
        ("GET", "/api/v2/packages", packages),
        ("POST", "/api/v2/packages", manage_packages),
        ("DELETE", "/api/v2/packages", manage_packages),
    ]
    out: list[web.AbstractRouteDef] = []
    for base in (prefix, prefix + "/{key:[^/]+}"):
        for method, path, handler in table:
            # With and without a trailing slash, as Express routes them (aiopyston asks for
            # `runtimes/`).
            bare = (base + path).rstrip("/") or "/"
            for variant in dict.fromkeys((bare, bare.rstrip("/") + "/")):
                out.append(web.route(method, variant, endpoint(handler)))
    out.append(web.route("*", prefix + "/{key:[^/]+}/{tail:.*}", endpoint(not_found)))
    out.append(web.route("*", prefix + "/{tail:.*}", endpoint(not_found)))
    return out
