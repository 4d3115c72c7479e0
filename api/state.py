"""Typed handles on the application's state (web.AppKey) and on a request's (web.RequestKey)."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry

from api.backpressure import QueueDepth
from api.wakeups import EventWakeups, FinishedWaiters
from core.apikeys import Principal
from core.keys import Keys
from core.settings import Config
from policies.languages import Language

CONFIG = web.AppKey("config", Config)
KEYS = web.AppKey("keys", Keys)
REDIS = web.AppKey("redis", aioredis.Redis)
SYNC_REDIS = web.AppKey("sync_redis", redis.Redis)
FINISHED = web.AppKey("finished", FinishedWaiters)  # wakes `wait` requests
EVENTS = web.AppKey("events", EventWakeups)  # wakes event streams (SSE)
QUEUE_DEPTH = web.AppKey("queue_depth", QueueDepth)
LANGUAGES = web.AppKey("languages", dict[str, Language])
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)

# The API key the request authenticated with; None when the API runs without keys (api/auth.py).
PRINCIPAL: web.RequestKey[Principal | None] = web.RequestKey("principal")
# The Idempotency-Key record this request reserved, to release if queueing fails (api/admission.py).
IDEMPOTENCY = web.RequestKey("idempotency", str)
