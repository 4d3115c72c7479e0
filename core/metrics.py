"""Service metrics kept in Redis, so that separate worker processes and any API process agree.

Workers stage their counters and histogram buckets into the SAME transaction that stores
a result (`stage_finished`); the API renders them for Prometheus (api/metrics.py). A
histogram is one hash per stage: field `b<i>` counts observations that fell in bucket i
(non-cumulative; the renderer accumulates, and the +Inf total is the count) and `sum`.
"""

from __future__ import annotations

import bisect
from typing import Any

from core.keys import Keys
from core.models import Result, Submission, Verdict

# Upper bounds in seconds, shared by every stage (a job spans ms to minutes).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
STAGES: tuple[str, ...] = ("queue_wait", "compile", "run", "total", "jail_overhead")


def submissions_key(keys: Keys) -> str:
    """Hash: field `language|verdict` -> finished submissions."""
    return f"{keys.prefix}:metrics:submissions"


def counters_key(keys: Keys) -> str:
    """Hash of plain counters (e.g. `internal_errors:worker`, `retries`)."""
    return f"{keys.prefix}:metrics:counters"


def histogram_key(keys: Keys, stage: str) -> str:
    return f"{keys.prefix}:metrics:hist:{stage}"


def stage_observe(pipe: Any, keys: Keys, stage: str, seconds: float) -> None:
    seconds = max(0.0, seconds)
    i = bisect.bisect_left(BUCKETS, seconds)  # len(BUCKETS) = the +Inf bucket
    key = histogram_key(keys, stage)
    pipe.hincrby(key, f"b{i}", 1)
    pipe.hincrbyfloat(key, "sum", seconds)


def stage_counter(r: Any, keys: Keys, name: str) -> Any:
    """Count one `name` on a pipeline or a client (its answer returned: awaitable when async)."""
    return r.hincrby(counters_key(keys), name, 1)


def stage_finished(pipe: Any, keys: Keys, sub: Submission, result: Result) -> None:
    """Count one finished submission and observe its stage latencies (from result.timings)."""
    pipe.hincrby(submissions_key(keys), f"{sub.language}|{result.verdict}", 1)
    t = result.timings
    enqueued, started, finished = t.get("enqueued_at"), t.get("started_at"), t.get("finished_at")
    if enqueued is not None and started is not None:
        stage_observe(pipe, keys, "queue_wait", started - enqueued)
    if enqueued is not None and finished is not None:
        stage_observe(pipe, keys, "total", finished - enqueued)
    if started is not None:  # the job ran (not only the failure callback)
        stage_observe(pipe, keys, "compile", result.compile_time)
        run = sum(tr.jail_time for tr in result.tests)
        stage_observe(pipe, keys, "run", run)
        # Jail overhead: time inside jail.run not spent by the program itself.
        overhead = sum(max(0.0, tr.jail_time - tr.wall_time) for tr in result.tests)
        if result.tests:
            stage_observe(pipe, keys, "jail_overhead", overhead / len(result.tests))
    if result.verdict is Verdict.INTERNAL_ERROR:
        stage_counter(pipe, keys, "internal_errors:worker")
