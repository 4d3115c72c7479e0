"""The thin RQ glue: process a queued submission id, turn final failures into internal_error.

The job is enqueued by core/queue.py, which names `process` and `on_failure` by import path.
An interactive session's job only hands it over to the process's session host (worker/sessions.py).
Failure handling is RQ's own: an exception (a sandbox fault) or a worker that died
mid-job (StartedJobRegistry cleanup: AbandonedJobError) retries the job while
`Retry(max=CELLBLOCK_JOB_RETRIES)` allows; after the last attempt `on_failure` stores
an internal_error result, so no submission stays unfinished.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import redis
from rq import get_current_job
from rq.job import Job

from core import metrics, redis_client, store
from core import settings as config_mod
from core.keys import Keys
from core.logctx import SUBMISSION
from core.models import Result, State, Submission, Verdict
from worker import sessions
from worker.judge import SandboxFault, judge
from worker.live import LiveOutput

log = logging.getLogger("cellblock.worker")


@functools.cache
def _context() -> tuple[config_mod.Config, Keys]:
    """The worker's settings, read once per process (the environment does not change under it)."""
    cfg = config_mod.load()
    return cfg, Keys(cfg.key_prefix)


def process(sid: str) -> str:
    """RQ entry point: judge submission `sid`, store its result. Returns the verdict."""
    token = SUBMISSION.set(sid)  # every log line of this job carries the submission id
    try:
        return _process(sid)
    finally:
        SUBMISSION.reset(token)


def _process(sid: str) -> str:
    cfg, keys = _context()
    job = get_current_job()
    if job is not None:
        r: redis.Redis = job.connection
    else:
        r = redis_client.worker_client(cfg.effective_redis_url(), cfg.redis_retry)
    loaded = store.load_submission(r, keys, sid)
    if loaded is None:
        log.warning("submission %s expired before it ran", sid)
        return "expired"
    sub, state = loaded
    if state == State.FINISHED:  # a retry of a job whose first run, or another attempt, finished it
        log.info("already finished: this attempt does nothing")
        return "already finished"
    if sub.interactive:  # a live session: this process's session host runs it from here
        sessions.admit(r, cfg, keys, sub)
        return "session"
    started = time.time()
    attempt = 1 + (cfg.job_retries - (job.retries_left or 0) if job is not None and job.retries_left is not None else 0)

    # Every line names the submission already (logging context, cli/logs.py).
    log.info("started (attempt %d, %s, queued %.3fs)", attempt, sub.language, started - sub.created_at)

    events = HeldEvents(r, keys, sub, cfg.submission_ttl, cfg.max_result)
    try:
        result = judge(sub, events, cfg.max_result)
    except SandboxFault as exc:
        log.error("attempt %d: sandbox fault: %s", attempt, exc)
        metrics.stage_counter(r, keys, "sandbox_faults")
        raise
    result.attempts = attempt
    result.timings.update({"enqueued_at": sub.created_at, "started_at": started})
    if not store.finish(r, keys, sub, result, cfg.submission_ttl, events.held):
        # Another attempt finished it first (this worker was cut off long enough for the job to
        # run again elsewhere), or this one did and its reply was lost: the first result wins.
        log.warning("attempt %d: the submission is finished already; this result is dropped", attempt)
        return "finished already"
    log.info("finished: %s in %.3fs", result.verdict, time.time() - started)
    return str(result.verdict)


class HeldEvents:
    """The judge's EventSink: events wait in `held` until `flush` or the final transaction.
    A cached compile's `compiling` goes out with the first `running`, and a test's result
    with the next `running` or the result: one Redis transaction per test. A submission
    that asked for `stream_output` gets its output as it comes (worker/live.py)."""

    def __init__(self, r: redis.Redis, keys: Keys, sub: Submission, ttl: int, live_budget: int) -> None:
        self.r, self.keys, self.sub, self.sid, self.ttl = r, keys, sub, sub.id, ttl
        self.held: list[tuple[str, dict[str, Any]]] = []
        self.live_budget = live_budget  # bytes the `output` events may still take (their JSON text)
        self.live_events = store.OUTPUT_EVENTS  # `output` events the submission may still send
        self._live: LiveOutput | None = None

    def live(self, test: int) -> LiveOutput | None:
        if not self.sub.stream_output:
            return None
        if self._live is not None:
            self.live_budget -= self._live.sent
            self.live_events = 0 if self._live.stopped else self.live_events - self._live.count  # said: no more
        self._live = LiveOutput(
            self.r,
            self.keys,
            self.sid,
            self.ttl,
            self.sub.encoding,
            test,
            budget=self.live_budget,
            events=self.live_events,
        )
        return self._live

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.held.append((kind, data))

    def flush(self) -> None:
        if self.held:
            store.write_events(self.r, self.keys, self.sid, self.held, self.ttl)
            self.held.clear()


def on_failure(job: Job, connection: redis.Redis, *exc_info: Any) -> None:
    """RQ failure callback. While retries are left RQ requeues the job: do nothing.
    After the last attempt, store internal_error (never blamed on the program)."""
    if job.retries_left:
        return
    cfg, keys = _context()
    loaded = store.load_submission(connection, keys, job.id)
    if loaded is None:
        return
    sub = loaded[0]
    exc = exc_info[1] if len(exc_info) > 1 else None
    result = Result(
        sub.id,
        Verdict.INTERNAL_ERROR,
        message=f"the sandbox failed on every attempt ({type(exc).__name__ if exc else 'unknown'}); "
        "this is not the program's fault",
        attempts=cfg.job_retries + 1,
    )
    result.timings.update({"enqueued_at": sub.created_at})
    if not store.finish(connection, keys, sub, result, cfg.submission_ttl):
        return  # finished already (another attempt's result): the first result wins
    log.error(
        "submission %s: internal_error after %d attempts: %r",
        sub.id,
        cfg.job_retries + 1,
        exc,
        extra={"submission": sub.id},
    )
