"""Reading and writing submissions, results and events in Redis.

The `stage_*` functions only queue commands on a pipeline, so they work with both the
sync client (worker) and redis.asyncio (API): the caller executes the pipeline, and a
multi-key change is always one MULTI/EXEC. Events go to a stream per submission, so a
late SSE reader replays everything from the start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis

from core import metrics
from core.keys import Keys
from core.models import Result, State, Submission


def text(reply: bytes | str) -> str:
    """A Redis reply as text (the clients answer bytes; the type stubs allow str too)."""
    return reply.decode() if isinstance(reply, bytes) else reply


# A stream per submission holds 2 events per test and a few, and with `stream_output` its
# output events (their bytes bounded by CELLBLOCK_MAX_RESULT, worker/live.py); cap the count
# anyway so that no submission can grow one key without bound (the oldest go first).
EVENTS_MAXLEN = 10_000


def stage_new(pipe: Any, keys: Keys, sub: Submission, ttl: int, owner: str | None = None) -> None:
    """Store a new submission in state `queued` with its first event, and the id of the API
    key that owns it (None: the API runs without keys)."""
    key = keys.submission(sub.id)
    pipe.hset(key, "spec", json.dumps(sub.to_json()))
    pipe.expire(key, ttl)
    if owner is not None:
        pipe.set(keys.owner(sub.id), owner, ex=ttl)
    # Sets `state`. Nobody can be reading a stream that did not exist: no wake-up to send.
    stage_events(pipe, keys, sub.id, [("state", {"state": str(State.QUEUED)})], ttl, wake=False)


def load_submission(r: redis.Redis, keys: Keys, sid: str) -> tuple[Submission, str] | None:
    """The submission and its current state, or None when unknown/expired."""
    spec, state = r.hmget(keys.submission(sid), ["spec", "state"])
    if spec is None:
        return None
    assert state is not None, "stage_new writes the state with the spec"
    return Submission.from_json(json.loads(spec)), text(state)


def stage_events(
    pipe: Any, keys: Keys, sid: str, events: Sequence[tuple[str, dict[str, Any]]], ttl: int, wake: bool = True
) -> None:
    """Append `events` (kind: state, test, finished; data) to the submission's stream, and
    set its TTL once; a `state` event also moves the hash's `state` (and `progress`, for a
    test's run). `wake`: tell the stream's readers (api/wakeups.py), if any."""
    stream = keys.events(sid)
    moved: dict[str, str] = {}  # one HSET for all of them: the last state (and progress) wins
    for kind, data in events:
        if kind == "state":
            moved["state"] = data["state"]
            if "test" in data:
                moved["progress"] = json.dumps({"test": data["test"], "of": data["of"]})
        pipe.xadd(stream, {"event": kind, "data": json.dumps(data)}, maxlen=EVENTS_MAXLEN, approximate=True)
    if moved:
        pipe.hset(keys.submission(sid), mapping=moved)
    if events:
        pipe.expire(stream, ttl)
        if wake:
            pipe.publish(keys.events_channel(sid), sid)


def write_events(r: redis.Redis, keys: Keys, sid: str, events: Sequence[tuple[str, dict[str, Any]]], ttl: int) -> None:
    """`stage_events` in one transaction of its own."""
    with r.pipeline(transaction=True) as pipe:
        stage_events(pipe, keys, sid, events, ttl)
        pipe.execute()


def finish(
    r: redis.Redis,
    keys: Keys,
    sub: Submission,
    result: Result,
    ttl: int,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> None:
    """Write the `events` not yet written, store the result, mark finished, publish `finished`
    (stream and channel), queue the callback: one transaction."""
    with r.pipeline(transaction=True) as pipe:
        stage_finish(pipe, keys, sub, result, ttl, events)
        pipe.execute()


def stage_finish(
    pipe: Any,
    keys: Keys,
    sub: Submission,
    result: Result,
    ttl: int,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> None:
    """`finish`'s commands, queued on a transaction's pipeline (sync or asyncio)."""
    result.timings["finished_at"] = time.time()
    body = json.dumps(result.to_json())
    finished = ("finished", {"state": str(State.FINISHED), "verdict": str(result.verdict)})
    stage_events(pipe, keys, sub.id, [*events, finished], ttl)  # before the state below: it is the last
    key = keys.submission(sub.id)
    pipe.hset(key, mapping={"state": str(State.FINISHED), "result": body})
    pipe.expire(key, ttl)
    pipe.publish(keys.finished(), sub.id)
    if sub.callback_url:
        pipe.xadd(keys.callbacks(), {"id": sub.id, "url": sub.callback_url}, maxlen=100_000, approximate=True)
    metrics.stage_finished(pipe, keys, sub, result)  # counted in the same transaction as the result
