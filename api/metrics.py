"""GET /metrics: Prometheus text format, rendered from what workers keep in Redis.

Workers are separate processes: they count into Redis hashes (core/metrics.py) in the
same transaction that stores a result, and the API counts its own unhandled errors (500s)
there too (api/middleware.py). A custom prometheus-client Collector reads those hashes, RQ's
queue and worker registries at scrape time, so every API process shows the same totals.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import redis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.worker import BaseWorker

from api.state import CONFIG, KEYS, METRICS_REGISTRY, SYNC_REDIS
from core import metrics as cm
from core.keys import Keys
from core.settings import Config


def queue_state(r: redis.Redis, cfg: Config) -> tuple[int, float]:
    """The queue's depth and the age in seconds of its oldest job (0: none waits)."""
    q = Queue(cfg.queue, connection=r)
    depth = q.count
    oldest_age = 0.0
    first = q.get_job_ids(0, 1)
    if first:
        try:
            job = Job.fetch(first[0], connection=r)
        except NoSuchJobError:  # taken and gone since it was listed
            return depth, oldest_age
        if job.enqueued_at is not None:
            oldest_age = max(0.0, time.time() - job.enqueued_at.timestamp())
    return depth, oldest_age


def live_workers(r: redis.Redis, cfg: Config) -> list[BaseWorker]:
    """The workers registered on the queue (RQ drops one whose heartbeat lapsed)."""
    return Worker.all(queue=Queue(cfg.queue, connection=r))


class RedisCollector(Collector):
    """Everything shared across processes, read from Redis at each scrape."""

    def __init__(self, r: redis.Redis, cfg: Config, keys: Keys) -> None:
        self.r, self.cfg, self.keys = r, cfg, keys

    def collect(self) -> Iterator[Metric]:
        r = self.r
        subs = CounterMetricFamily(
            "cellblock_submissions", "Finished submissions by language and verdict", labels=["language", "verdict"]
        )
        for (lang, verdict), n in sorted(cm.read_submissions(r, self.keys).items()):
            subs.add_metric([lang, verdict], float(n))
        yield subs

        counters = cm.read_counters(r, self.keys)
        errs = CounterMetricFamily(
            "cellblock_internal_errors", "Internal errors (never blamed on the program)", labels=["source"]
        )
        errs.add_metric(["worker"], float(counters.get("internal_errors:worker", 0)))
        errs.add_metric(["api"], float(counters.get("internal_errors:api", 0)))
        yield errs
        faults = CounterMetricFamily("cellblock_sandbox_faults", "Job attempts that hit a sandbox fault (retried)")
        faults.add_metric([], float(counters.get("sandbox_faults", 0)))
        yield faults
        cache = CounterMetricFamily(
            "cellblock_compile_cache",
            "Compiles of submissions in languages that compile: from the compile cache (hit) or run (miss)",
            labels=["result"],
        )
        cache.add_metric(["hit"], float(counters.get("compile_cache:hits", 0)))
        cache.add_metric(["miss"], float(counters.get("compile_cache:misses", 0)))
        yield cache

        hist = HistogramMetricFamily(
            "cellblock_stage_seconds",
            "Latency per stage: queue_wait, compile, run (all tests), total "
            "(created -> finished), jail_overhead (per test: jail.run minus the program)",
            labels=["stage"],
        )
        for stage, h in cm.read_histograms(r, self.keys).items():
            buckets = [("+Inf" if math.isinf(le) else repr(le), float(n)) for le, n in h.cumulative()]
            hist.add_metric([stage], buckets, h.sum)
        yield hist

        depth, oldest_age = queue_state(r, self.cfg)
        yield GaugeMetricFamily("cellblock_queue_depth", "Jobs waiting in the queue", value=depth)
        yield GaugeMetricFamily(
            "cellblock_queue_oldest_age_seconds", "Age of the oldest queued job (0: none)", value=oldest_age
        )

        workers = live_workers(r, self.cfg)
        busy = sum(1 for w in workers if w.get_state() == "busy")
        yield GaugeMetricFamily("cellblock_workers", "Live workers on the queue", value=len(workers))
        yield GaugeMetricFamily("cellblock_workers_busy", "Workers running a job", value=busy)
        yield GaugeMetricFamily(
            "cellblock_workers_busy_ratio",
            "Busy share of the live workers",
            value=busy / len(workers) if workers else 0.0,
        )


def setup(app: web.Application) -> None:
    """Register the collector (needs app[SYNC_REDIS], so at startup)."""

    async def on_startup(app: web.Application) -> None:
        reg = CollectorRegistry(auto_describe=False)
        reg.register(RedisCollector(app[SYNC_REDIS], app[CONFIG], app[KEYS]))
        app[METRICS_REGISTRY] = reg

    app.on_startup.append(on_startup)


async def handler(request: web.Request) -> web.Response:
    """GET /metrics (Prometheus text format)."""
    body = await asyncio.to_thread(generate_latest, request.app[METRICS_REGISTRY])
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp
