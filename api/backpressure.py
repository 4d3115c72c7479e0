"""Backpressure: refuse new submissions (503, Retry-After) while the queue is at its bound."""

from __future__ import annotations

import time
from typing import Any

from api.errors import TooMany
from core.queue import queue_key
from core.settings import Config

# How long a reading of the queue's length may stand in for a new one.
DEPTH_REUSE_S = 0.1


class QueueDepth:
    """This API process's reading of the queue's length, for backpressure (CELLBLOCK_MAX_QUEUE).

    LLEN is read again unless the last reading, plus what this process queued since, is under
    half the bound and younger than DEPTH_REUSE_S. So a queue near its bound is read on every
    request, and a near-empty one costs no round trip per request. The bound is soft: within
    DEPTH_REUSE_S each of several API processes may add up to half of it unseen by the others."""

    def __init__(self) -> None:
        self.depth = 0
        self.read_at = float("-inf")

    async def admit(self, r: Any, cfg: Config, adding: int) -> None:
        if cfg.max_queue <= 0:
            return
        now = time.monotonic()
        if now - self.read_at > DEPTH_REUSE_S or 2 * (self.depth + adding) > cfg.max_queue:
            self.depth = int(await r.llen(queue_key(cfg)))
            self.read_at = now
        if self.depth + adding > cfg.max_queue:
            raise TooMany(
                f"the queue is full ({self.depth} waiting, at most {cfg.max_queue}); retry later",
                2,
                status=503,
                code="overloaded",
            )
        self.depth += adding
