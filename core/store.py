"""Reading and writing submissions, results and events in Redis.

The `stage_*` functions only queue commands on a pipeline, so they work with both the
sync client (worker) and redis.asyncio (API): the caller executes the pipeline, and a
multi-key change is always one MULTI/EXEC. Events go to a stream per submission, so a
late SSE reader replays everything from the start.

The first result wins. A worker cut off from Redis past its job's heartbeat has its job run
again elsewhere; when it comes back, its late events and result must not touch the
submission the other attempt finished. So no event is written to a finished submission (a
script checks the state and writes in one step, `stage_events`), and `finish` writes only if
the submission is still unfinished when its transaction runs (WATCH).
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
# output events: at most OUTPUT_EVENTS of them, their text bounded by CELLBLOCK_MAX_RESULT
# (worker/live.py). So at the default CELLBLOCK_MAX_TESTS (200) a replay always starts at
# the first event; EVENTS_MAXLEN caps the count anyway so that no submission can grow one key
# without bound (the oldest go first).
OUTPUT_EVENTS = 8_000
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


# Append events and move the state, unless the submission is finished or gone: one step in Redis.
# KEYS: the hash, the stream. ARGV: the finished state, TTL, stream cap, channel ('' when no
# one is to be woken), the id (the wake-up's message), new state ('' none), progress ('' none),
# then each event's kind and data.
# EVAL (not EVALSHA): a Redis that just took over after a failover has no script cache.
_EVENTS_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'state') == ARGV[1] then return 0 end
for i = 8, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[i], 'data', ARGV[i + 1])
end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'state', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'progress', ARGV[7]) end
redis.call('EXPIRE', KEYS[2], ARGV[2])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
"""


def stage_events(
    pipe: Any, keys: Keys, sid: str, events: Sequence[tuple[str, dict[str, Any]]], ttl: int, wake: bool = True
) -> None:
    """Append `events` (kind: state, test, finished; data) to the submission's stream, and
    set its TTL once; a `state` event also moves the hash's `state` (and `progress`, for a
    test's run). `wake`: tell the stream's readers (api/wakeups.py), if any. Nothing is
    written to a finished submission (the module's docstring says why), nor to one that is
    gone (expired, or taken back)."""
    if not events:
        return
    state = progress = ""  # the last state (and progress) wins
    flat: list[str] = []
    for kind, data in events:
        if kind == "state":
            state = data["state"]
            if "test" in data:
                progress = json.dumps({"test": data["test"], "of": data["of"]})
        flat += [kind, json.dumps(data)]
    channel = keys.events_channel(sid) if wake else ""
    args = [str(State.FINISHED), ttl, EVENTS_MAXLEN, channel, sid, state, progress, *flat]
    pipe.eval(_EVENTS_SCRIPT, 2, keys.submission(sid), keys.events(sid), *args)


def write_events(r: redis.Redis, keys: Keys, sid: str, events: Sequence[tuple[str, dict[str, Any]]], ttl: int) -> None:
    """`stage_events` on its own."""
    with r.pipeline(transaction=False) as pipe:
        stage_events(pipe, keys, sid, events, ttl)
        pipe.execute()


def finish(
    r: redis.Redis,
    keys: Keys,
    sub: Submission,
    result: Result,
    ttl: int,
    events: Sequence[tuple[str, dict[str, Any]]] = (),
) -> bool:
    """Write the `events` not yet written, store the result, mark finished, publish `finished`
    (stream and channel), queue the callback: one transaction, if the submission is still
    unfinished when it runs. False: it was finished already (or is gone); nothing written."""
    key = keys.submission(sub.id)
    written = False

    def write(pipe: Any) -> None:  # run again by redis-py if the hash changed before EXEC
        nonlocal written
        written = unfinished(pipe.hget(key, "state"))
        if written:
            pipe.multi()
            stage_finish(pipe, keys, sub, result, ttl, events)

    r.transaction(write, key)
    return written


async def finish_async(r: Any, keys: Keys, sub: Submission, result: Result, ttl: int) -> bool:
    """`finish` on a redis.asyncio client."""
    key = keys.submission(sub.id)

    async def write(pipe: Any) -> bool:
        if not unfinished(await pipe.hget(key, "state")):
            return False
        pipe.multi()
        stage_finish(pipe, keys, sub, result, ttl)
        return True

    return bool(await r.transaction(write, key, value_from_callable=True))


def unfinished(state: bytes | str | None) -> bool:
    """Whether a submission in `state` (None: gone) may still get its result."""
    return state is not None and text(state) != State.FINISHED


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
