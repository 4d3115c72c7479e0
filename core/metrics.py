"""Service metrics kept in Redis, so that separate worker processes and any API process agree.

Workers stage their counters and histogram buckets into the SAME transaction that stores
a result (`stage_finished`); the API renders them for Prometheus (api/metrics.py) and for
the operators' dashboard (api/dashboard.py). A histogram is one hash per stage: field `b<i>`
counts observations that fell in bucket i (non-cumulative; the renderer accumulates, and the
+Inf total is the count) and `sum`. How such a hash is read is `Histogram.from_hash`, here only.

The same calls also count into a hash per minute (`minute_key`): finished submissions, the
`total` latency's buckets (the same convention), internal errors and sandbox faults, kept
MINUTE_TTL_S, so that the dashboard can draw the last hour from the counters /metrics shows.
"""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.client import Pipeline

from core.keys import Keys
from core.models import Result, Submission, Verdict

# Upper bounds in seconds, shared by every stage (a job spans ms to minutes).
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
STAGES: tuple[str, ...] = ("queue_wait", "compile", "run", "total", "jail_overhead")

# The dashboard shows 60 minutes; a minute's hash is kept twice that, so the oldest minute shown
# is still there whatever the skew between the clocks of the workers and of the API process
# reading it (each counts by its own time.time(): simple, and minutes only need to be roughly
# right), and Redis forgets older minutes by itself. Every write sets the expiry again.
MINUTE_S = 60
MINUTE_TTL_S = 2 * 3600
# Counters (stage_counter names) that the minutes count too, and their field there.
MINUTE_FIELDS = {
    "internal_errors:worker": "internal_errors",
    "internal_errors:api": "internal_errors",
    "sandbox_faults": "sandbox_faults",
}


def submissions_key(keys: Keys) -> str:
    """Hash: field `language|verdict` -> finished submissions."""
    return f"{keys.prefix}:metrics:submissions"


def counters_key(keys: Keys) -> str:
    """Hash of plain counters (e.g. `internal_errors:worker`, `sandbox_faults`, `compile_cache:hits`)."""
    return f"{keys.prefix}:metrics:counters"


def histogram_key(keys: Keys, stage: str) -> str:
    return f"{keys.prefix}:metrics:hist:{stage}"


def minute_key(keys: Keys, minute: int) -> str:
    """Hash of one minute (`minute` = epoch seconds // 60): `finished`, the `total` latency's
    `b<i>` and `sum`, `internal_errors`, `sandbox_faults`. Expires after MINUTE_TTL_S."""
    return f"{keys.prefix}:metrics:minute:{minute}"


def _observe(pipe: Any, key: str, seconds: float) -> None:
    """One observation into the histogram hash `key`."""
    seconds = max(0.0, seconds)
    i = bisect.bisect_left(BUCKETS, seconds)  # len(BUCKETS) = the +Inf bucket
    pipe.hincrby(key, f"b{i}", 1)
    pipe.hincrbyfloat(key, "sum", seconds)


def stage_observe(pipe: Any, keys: Keys, stage: str, seconds: float) -> None:
    _observe(pipe, histogram_key(keys, stage), seconds)


