"""Start one RQ worker process on the cellblock queue.

Mode `simple` (default) runs jobs inside the worker process (rq.SimpleWorker):
rq 3's rq.Worker spawns a fresh Python interpreter per job (posix_spawn + imports, tens
of ms), which would dwarf a few-millisecond jail run. Crash safety is kept by RQ itself:
the job sits in the StartedJobRegistry with a heartbeat TTL of (job timeout + a few
seconds); if the worker dies (kill -9, OOM), any live worker's maintenance pass
(every CELLBLOCK_MAINTENANCE_INTERVAL s) finds the expired entry, raises
AbandonedJobError and retries the job. Mode `fork` uses rq.Worker, for comparison.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.worker import WorkerStatus

from core import redis_client
from core.settings import Config

log = logging.getLogger("cellblock.worker")

# Added to the job timeout for the registry entry's TTL: the job itself is killed by
# RQ's death penalty at its timeout, so a longer silence means the worker is dead.
HEARTBEAT_SLACK = 5
# RQ refreshes the worker's key (3 round trips) about three times per job; with jobs of a few
# ms that is most of its Redis traffic. Refresh at most this often, unless asked for a longer TTL.
WORKER_HEARTBEAT_EVERY_S = 1.0


class CellblockWorker(SimpleWorker):
    """SimpleWorker whose abandoned jobs are noticed at timeout + HEARTBEAT_SLACK (not + 60 s)."""

    drain_timeout: float = 30.0
    _beat_at: float = float("-inf")
    _beat_ttl: int = 0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat in one round trip instead of three, and skipped when one with at
        least this TTL went out less than WORKER_HEARTBEAT_EVERY_S ago (the key then expires at
        most that much earlier than asked, against TTLs of half a minute and more)."""
        ttl = timeout or self.worker_ttl + 60
        at = time.monotonic()
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
        elif ttl > self._beat_ttl or at - self._beat_at >= WORKER_HEARTBEAT_EVERY_S:
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(timeout, pipe)
                pipe.execute()
        else:
            return
        self._beat_at, self._beat_ttl = at, ttl

    def set_state(self, state: str, pipeline: Any = None) -> None:
        """RQ's set_state, without the round trip when the worker is in that state already
        (RQ sets `idle` twice between two jobs)."""
        if pipeline is None and state == self.get_state():
            return
        super().set_state(state, pipeline)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        timeout = job.timeout if job.timeout and job.timeout > 0 else 60
        return int(timeout) + HEARTBEAT_SLACK

    def request_stop(self, signum: Any, frame: Any) -> None:
        """SIGTERM/SIGINT: take no new job, finish the one in hand, but for at most
        `drain_timeout` seconds; then a cold stop (the job goes back through RQ's retry or
        the abandoned-job check, so the submission is not lost)."""
        busy = self.get_state() == WorkerStatus.BUSY
        log.info(
            "worker: stop requested (%s); %s",
            "draining the job in hand" if busy else "idle",
            f"at most {self.drain_timeout:.0f}s" if busy else "exiting",
        )
        if busy:
            timer = threading.Timer(max(1.5, self.drain_timeout), self._drain_expired)
            timer.daemon = True
            timer.start()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]  # rq leaves it untyped

    def unsubscribe(self) -> None:
        """RQ's unsubscribe without its race. RQ sends UNSUBSCRIBE, then stops its Pub/Sub thread
        and waits for it; when the thread reads the UNSUBSCRIBE reply before the stop, it goes back
        to reading for up to 60 s (its sleep_time), and the worker hangs that long on its way out
        (seen as a worker SIGKILLed by `cellblock up`). Stop the thread's loop first: the reply
        then ends its last read."""
        thread = self.pubsub_thread
        if thread is None:
            return
        log.debug("worker: unsubscribing from %s", self.pubsub_channel_name)
        thread.stop(timeout=0)  # the flag only; the UNSUBSCRIBE reply below wakes its read
        self.pubsub.unsubscribe()
        thread.join(timeout=1)
        self.pubsub.close()

    def _drain_expired(self) -> None:
        if self.get_state() == WorkerStatus.BUSY:
            log.warning("worker: drain timeout (%.0fs) passed with a job in hand: cold stop", self.drain_timeout)
            os.kill(os.getpid(), signal.SIGTERM)  # RQ's second-signal handler: cold shutdown


def warm_up_jail() -> None:
    """Run /bin/true once, so the jail's per-process setup (host probe, slots, builder) is
    paid before the first job and a broken jail shows in the log at start. A failure is
    logged, not fatal: jobs then fail as sandbox faults (retried, then internal_error)."""
    from jail import JailError, RunSpec, run

    t0 = time.monotonic()
    try:
        result = run(RunSpec(argv=["/bin/true"]))
    except (JailError, OSError) as exc:
        log.error("jail warm-up failed: %s: %s", type(exc).__name__, exc)
        return
    log.info("jail warm-up: %s in %.1f ms", result.status, (time.monotonic() - t0) * 1000)


def run_worker(cfg: Config, burst: bool = False) -> None:
    """Block processing jobs until SIGTERM/SIGINT (warm shutdown: the current job finishes)."""
    # Parse the language files and probe toolchain versions before the first job.
    from policies.languages import available_languages

    langs = available_languages()
    log.info("worker languages: %s", ", ".join(sorted(langs)))
    warm_up_jail()
    conn = redis_client.worker_client(cfg.effective_redis_url(), cfg.redis_retry)
    queue = Queue(cfg.queue, connection=conn)
    cls: type[Worker] | type[SimpleWorker] = CellblockWorker if cfg.worker_mode == "simple" else Worker
    # rq runs maintenance (the abandoned-job check) only between dequeues; a dequeue blocks
    # for worker_ttl - 15 s, so tie worker_ttl to the maintenance interval.
    worker = cls(
        [queue],
        connection=conn,
        maintenance_interval=cfg.maintenance_interval,
        worker_ttl=cfg.maintenance_interval + 15,
    )
    if isinstance(worker, CellblockWorker):
        worker.drain_timeout = cfg.drain_timeout
    try:
        worker.work(burst=burst, logging_level=cfg.log_level, with_scheduler=False)
    finally:
        from worker import sessions

        sessions.shutdown()  # the sessions this process holds end before it does
