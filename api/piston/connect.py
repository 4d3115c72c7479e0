"""Piston's `GET /api/v2/connect`: an interactive run over a WebSocket, in Piston's words, on
cellblock's sessions (api/sessions.py: the same queue, worker, limits and back-pressure).

Piston's protocol (../shared/compat-spec.md B.7): the client sends `{"type": "init", ...}` with
`/execute`'s fields within INIT_TIMEOUT_S (else close 4001); the server answers `runtime`, then
per stage `stage`, `data` chunks and `exit`, and closes 4999 "Job Completed". The client writes
`{"type": "data", "stream": "stdin", "data"}` and may send `{"type": "signal", "signal"}`, which
here ends the run (SIGKILL whatever the name: Piston's own signal never reached the process).
Errors close with Piston's codes: 4000 a second init, 4003 anything before init, 4004 data for
another stream, 4005 an unknown signal, 4002 after `{"type": "error", "message"}` otherwise.

Where cellblock differs, and why: the compile stage's output comes with its `exit` at the end
of that stage only when the compile failed (a worker compiles without streaming it); `init`'s
stdin is ignored as Piston ignores it; the run's output counts against the run's output limit
(Piston streams it uncapped), and idling CELLBLOCK_SESSION_IDLE_TIMEOUT ends it.
"""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

from aiohttp import WSMsgType, web

from api import intake, sessions
from api.errors import refusal_of
from api.piston import requests
from api.piston.requests import PistonError
from api.sessions import Close, Render
from api.state import CONFIG, LANGUAGES, PRINCIPAL
from core.models import Submission, TestCase

log = logging.getLogger("cellblock.api")

INIT_TIMEOUT_S = 1.0  # Piston's


async def connect(request: web.Request) -> web.StreamResponse:
    """GET /api/v2/connect (WebSocket)."""
    ws = sessions.socket()
    place = await sessions.hold_place(request, ws)
    try:
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=INIT_TIMEOUT_S)
        except TimeoutError:
            await ws.close(code=4001, message=b"Initialization Timeout")
            return ws
        if first.type not in (WSMsgType.TEXT, WSMsgType.BINARY):  # Piston parses either as JSON
            return ws
        try:
            message = _message(first.data)
            if message.get("type") != "init":
                await ws.close(code=4003, message=b"Not yet initialized")
                return ws
            execution = requests.parse(message, request.app[CONFIG], request.app[LANGUAGES], request[PRINCIPAL])
            sub = execution.accepted.submission
            _as_session(sub, request.app[CONFIG].session_idle_timeout)
            await intake.take(request, [execution.accepted])
        except Exception as exc:
            if isinstance(exc, PistonError):
                text = exc.message
            elif (refusal := refusal_of(exc, sessions.MAX_FRAME)) is not None:  # a refusal, Redis away
                text = requests.refusal(refusal).message
            else:
                raise
            await ws.send_json({"type": "error", "message": text})
            await ws.close(code=4002, message=b"Notified Error")
            return ws
        runtime = execution.runtime
        await ws.send_json({"type": "runtime", "language": runtime.language, "version": runtime.version})
        delivered = await sessions.relay(request, ws, place, sub, _parse, _render(ws, runtime.cellblock.compiled))
        await sessions.release_place(request, place)  # the session is over: not after the closing handshake
        if delivered:
            await ws.close(code=4999, message=b"Job Completed")
        return ws
    finally:
        await sessions.release_place(request, place)


def _as_session(sub: Submission, idle_timeout: float) -> None:
    """/execute's submission made a session: no stdin (it is typed), output as text."""
    sub.interactive, sub.idle_timeout = True, idle_timeout
    sub.tests = [TestCase(b"")]
    sub.encoding = "utf-8"


def _message(text: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise PistonError("the message is not valid JSON") from None
    if not isinstance(message, dict):
        raise PistonError("a message is a JSON object with a type")
    return message


def _notified(text: str) -> Close:
    return Close(4002, "Notified Error", {"type": "error", "message": text})


def _parse(text: str | bytes) -> bytes | str | None:
    """A client's message after `init`, as Piston reads it: JSON, whether the frame is text or binary."""
    try:
        message = _message(text)
    except PistonError as exc:
        raise _notified(exc.message) from None
    kind = message.get("type")
    if kind == "init":
        raise Close(4000, "Already Initialized")
    if kind == "data":
        if message.get("stream") != "stdin":
            raise Close(4004, "Can only write to stdin")
        data = message.get("data")
        if not isinstance(data, str):
            raise _notified("data must be a string")
        return data.encode("utf-8", "replace")
    if kind == "signal":
        name = message.get("signal")
        if not isinstance(name, str) or name not in signal.Signals.__members__:
            raise Close(4005, "Invalid signal")
        return "kill"
    raise _notified(f"unknown message type {kind!r}")


def _render(ws: web.WebSocketResponse, compiled: bool) -> Render:
    stage = ["compile" if compiled else "run"]

    async def begin(name: str) -> None:
        stage[0] = name
        await ws.send_json({"type": "stage", "stage": name})

    async def render(kind: str, data: dict[str, Any]) -> None:
        if kind == "state" and data.get("state") == "compiling" and compiled:
            await begin("compile")
        elif kind == "state" and data.get("state") == "running":
            if compiled:
                await ws.send_json({"type": "exit", "stage": "compile", "code": 0, "signal": None})
            await begin("run")
        elif kind == "output":
            await ws.send_json({"type": "data", "stream": data["stream"], "data": data["data"]})
        elif kind == "result":
            await _end(ws, data, stage[0])
        elif kind == "error":
            await ws.send_json({"type": "error", "message": data.get("reason", "")})

    return render


async def _end(ws: web.WebSocketResponse, view: dict[str, Any], stage: str) -> None:
    """The last stage's `exit`: a failed compile's, with its output, or the run's."""
    if view.get("verdict") == "compilation_error":
        if view.get("compile_output"):
            await ws.send_json({"type": "data", "stream": "stderr", "data": view["compile_output"]})
        await ws.send_json({"type": "exit", "stage": "compile", "code": view.get("compile_exit_code"), "signal": None})
        return
    tests = view.get("tests") or [{}]
    code, sig = tests[0].get("exit_code"), tests[0].get("signal")
    await ws.send_json({"type": "exit", "stage": stage, "code": code, "signal": sig})
