"""Queueing a submission: store it and enqueue its RQ job in ONE transaction.

The API calls `submit`; the job names the worker's entry points by their import path, so
the API never imports the worker. An RQ job carries only the submission id; everything
else is in the submission hash.
"""

from __future__ import annotations

import redis
from rq import Callback, Queue, Retry
from rq.job import Job

from core import store
from core.keys import Keys
from core.models import Submission
from core.settings import Config

# The worker's entry points (worker/jobs.py), by import path.
PROCESS = "worker.jobs.process"
ON_FAILURE = "worker.jobs.on_failure"
# The result lives in our own hash. RQ keeps its finished job a minute: deleting it at once
# costs the worker six more Redis round trips per job.
FINISHED_JOB_TTL = 60


def queue_key(cfg: Config) -> str:
    """The Redis list RQ keeps the queue's waiting job ids in (its LLEN is the queue's depth)."""
    return Queue.redis_queue_namespace_prefix + cfg.queue


def submit(r: redis.Redis, cfg: Config, subs: list[tuple[Submission, int]], owner: str | None = None) -> None:
    """Store each submission (and its owner, the API key's id) and queue its job (job id =
    submission id), all in ONE transaction: a crash between the two can neither lose a job
    nor orphan a submission. `subs` pairs each submission with its job timeout in seconds."""
    keys = Keys(cfg.key_prefix)
    q = Queue(cfg.queue, connection=r)
    with r.pipeline(transaction=True) as pipe:
        pipe.multi()  # explicit: RQ then adds its commands to our MULTI instead of starting one
        for sub, timeout in subs:
            store.stage_new(pipe, keys, sub, cfg.submission_ttl, owner)
            q.enqueue_call(
                PROCESS,
                args=(sub.id,),
                job_id=sub.id,
                timeout=timeout,
                result_ttl=FINISHED_JOB_TTL,
                failure_ttl=cfg.submission_ttl,
                retry=Retry(max=cfg.job_retries) if cfg.job_retries > 0 else None,
                on_failure=Callback(ON_FAILURE),
                pipeline=pipe,
            )
        pipe.execute()


def withdraw(r: redis.Redis, cfg: Config, sid: str) -> bool:
    """Take submission `sid` back if no worker has started it: its job out of the queue (LREM is
    atomic against a worker's dequeue), then the submission, its owner record, events and job
    hash. True: it will never run. False: a worker has it (or it is waiting for a retry)."""
    if not Queue(cfg.queue, connection=r).remove(sid):
        return False
    keys = Keys(cfg.key_prefix)
    r.delete(keys.submission(sid), keys.owner(sid), keys.events(sid), Job.key_for(sid))
    return True
