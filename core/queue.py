"""Queueing a submission: store it and enqueue its RQ job in ONE transaction.

The API calls `submit`; the job names the worker's entry points by their import path, so
the API never imports the worker. An RQ job carries only the submission id; everything
else is in the submission hash.

Redis replicates asynchronously: a primary that dies can take its last writes with it. With
CELLBLOCK_REDIS_REPLICAS = n > 0, `submit` returns only once n replicas have the submissions
(WAIT), so an accepted submission survives a failover to one of them. If they do not
acknowledge within REPLICATION_WAIT_S, the submissions are taken back and NotReplicated raised
(the API answers 503: nothing was queued). If a worker started one meanwhile, the request is
accepted whole after all, once the replicas have it; if Redis fails while this is decided,
Unconfirmed says that the submissions may or may not survive (the API answers 503 and keeps
the request's Idempotency-Key, so that a retry with it gets these ids, not new ones).
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
# How long `submit` waits for CELLBLOCK_REDIS_REPLICAS replicas to acknowledge a submission.
REPLICATION_WAIT_S = 1.0


class NotReplicated(Exception):
    """The submissions did not reach enough replicas in time, and were taken back."""


class Unconfirmed(Exception):
    """The submissions were queued, but Redis failed before their replicas acknowledged."""


def queue_key(cfg: Config) -> str:
    """The Redis list RQ keeps the queue's waiting job ids in (its LLEN is the queue's depth)."""
    return Queue.redis_queue_namespace_prefix + cfg.queue


def submit(r: redis.Redis, cfg: Config, subs: list[tuple[Submission, int]], owner: str | None = None) -> None:
    """Store each submission (and its owner, the API key's id) and queue its job (job id =
    submission id), all in ONE transaction: a crash between the two can neither lose a job
    nor orphan a submission. `subs` pairs each submission with its job timeout in seconds.
    With CELLBLOCK_REDIS_REPLICAS, returns once that many replicas have them (module doc)."""
    _enqueue(r, cfg, subs, owner)
    if not cfg.redis_replicas:
        return
    keys = Keys(cfg.key_prefix)
    try:
        if replicated(r, keys.submission(subs[-1][0].id), cfg):
            return
        # Taken back, or gone (a failover took them): either way, not queued.
        back = [(sub, t) for sub, t in subs if withdraw(r, cfg, sub.id) or not r.exists(keys.submission(sub.id))]
        if len(back) == len(subs):
            raise NotReplicated(f"the submission did not reach {cfg.redis_replicas} Redis replica(s) in time")
        # A worker started one meanwhile: it runs, so the request is accepted whole after all.
        _enqueue(r, cfg, back, owner)
        if not replicated(r, keys.submission(subs[-1][0].id), cfg):
            raise Unconfirmed(f"the submission did not reach {cfg.redis_replicas} Redis replica(s) in time")
    except redis.RedisError as exc:
        raise Unconfirmed(f"Redis failed before the replicas acknowledged the submission: {exc}") from exc


def _enqueue(r: redis.Redis, cfg: Config, subs: list[tuple[Submission, int]], owner: str | None) -> None:
    """The submissions stored and their jobs queued: one MULTI/EXEC."""
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


def replicated(r: redis.Redis, key: str, cfg: Config) -> bool:
    """Whether every write made before this call is on CELLBLOCK_REDIS_REPLICAS replicas (within
    REPLICATION_WAIT_S). WAIT counts the replicas that have its connection's last write: the
    pipeline's first command is a write (the submission `key`'s TTL set again), so that WAIT,
    on the same connection, covers everything before it."""
    with r.pipeline(transaction=False) as pipe:
        pipe.expire(key, cfg.submission_ttl)
        pipe.wait(cfg.redis_replicas, int(REPLICATION_WAIT_S * 1000))
        # Retried on another connection (a failover), EXPIRE finds no key there: nothing of its
        # own to wait for, so WAIT would answer at once. Only a key still there counts.
        touched, acked = pipe.execute()
    return bool(touched) and int(acked) >= cfg.redis_replicas


def withdraw(r: redis.Redis, cfg: Config, sid: str) -> bool:
    """Take submission `sid` back if no worker has started it: its job out of the queue (LREM is
    atomic against a worker's dequeue), then the submission, its owner record, events and job
    hash. True: it will never run. False: a worker has it (or it is waiting for a retry)."""
    if not Queue(cfg.queue, connection=r).remove(sid):
        return False
    keys = Keys(cfg.key_prefix)
    r.delete(keys.submission(sid), keys.owner(sid), keys.events(sid), Job.key_for(sid))
    return True