def _count(pipe: Any, keys: Keys, name: str, at: float) -> None:
    """Stage one `name` onto a pipeline: the counter, and the minute's when the minutes keep it."""
    pipe.hincrby(counters_key(keys), name, 1)
    field = MINUTE_FIELDS.get(name)
    if field is not None:
        key = minute_key(keys, int(at // MINUTE_S))
        pipe.hincrby(key, field, 1)
        pipe.expire(key, MINUTE_TTL_S)


_PIPELINES = (Pipeline, AsyncPipeline)


def stage_counter(r: Any, keys: Keys, name: str) -> Any:
    """Count one `name` (now, by this process's clock) on a pipeline (staged) or a client (in a
    transaction of its own, whose answer is returned: awaitable when the client is asyncio's)."""
    if isinstance(r, _PIPELINES):
        _count(r, keys, name, time.time())
        return None
    pipe = r.pipeline(transaction=True)
    _count(pipe, keys, name, time.time())
    return pipe.execute()


def stage_finished(pipe: Any, keys: Keys, sub: Submission, result: Result) -> None:
    """Count one finished submission and observe its stage latencies (from result.timings),
    in the totals and in the minute it finished (finished_at, else now)."""
    pipe.hincrby(submissions_key(keys), f"{sub.language}|{result.verdict}", 1)
    t = result.timings
    enqueued, started, finished = t.get("enqueued_at"), t.get("started_at"), t.get("finished_at")
    at = finished if finished is not None else time.time()
    minute = minute_key(keys, int(at // MINUTE_S))
    pipe.hincrby(minute, "finished", 1)
    if enqueued is not None and started is not None:
        stage_observe(pipe, keys, "queue_wait", started - enqueued)
    if enqueued is not None and finished is not None:
        stage_observe(pipe, keys, "total", finished - enqueued)
        _observe(pipe, minute, finished - enqueued)
    pipe.expire(minute, MINUTE_TTL_S)
    if started is not None:  # the job ran (not only the failure callback)
        stage_observe(pipe, keys, "compile", result.compile_time)
        run = sum(tr.jail_time for tr in result.tests)
        stage_observe(pipe, keys, "run", run)
        # Jail overhead: time inside jail.run not spent by the program itself.
        overhead = sum(max(0.0, tr.jail_time - tr.wall_time) for tr in result.tests)
        if result.tests:
            stage_observe(pipe, keys, "jail_overhead", overhead / len(result.tests))
    # The compile cache, for languages that compile: a hit, or a compiler that ran (a miss).
    # Interpreted languages, and sources refused before compiling, count neither.
    if result.compile_cached:
        pipe.hincrby(counters_key(keys), "compile_cache:hits", 1)
    elif result.compile_ran:
        pipe.hincrby(counters_key(keys), "compile_cache:misses", 1)
    if result.verdict is Verdict.INTERNAL_ERROR:
        _count(pipe, keys, "internal_errors:worker", at)


# --------------------------------------------------------------------------- reading


def _str(reply: bytes | str) -> str:
    return reply.decode() if isinstance(reply, bytes) else reply


@dataclass(frozen=True, slots=True)
class Histogram:
    """A histogram hash as read: `counts[i]` observations in bucket i (non-cumulative; the last
    is the +Inf bucket) and their `sum`."""

    counts: tuple[int, ...]
    sum: float

    @classmethod
    def from_hash(cls, h: dict[Any, Any]) -> Histogram:
        """From HGETALL's answer (a missing field: 0; other fields ignored)."""
        fields = {_str(k): v for k, v in h.items()}
        counts = tuple(int(fields.get(f"b{i}", 0)) for i in range(len(BUCKETS) + 1))
        return cls(counts, float(fields.get("sum", 0) or 0))

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it) per bucket, the last bound math.inf."""
        out, acc = [], 0
        for le, n in zip((*BUCKETS, math.inf), self.counts, strict=True):
            acc += n
            out.append((le, acc))
        return out

    def quantile(self, q: float) -> float | None:
        return quantile(q, list(self.counts))


def quantile(q: float, buckets: list[int]) -> float | None:
    """The q-quantile (0 <= q <= 1) of observations counted in BUCKETS (`buckets`: per-bucket,
    non-cumulative counts, the last the +Inf bucket), as Prometheus' histogram_quantile: linear
    within the bucket the rank falls in (the first bucket starts at 0), and a rank in the +Inf
    bucket answers the highest finite bound. None when nothing was observed. (Where Prometheus
    would divide 0 by 0, q = 0 with the lowest buckets empty, this answers the lower bound of
    the first bucket that has observations.)"""
    if not 0 <= q <= 1:
        raise ValueError(f"quantile {q} outside [0, 1]")
    if len(buckets) != len(BUCKETS) + 1:
        raise ValueError(f"{len(buckets)} bucket counts; expected {len(BUCKETS) + 1} (BUCKETS and +Inf)")
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    below = 0  # observations in the buckets before bucket i
    for i, n in enumerate(buckets):
        if n > 0 and below + n >= rank:
            if i == len(BUCKETS):
                return BUCKETS[-1]
            start = BUCKETS[i - 1] if i > 0 else 0.0
            return start + (BUCKETS[i] - start) * (rank - below) / n
        below += n
    return BUCKETS[-1]  # not reached: the last non-empty bucket holds rank <= total


def read_counters(r: Any, keys: Keys) -> dict[str, int]:
    """The plain counters (sync client)."""
    return {_str(k): int(v) for k, v in r.hgetall(counters_key(keys)).items()}


def read_submissions(r: Any, keys: Keys) -> dict[tuple[str, str], int]:
    """(language, verdict) -> finished submissions (sync client)."""
    out: dict[tuple[str, str], int] = {}
    for field, n in r.hgetall(submissions_key(keys)).items():
        lang, _, verdict = _str(field).partition("|")
        out[(lang, verdict)] = int(n)
    return out


def read_histograms(r: Any, keys: Keys) -> dict[str, Histogram]:
    """Every stage's histogram (sync client), in STAGES order, read in one round trip."""
    with r.pipeline(transaction=False) as pipe:
        for stage in STAGES:
            pipe.hgetall(histogram_key(keys, stage))
        replies = pipe.execute()
    return {stage: Histogram.from_hash(h) for stage, h in zip(STAGES, replies, strict=True)}


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute as counted: its start (epoch seconds), finished submissions, their `total`
    latency, internal errors (worker and API) and sandbox faults."""

    start: int
    finished: int
    total: Histogram
    internal_errors: int
    sandbox_faults: int


def read_minutes(r: Any, keys: Keys, now: float, n: int = 60) -> list[Minute]:
    """The `n` minutes up to the one of `now`, oldest first (sync client; one round trip).
    A minute nothing happened in (or expired) is all zeros."""
    current = int(now // MINUTE_S)
    minutes = range(current - n + 1, current + 1)
    with r.pipeline(transaction=False) as pipe:
        for m in minutes:
            pipe.hgetall(minute_key(keys, m))
        replies = pipe.execute()
    out = []
    for m, h in zip(minutes, replies, strict=True):
        fields = {_str(k): v for k, v in h.items()}
        out.append(
            Minute(
                start=m * MINUTE_S,
                finished=int(fields.get("finished", 0)),
                total=Histogram.from_hash(h),
                internal_errors=int(fields.get("internal_errors", 0)),
                sandbox_faults=int(fields.get("sandbox_faults", 0)),
            )
        )
    return out
