"""GET /v1/sessions: an interactive run over a WebSocket.

The client's first message (text, within INIT_TIMEOUT_S) is the session as JSON: a run-mode
submission (language, source or files, args, compile_options, limits, encoding) and
`idle_timeout`. It is validated like a submission and queued like one (the run happens on a
worker, worker/sessions.py). Then, both ways at once:

  client -> server   binary frame: bytes for the program's stdin
                     {"type": "stdin", "data": "..."} (text, or base64 with encoding base64)
                     {"type": "eof"} closes the program's stdin; {"type": "kill"} ends the run
  server -> client   {"type": "session", "id"}, {"type": "state", "state", ...},
                     {"type": "output", "stream", "data", "offset"},
                     {"type": "result", "result": <the submission's view>}, then close 1000;
                     {"type": "error", "error": {...}} for a refused message; a refused
                     session then closes with 4000 + the HTTP status the refusal would have.

Before the upgrade, a session is refused as any request is (401, 429...), and also past the
key's CELLBLOCK_MAX_SESSIONS open sessions (429) or the deployment's CELLBLOCK_SESSIONS_PER_WORKER
per live worker (503). Back-pressure both ways: input waits in Redis at most MAX_PENDING
entries (then this stops reading the socket: TCP holds the client back); output runs at most
the worker's window ahead of what the client has received, which this counts in `Keys.acked`
(by the offsets received: a lost event cannot stall the window), deleting what it delivered. A
client that leaves ends the run (`Keys.kill`, a flag that overtakes pending input).
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.client_exceptions import ClientConnectionResetError
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from api import auth, intake, streams
from api.errors import ApiError, TooMany, invalid, refusal_of
from api.state import CONFIG, EVENTS, KEYS, LANGUAGES, PRINCIPAL, REDIS
from api.validation import parse_session
from api.wakeups import Wake
from core import store
from core.keys import Keys
from core.models import Result, State, Submission, Verdict, unb64
from core.views import read_view

log = logging.getLogger("cellblock.api")

INIT_TIMEOUT_S = 10.0  # for the first message
HEARTBEAT_S = 20.0
CLOSE_TIMEOUT_S = 2.0
TEARDOWN_S = 2.0  # the most a session's tasks are waited for once cancelled
MAX_FRAME = 1 << 20  # the largest message a client may send
PIECE = 64 * 1024  # input bytes per Redis entry
MAX_PENDING = 16  # input entries the program has not read yet, before more input waits here...
AHEAD = 1 << 20  # ...and bytes of it that wait here, before the socket is not read any more
PENDING_POLL_S = 0.02  # how often a held-back client's input looks for room
CHECK_S = 2.0  # with nothing heard, look at the session's state (and its worker's lease) this often
PLACE_S = 60  # a session's place is forgotten this long after its API process last renewed it
ANONYMOUS = "anonymous"  # whose sessions they are when the API runs without keys
FLAG_TTL_S = 86400  # of a session's kill flag and input stream, should the worker never delete them

# Take a place among a key's open sessions and the deployment's: drop the forgotten, refuse
# at either limit (0: the key's, -1: the deployment's), add to both.
_PLACE_LUA = """
local now, member, expires = tonumber(ARGV[1]), ARGV[4], tonumber(ARGV[5])
for i = 1, 2 do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now) end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
for i = 1, 2 do
  redis.call('ZADD', KEYS[i], expires, member)
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
return 1
"""

# Sends one of the session's events ("state", "output", "result": the view, or "error": a
# refused message's error object) to the client.
Render = Callable[[str, dict[str, Any]], Awaitable[None]]
# One message of the client (a text frame's str, a binary frame's bytes) -> bytes for the
# program's stdin, "eof" or "kill", or None; raises Refused (the session goes on) or Close for
# a message it cannot take.
Parse = Callable[[str | bytes], bytes | str | None]


class Refused(Exception):
    """A message the session refuses: sent to the client as an error, the session goes on."""

    def __init__(self, error: ApiError) -> None:
        self.error = error


class Close(Exception):
    """A message that ends the session: `notice` is sent, then the socket closes with `code`
    (and the run is killed)."""

    def __init__(self, code: int, reason: str, notice: dict[str, Any] | None = None) -> None:
        self.code, self.reason, self.notice = code, reason, notice


def error_message(error: ApiError) -> dict[str, Any]:
    return {"type": "error", "error": {"status": error.status, "code": error.code, "field": error.field,
                                       "reason": error.reason}}  # fmt: skip


@dataclass(frozen=True)
class Place:
    """A session's place among its key's open sessions and the deployment's."""

    owner: str
    member: str


