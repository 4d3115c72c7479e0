"""Build the aiohttp application: middlewares, app state (web.AppKey), lifetimes (cleanup_ctx), routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import redis
import redis.asyncio as aioredis
from aiohttp import web

from api import auth, callbacks, handlers, metrics, middleware
from api.backpressure import QueueDepth
from api.finished import FinishedWaiters
from api.state import CONFIG, FINISHED, KEYS, LANGUAGES, QUEUE_DEPTH, REDIS, SYNC_REDIS
from core.keys import Keys
from core.settings import Config
from policies.languages import Language, available_languages

log = logging.getLogger("cellblock.api")


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    url = app[CONFIG].effective_redis_url()
    # Blocking stream reads (SSE, callbacks) block at most BLOCK_MS_MAX; the socket
    # timeout must be longer or redis-py takes a quiet stream for a dead server.
    app[REDIS] = aioredis.Redis.from_url(url, socket_timeout=handlers.BLOCK_MS_MAX / 1000 + 20)
    # Enqueueing goes through RQ, which is synchronous: it runs in a thread on this client.
    app[SYNC_REDIS] = redis.Redis.from_url(url)
    app[FINISHED] = FinishedWaiters(app[REDIS], app[KEYS])
    app[FINISHED].start()
    yield
    await app[FINISHED].stop()
    await app[REDIS].aclose()
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


def make_app(cfg: Config) -> web.Application:
    app = web.Application(
        client_max_size=cfg.max_body,
        middlewares=[middleware.log_context, middleware.errors, auth.middleware(cfg.auth_required)],
    )
    app[CONFIG] = cfg
    app[KEYS] = Keys(cfg.key_prefix)
    app[QUEUE_DEPTH] = QueueDepth()
    app.cleanup_ctx.extend([redis_ctx, languages_ctx, callbacks_ctx])
    metrics.setup(app)
    routes: list[Any] = [
        web.post("/v1/submissions", handlers.create_submission),
        web.post("/v1/submissions/batch", handlers.create_batch),
        web.get("/v1/submissions", handlers.list_submissions),
        web.get("/v1/submissions/{id}", handlers.get_submission),
        web.get("/v1/submissions/{id}/events", handlers.submission_events),
        web.get("/v1/languages", handlers.languages),
        web.get("/v1/health", handlers.health),
        web.get("/v1/ready", handlers.ready),
        web.get("/metrics", metrics.handler),
        web.get("/v1/openapi.json", handlers.openapi_json),
        web.get("/docs", handlers.docs),
        web.get("/", handlers.index),
    ]
    app.add_routes(routes)
    return app


def serve(cfg: Config) -> None:
    """Run the API in the foreground until SIGINT/SIGTERM."""
    # SIGTERM: the listening socket closes at once; open requests (a `wait`, an SSE stream)
    # get up to CELLBLOCK_DRAIN_TIMEOUT to finish before they are cancelled.
    web.run_app(
        make_app(cfg),
        host=cfg.host,
        port=cfg.port,
        access_log=None,
        print=None,
        handle_signals=True,
        shutdown_timeout=cfg.drain_timeout,
    )
