"""Build the aiohttp application: middlewares, app state (web.AppKey), lifetimes (cleanup_ctx), routes."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from api import auth, browsers, callbacks, dashboard, handlers, metrics, middleware, pages, sessions, streams
from api.backpressure import QueueDepth
from api.judge0 import handlers as judge0
from api.piston import handlers as piston
from api.state import CONFIG, EVENTS, FINISHED, KEYS, LANGUAGES, QUEUE_DEPTH, REDIS, SYNC_REDIS
from api.wakeups import LISTEN_TIMEOUT_S, EventWakeups, FinishedWaiters
from core import redis_client
from core.keys import Keys
from core.models import SUBMISSION_ID
from core.settings import Config
from policies.languages import Language, available_languages

log = logging.getLogger("cellblock.api")
# Where the compatibility layers are mounted on the API's port (README: "Judge0 CE compatible API").
JUDGE0_PREFIX = "/judge0"
PISTON_PREFIX = "/piston"
# How long a request waits for a free Redis connection before it is answered 503.
POOL_WAIT_S = 5


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    url = cfg.effective_redis_url()
    # A bounded pool: a burst of requests waits up to POOL_WAIT_S for a connection (then a 503)
    # instead of opening connections without end. The API's longest blocking read is a
    # subscription's (LISTEN_TIMEOUT_S); the socket timeout must be longer or redis-py takes a
    # quiet channel for a dead server.
    app[REDIS] = redis_client.async_client(
        url, cfg.redis_connections, POOL_WAIT_S, socket_timeout=LISTEN_TIMEOUT_S + 20
    )
    # Enqueueing goes through RQ, which is synchronous: it runs in a thread on this client.
    app[SYNC_REDIS] = redis_client.sync_client(url)
    app[FINISHED] = FinishedWaiters(app[REDIS], app[KEYS])
    app[EVENTS] = EventWakeups(app[REDIS], app[KEYS])
    for wakeups in (app[FINISHED], app[EVENTS]):
        wakeups.start()
    yield
    for wakeups in (app[FINISHED], app[EVENTS]):
        await wakeups.stop()
    await app[REDIS].aclose(close_connection_pool=True)
    app[SYNC_REDIS].close()


async def languages_ctx(app: web.Application) -> AsyncIterator[None]:
    # Probing toolchain versions runs commands: keep it off the event loop.
    langs: dict[str, Language] = await asyncio.to_thread(available_languages)
    app[LANGUAGES] = langs
    log.info("languages: %s", ", ".join(sorted(langs)))
    yield


async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(callbacks.deliver_forever(app[REDIS], app[KEYS], app[CONFIG]))
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


# What a compatibility layer's own port shares with the main application.
_SHARED: tuple[web.AppKey[Any], ...] = (
    CONFIG, KEYS, REDIS, SYNC_REDIS, FINISHED, EVENTS, QUEUE_DEPTH, LANGUAGES, auth.KEY_CACHE,
)  # fmt: skip


def layer_app(main: web.Application, routes: list[web.AbstractRouteDef], key_in_path: bool) -> web.Application:
    """A compatibility layer at the root of a port of its own, on the main application's state;
    `key_in_path`: its paths may start with an API key (Piston's), never logged."""
    cfg = main[CONFIG]
    app = web.Application(
        client_max_size=cfg.max_body,
        middlewares=[middleware.log_context, browsers.middleware(cfg, layer_port=True), middleware.errors],
    )
    for key in _SHARED:
        app[key] = main[key]
    app[middleware.KEY_IN_PATH] = key_in_path
    app.add_routes(routes)
    return app


async def layer_ports_ctx(app: web.Application) -> AsyncIterator[None]:
    """CELLBLOCK_JUDGE0_PORT and CELLBLOCK_PISTON_PORT: for clients configured with a host and a
    port only. Started after Redis and the languages (the state they share), stopped before."""
    cfg = app[CONFIG]
    runners = []
    layers = ((cfg.judge0_port, judge0.routes(""), False), (cfg.piston_port, piston.routes(""), True))
    for port, routes, key_in_path in layers:
        if not port:
            continue
        runner = web.AppRunner(
            layer_app(app, routes, key_in_path),
            access_log=None,
            keepalive_timeout=cfg.client_timeout,
            shutdown_timeout=cfg.drain_timeout,
        )
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, cfg.host, port).start()
    yield
    for runner in runners:
        await runner.cleanup()


def make_app(cfg: Config) -> web.Application:
    app = web.Application(
        client_max_size=cfg.max_body,
        middlewares=[
            middleware.log_context,
            browsers.middleware(cfg),
            middleware.errors,
            auth.middleware(cfg.auth_required),
        ],
    )
    app[CONFIG] = cfg
    app[KEYS] = Keys(cfg.key_prefix)
    app[QUEUE_DEPTH] = QueueDepth()
    app[auth.KEY_CACHE] = auth.KeyCache()
    app.cleanup_ctx.extend([redis_ctx, languages_ctx, callbacks_ctx, layer_ports_ctx])
    metrics.setup(app)
    dashboard.setup(app)
    pages.setup(app)
    routes: list[Any] = [
        web.post("/v1/submissions", handlers.create_submission),
        web.post("/v1/submissions/batch", handlers.create_batch),
        web.get("/v1/submissions", handlers.list_submissions),
        web.get(f"/v1/submissions/{{id:{SUBMISSION_ID}}}", handlers.get_submission),
        web.get(f"/v1/submissions/{{id:{SUBMISSION_ID}}}/events", streams.submission_events),
        web.get("/v1/sessions", sessions.open_session),
        web.get("/v1/languages", handlers.languages),
        web.get("/v1/health", handlers.health),
        web.get("/v1/ready", handlers.ready),
        web.get("/metrics", metrics.handler),
        web.get("/v1/openapi.json", handlers.openapi_json),
        web.get("/docs", handlers.docs),
        *judge0.routes(JUDGE0_PREFIX),
        *piston.routes(PISTON_PREFIX),
    ]
    app.add_routes(routes)
    return app


def serve(cfg: Config) -> None:
    """Run the API in the foreground until SIGINT/SIGTERM."""
    # SIGTERM: the listening socket closes at once; open requests (a `wait`, an SSE stream)
    # get up to CELLBLOCK_DRAIN_TIMEOUT to finish before they are cancelled.
    # keepalive_timeout closes a connection that has not sent a whole request's headers in
    # CELLBLOCK_CLIENT_TIMEOUT (aiohttp counts a half-sent request as idle): slow or half-open
    # clients cannot pile up. The body has the same time (api/intake.py: read_json).
    raise_open_files_limit()
    logging.getLogger("aiohttp.server").addFilter(middleware.not_a_client_fault)
    web.run_app(
        make_app(cfg),
        host=cfg.host,
        port=cfg.port,
        access_log=None,
        print=None,
        handle_signals=True,
        shutdown_timeout=cfg.drain_timeout,
        keepalive_timeout=cfg.client_timeout,
    )


def raise_open_files_limit() -> None:
    """Every connection is a file: take the hard limit of open files, not the soft 1024 a
    shell or a default unit gives (deploy/systemd sets the hard one)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