async def open_session(request: web.Request) -> web.StreamResponse:
    """GET /v1/sessions (WebSocket)."""
    ws = socket()
    place = await hold_place(request, ws)
    try:
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=INIT_TIMEOUT_S)
        except TimeoutError:
            await refuse(ws, invalid("session", f"send the session as JSON within {INIT_TIMEOUT_S:g} s", "timeout"))
            return ws
        if first.type is not WSMsgType.TEXT:
            if first.type in (WSMsgType.BINARY, WSMsgType.PING, WSMsgType.PONG):
                await refuse(ws, invalid("session", "the first message must be the session as JSON text"))
            return ws
        try:
            accepted = parse_session(_json(first.data), request.app[CONFIG], request.app[LANGUAGES], request[PRINCIPAL])
            await intake.take(request, [accepted])
        except Exception as exc:
            refusal = refusal_of(exc, MAX_FRAME)
            if refusal is None:
                raise
            await refuse(ws, refusal)
            return ws
        await ws.send_json({"type": "session", "id": accepted.submission.id})
        delivered = await relay(request, ws, place, accepted.submission, _input_v1(accepted.submission), _render_v1(ws))
        await release_place(request, place)  # the session is over: not after the closing handshake
        if delivered:
            await ws.close()
        return ws
    finally:
        await release_place(request, place)


def socket() -> web.WebSocketResponse:
    """A session's socket: pinged every HEARTBEAT_S (a client gone silent is gone), its closing
    handshake given CLOSE_TIMEOUT_S; it answers the subprotocol `cellblock.v1` when offered
    (by a browser, beside the one that carries its key: api/auth.py)."""
    return web.WebSocketResponse(
        heartbeat=HEARTBEAT_S, timeout=CLOSE_TIMEOUT_S, max_msg_size=MAX_FRAME, protocols=(auth.WS_PROTOCOL,)
    )


async def hold_place(request: web.Request, ws: web.WebSocketResponse) -> Place:
    """Before the upgrade: refuse what is no WebSocket, or past the process's streams, the key's
    sessions or the deployment's. Returns the place taken, to release when the session ends."""
    if not ws.can_prepare(request).ok:
        raise ApiError(426, "upgrade_required", "this is a WebSocket endpoint: connect with Upgrade: websocket")
    if "Idempotency-Key" in request.headers:  # its request is the upgrade, not the session sent after it
        raise invalid("Idempotency-Key", "sessions do not take one: a live session is not retried, open a new one")
    cfg, r, keys = request.app[CONFIG], request.app[REDIS], request.app[KEYS]
    if request.app[EVENTS].watching >= cfg.max_streams:
        raise TooMany(f"{cfg.max_streams} streams open on this API process; retry later", 5, 503, "overloaded")
    p = request[PRINCIPAL]
    place = Place(p.id if p else ANONYMOUS, uuid.uuid4().hex)
    workers = int(await r.scard(WORKERS_BY_QUEUE_KEY % cfg.queue))
    most = cfg.sessions_per_worker * max(1, workers)
    now = time.time()
    argv = (now, cfg.max_sessions, most, place.member, now + PLACE_S, PLACE_S)
    taken = int(await r.eval(_PLACE_LUA, 2, keys.sessions(place.owner), keys.all_sessions(), *map(str, argv)))
    if taken == 0:
        raise TooMany(f"{cfg.max_sessions} sessions open for this key, at most {cfg.max_sessions}", 5,
                      code="too_many_sessions")  # fmt: skip
    if taken < 0:
        raise TooMany(f"{most} sessions open on this deployment ({cfg.sessions_per_worker} per live worker); "
                      "retry later", 5, 503, "overloaded")  # fmt: skip
    return place


async def _renew_place(r: Any, keys: Keys, place: Place) -> None:
    until = time.time() + PLACE_S
    async with r.pipeline(transaction=False) as pipe:
        for key in (keys.sessions(place.owner), keys.all_sessions()):
            pipe.zadd(key, {place.member: until}, xx=True)
            pipe.expire(key, PLACE_S)
        await pipe.execute()


async def release_place(request: web.Request, place: Place) -> None:
    keys = request.app[KEYS]
    try:
        async with request.app[REDIS].pipeline(transaction=False) as pipe:
            pipe.zrem(keys.sessions(place.owner), place.member)
            pipe.zrem(keys.all_sessions(), place.member)
            await pipe.execute()
    except Exception as exc:  # forgotten on its own when its time is up
        log.warning("releasing a session place: %s", exc)


