"""Application state keys (web.AppKey): typed handles on what the app's lifetimes create."""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from aiohttp import web

from api.backpressure import QueueDepth
from api.finished import FinishedWaiters
from worker.config import Config
from worker.keys import Keys

CONFIG = web.AppKey("config", Config)
KEYS = web.AppKey("keys", Keys)
REDIS = web.AppKey("redis", aioredis.Redis)
SYNC_REDIS = web.AppKey("sync_redis", redis.Redis)
FINISHED = web.AppKey("finished", FinishedWaiters)
QUEUE_DEPTH = web.AppKey("queue_depth", QueueDepth)
# id -> policies.languages.Language
LANGUAGES: web.AppKey[dict[str, Any]] = web.AppKey("languages", dict)
