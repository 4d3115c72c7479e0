"""GET /v1/dashboard: the operators' dashboard as JSON, for a page that polls it every few seconds.

It owns the dashboard's JSON and nothing else: everything in it is read from Redis at request
time, from the counters and histograms that /metrics shows (core/metrics.py reads them, for
both), the per-minute hashes the same counting keeps for the last hour, RQ's queue and its
worker registry (api/metrics.py: `queue_state`, `live_workers`). No process keeps state of its
own, so every API process answers the same. With keys off it is open like the rest of the
loopback API; with keys required it needs an admin key (api/auth.py: `admin`).

    now       epoch seconds of the answer
    auth      whether keys are required
    quantile_ceiling  the histograms' highest bound: a quantile there means "at least that"
    queue     {depth, oldest_age}
    workers   [{name, hostname, pid, state, current_job, successful_jobs, failed_jobs,
                last_heartbeat_age, started_at}]
    minutes   60 x {t (the minute's start), finished, p50, p95, p99 (of `total` latency),
                internal_errors, sandbox_faults}, oldest first, the current minute last
    verdicts  {language: {verdict: count}}, all time
    totals    {finished, internal_errors: {worker, api}, sandbox_faults,
               compile_cache: {hits, misses, hit_rate}}
    stages    {stage: {count, p50, p95, p99}}, all time
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis
from aiohttp import web

from api import auth
from api.metrics import live_workers, queue_state
from api.state import CONFIG, KEYS, SYNC_REDIS
from core import metrics as cm
from core.keys import Keys
from core.settings import Config

MINUTES = 60
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


def _quantiles(h: cm.Histogram) -> dict[str, float | None]:
    return {name: h.quantile(q) for name, q in QUANTILES.items()}


def _workers(r: redis.Redis, cfg: Config, now: float) -> list[dict[str, Any]]:
    out = []
    for w in sorted(live_workers(r, cfg), key=lambda w: w.name):
        beat, born = w.last_heartbeat, w.birth_date
        out.append(
            {
                "name": w.name,
                "hostname": w.hostname,
                "pid": w.pid,
                "state": str(w.get_state()),
                "current_job": w.get_current_job_id(),
                "successful_jobs": w.successful_job_count,
                "failed_jobs": w.failed_job_count,
                "last_heartbeat_age": None if beat is None else max(0.0, now - beat.timestamp()),
                "started_at": None if born is None else born.timestamp(),
            }
        )
    return out


def snapshot(r: redis.Redis, cfg: Config, keys: Keys, now: float | None = None) -> dict[str, Any]:
    """The dashboard's JSON, read now (sync client: RQ is synchronous)."""
    now = time.time() if now is None else now
    depth, oldest_age = queue_state(r, cfg)
    counters = cm.read_counters(r, keys)
    verdicts: dict[str, dict[str, int]] = {}
    for (language, verdict), n in sorted(cm.read_submissions(r, keys).items()):
        verdicts.setdefault(language, {})[verdict] = n
    hits, misses = counters.get("compile_cache:hits", 0), counters.get("compile_cache:misses", 0)
    return {
        "now": now,
        "auth": cfg.auth_required,
        "quantile_ceiling": cm.BUCKETS[-1],
        "queue": {"depth": depth, "oldest_age": oldest_age},
        "workers": _workers(r, cfg, now),
        "minutes": [
            {
                "t": m.start,
                "finished": m.finished,
                **_quantiles(m.total),
                "internal_errors": m.internal_errors,
                "sandbox_faults": m.sandbox_faults,
            }
            for m in cm.read_minutes(r, keys, now, MINUTES)
        ],
        "verdicts": verdicts,
        "totals": {
            "finished": sum(n for per in verdicts.values() for n in per.values()),
            "internal_errors": {
                "worker": counters.get("internal_errors:worker", 0),
                "api": counters.get("internal_errors:api", 0),
            },
            "sandbox_faults": counters.get("sandbox_faults", 0),
            "compile_cache": {
                "hits": hits,
                "misses": misses,
                "hit_rate": hits / (hits + misses) if hits + misses else None,
            },
        },
        "stages": {stage: {"count": h.count, **_quantiles(h)} for stage, h in cm.read_histograms(r, keys).items()},
    }


class Reader:
    """One snapshot read at a time per process: requests that come while one is being read get
    that one (several open dashboards, polling at once, cost Redis one read, and the thread
    pool one thread)."""

    def __init__(self) -> None:
        self._reading: asyncio.Future[dict[str, Any]] | None = None

    async def read(self, app: web.Application) -> dict[str, Any]:
        if self._reading is None:
            self._reading = asyncio.ensure_future(asyncio.to_thread(snapshot, app[SYNC_REDIS], app[CONFIG], app[KEYS]))
            self._reading.add_done_callback(self._done)
        return await asyncio.shield(self._reading)

    def _done(self, _: asyncio.Future[dict[str, Any]]) -> None:
        self._reading = None


READER = web.AppKey("dashboard_reader", Reader)


def setup(app: web.Application) -> None:
    app[READER] = Reader()
    app.router.add_get("/v1/dashboard", handler)


async def handler(request: web.Request) -> web.Response:
    """GET /v1/dashboard (JSON; never cached: it is polled)."""
    await auth.admin(request)
    body = await request.app[READER].read(request.app)
    return web.json_response(body, headers={"Cache-Control": "no-store"})