async def refuse(ws: web.WebSocketResponse, error: ApiError) -> None:
    """Tell the client why, then close with 4000 + the HTTP status of the refusal."""
    await ws.send_json(error_message(error))
    await ws.close(code=4000 + error.status, message=error.code.encode()[:120])


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the message is not valid JSON", "body") from None


def _input_v1(sub: Submission) -> Parse:
    def parse(text: str | bytes) -> bytes | str | None:
        if isinstance(text, bytes):  # a binary frame: bytes for stdin, as they are
            return text
        try:
            message = _json(text)
        except ApiError as exc:
            raise Refused(exc) from None
        if not isinstance(message, dict) or message.get("type") not in ("stdin", "eof", "kill"):
            raise Refused(invalid("type", "a message is {type: stdin, data}, {type: eof} or {type: kill}"))
        if message["type"] != "stdin":
            return str(message["type"])
        data = message.get("data")
        if not isinstance(data, str):
            raise Refused(invalid("data", "must be a string"))
        if sub.encoding == "base64":
            try:
                return unb64(data)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                raise Refused(invalid("data", "is not valid base64", "invalid_base64")) from None
        try:
            return data.encode()
        except UnicodeEncodeError:
            raise Refused(invalid("data", "is not valid UTF-8 (lone surrogate)")) from None

    return parse


def _render_v1(ws: web.WebSocketResponse) -> Render:
    async def render(kind: str, data: dict[str, Any]) -> None:
        if kind == "output":
            await ws.send_json({"type": "output", "stream": data["stream"], "data": data["data"],
                                "offset": data["offset"]})  # fmt: skip
        elif kind == "state":
            await ws.send_json({"type": "state", **data})
        elif kind == "result":
            await ws.send_json({"type": "result", "result": data})
        elif kind == "error":
            await ws.send_json({"type": "error", "error": data})

    return render


async def relay(
    request: web.Request, ws: web.WebSocketResponse, place: Place, sub: Submission, parse: Parse, render: Render
) -> bool:
    """Both ways until the session's result is sent (True), or the client left or Redis failed
    (False: the run is killed, the socket closed)."""
    r, keys = request.app[REDIS], request.app[KEYS]
    async with request.app[EVENTS].watch(sub.id) as waiter:  # before the first read: nothing is missed
        inbound = asyncio.create_task(_client_to_program(ws, r, keys, sub.id, parse, render))
        outbound = asyncio.create_task(_program_to_client(request, place, sub, render, waiter))
        delivered = False
        try:
            await asyncio.wait([inbound, outbound], return_when=asyncio.FIRST_COMPLETED)
            for task in (outbound, inbound):
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            delivered = outbound.done()
        except (ConnectionResetError, ClientConnectionResetError):
            pass  # the client went away: the run is ended below
        except redis.exceptions.RedisError as exc:
            log.warning("session %s: Redis failed under it: %s", sub.id, exc)
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"the queue (Redis) is unavailable")
        finally:
            for task in (inbound, outbound):
                task.cancel()
            await asyncio.wait([inbound, outbound], timeout=TEARDOWN_S)
            if not delivered:  # the client left, or this API is going away, before the result
                await asyncio.shield(_kill(r, keys, sub.id))
    return delivered


async def _kill(r: Any, keys: Keys, sid: str) -> None:
    try:
        await r.set(keys.kill(sid), "1", ex=FLAG_TTL_S)
    except redis.exceptions.RedisError as exc:  # the run ends at its idle or wall time
        log.warning("session %s: asking for its end: %s", sid, exc)


async def _tell(r: Any, keys: Keys, sid: str, entry: dict[str, bytes], over: asyncio.Event) -> None:
    """Append `entry` to the session's input, then wait while the program has MAX_PENDING
    entries unread (and the session is not `over`)."""
    async with r.pipeline(transaction=True) as pipe:
        pipe.xadd(keys.stdin(sid), entry)
        pipe.expire(keys.stdin(sid), FLAG_TTL_S)
        pipe.xlen(keys.stdin(sid))
        pending = int((await pipe.execute())[-1])
    while pending >= MAX_PENDING and not over.is_set():
        await asyncio.sleep(PENDING_POLL_S)
        pending = int(await r.xlen(keys.stdin(sid)))


async def _client_to_program(
    ws: web.WebSocketResponse, r: Any, keys: Keys, sid: str, parse: Parse, render: Render
) -> None:
    """The client's messages to the program's stdin, in order, until the client leaves. Input
    the program does not take waits here, at most AHEAD bytes: the socket is read on meanwhile,
    so a kill behind it is seen, until that much waits; then TCP holds the client back."""
    ahead: asyncio.Queue[bytes | str] = asyncio.Queue()
    waiting = [0]  # bytes in `ahead`
    moved = asyncio.Condition()
    # Set when this ends: the writer stops waiting for room. Not only a cancel: a cancel that
    # comes during a Redis command was seen to be lost (redis-py), leaving the writer polling
    # for room that never comes, and this function waiting for it.
    over = asyncio.Event()

    async def to_redis() -> None:
        while not over.is_set():
            data = await ahead.get()
            if isinstance(data, str):
                await _tell(r, keys, sid, {"eof": b"1"}, over)
            else:
                for at in range(0, len(data), PIECE):
                    await _tell(r, keys, sid, {"d": data[at : at + PIECE]}, over)
            async with moved:
                waiting[0] -= len(data)
                moved.notify_all()

    writer = asyncio.create_task(to_redis())
    writer.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen: no "never retrieved"
    try:
        async for msg in ws:
            if writer.done():
                writer.result()  # its failure (Redis) ends the session
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                try:
                    data = parse(msg.data)
                except Refused as exc:
                    await render("error", error_message(exc.error)["error"])
                    continue
                except Close as exc:
                    if exc.notice is not None:
                        await ws.send_json(exc.notice)
                    await ws.close(code=exc.code, message=exc.reason.encode())
                    return
            else:
                continue
            if data == "kill":
                await _kill(r, keys, sid)
            elif data is not None:
                async with moved:
                    await moved.wait_for(lambda: waiting[0] < AHEAD or writer.done())
                    waiting[0] += len(data)
                ahead.put_nowait(data)
    finally:
        over.set()
        writer.cancel()
        await asyncio.wait([writer], timeout=TEARDOWN_S)


async def _program_to_client(request: web.Request, place: Place, sub: Submission, render: Render, waiter: Any) -> None:
    """The session's events to the client until its result. What the client received is counted
    by the offsets of the output it got (the worker's window) and deleted from Redis."""
    r, keys = request.app[REDIS], request.app[KEYS]
    stream, last = keys.events(sub.id), "0-0"
    ends: dict[str, int] = {}  # stream -> the offset after the last output received
    renew_at = time.monotonic() + CHECK_S
    while True:
        entries, _ = await streams._read(r, stream, last, request.app[EVENTS].generation)
        delivered = []
        for entry_id, fields in entries:
            last = entry_id.decode()
            kind, data = fields[b"event"].decode(), json.loads(fields[b"data"])
            if kind == "finished":
                view = await read_view(r, keys, sub.id)
                await render("result", view or {"id": sub.id, "state": "finished"})
                return
            await render(kind, data)
            if kind == "output":
                ends[data["stream"]] = max(ends.get(data["stream"], 0), data["offset"] + data["size"])
                delivered.append(entry_id)
        if delivered:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(keys.acked(sub.id), sum(ends.values()), ex=FLAG_TTL_S)
                pipe.xdel(stream, *delivered)  # delivered once: a session's output is not kept
                await pipe.execute()
        if time.monotonic() >= renew_at:
            renew_at = time.monotonic() + CHECK_S
            await _renew_place(r, keys, place)
        if len(entries) == streams.BATCH:
            continue
        if await waiter.next(CHECK_S) is Wake.TIMEOUT:
            await _check_worker(r, keys, sub, request.app[CONFIG].submission_ttl)


async def _check_worker(r: Any, keys: Keys, sub: Submission, ttl: int) -> None:
    """A session that is compiling or running without its worker's lease lost its worker: finish
    it with internal_error (the client then gets that result), and ask for its run's end should
    the worker only be slow."""
    state, lease = await asyncio.gather(r.hget(keys.submission(sub.id), "state"), r.exists(keys.lease(sub.id)))
    if lease or state not in (State.COMPILING.encode(), State.RUNNING.encode()):
        return
    log.error("session %s: its worker stopped renewing its lease", sub.id)
    result = Result(sub.id, Verdict.INTERNAL_ERROR, message="the worker running this session stopped; "
                    "this is not the program's fault")  # fmt: skip
    await r.set(keys.kill(sub.id), "1", ex=FLAG_TTL_S)
    await store.finish_async(r, keys, sub, result, ttl)  # unless the worker's result came first
