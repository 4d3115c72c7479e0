"""`cellblock submit FILE --interactive`: a live session in the terminal, over GET /v1/sessions.

The terminal's side of api/sessions.py's protocol: the session goes first (FILE as its source,
base64 when it is not UTF-8), then both ways at once until the result:
- stdin is copied to the program as it comes (a line at a time from a terminal, which stays in
  line mode: a REPL works), in binary frames; its end (Ctrl-D) becomes {"type": "eof"};
- `output` events are written to this process's stdout and stderr as the bytes they are;
- Ctrl-C sends {"type": "kill"}; a second one quits without waiting for the result.
Then a one-line summary on stderr (verdict, exit code or signal, cpu and wall time, message).

Exit status as `cellblock submit`'s: 0 accepted, 1 another verdict, 2 a refused session (an
HTTP error before the upgrade, or an error message and a 4000 + status close after it) or a
lost connection; 130 when a second Ctrl-C quit.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from cli.submit import SubmitError, as_text, encoding_of, guess_language

READ_SIZE = 64 * 1024  # stdin bytes read at once, at most: one binary frame
READ_AHEAD = 16  # frames read from stdin ahead of the socket: a fast stdin (a file) waits
CONNECT_TIMEOUT_S = 30.0  # to connect and upgrade; the session itself has no time bound here
HEARTBEAT_S = 30.0  # a ping this often: an API gone silent ends the session
QUIT = 130  # a second Ctrl-C: 128 + SIGINT, what a shell reports for it
PREFIX = "cellblock submit"

TraceHook = Callable[[aiohttp.ClientSession, SimpleNamespace, aiohttp.TraceRequestEndParams], Awaitable[None]]


class Refused(Exception):
    """The session was refused (before or after the upgrade): why, for stderr."""


def interactive(file: Path, language: str | None, idle_timeout: float | None, url: str, key: str = "") -> int:
    """Run `file` as a session at the API `url`, wired to this terminal: the exit status."""
    base = url.rstrip("/")
    try:
        source = file.read_bytes()
        encoding = encoding_of([source])
        spec: dict[str, Any] = {
            "language": language or guess_language(file, base),
            "source": as_text(source, encoding),
            "encoding": encoding,
        }
        if idle_timeout is not None:
            spec["idle_timeout"] = idle_timeout
        return asyncio.run(_session(base, spec, key))
    except Refused as exc:
        print(f"{PREFIX}: session refused: {exc}", file=sys.stderr)
    except (SubmitError, OSError) as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
    except KeyboardInterrupt:  # before the session began: no run to kill
        return QUIT
    return 2


async def _session(base: str, spec: dict[str, Any], key: str) -> int:
    refusals: list[bytes] = []
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_keeper(refusals))
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout, trace_configs=[trace]) as http:
        try:
            ws = await http.ws_connect(
                f"{base}/v1/sessions",
                headers={"Authorization": f"Bearer {key}"} if key else None,
                heartbeat=HEARTBEAT_S,
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise Refused(_http_refusal(exc, refusals[-1] if refusals else b"", base)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            why = str(exc) or type(exc).__name__  # a TimeoutError says nothing itself
            raise SubmitError(f"cannot reach the API at {base}: {why} (is `cellblock up` running?)") from None
        async with ws:
            await ws.send_json(spec)
            return await Terminal(ws, spec["encoding"]).run()


def _keeper(refusals: list[bytes]) -> TraceHook:
    """A trace hook that keeps the body of an answer that is no upgrade: aiohttp's handshake
    error drops it, and it says why (the API's {"error": {...}})."""

    async def keep(_: aiohttp.ClientSession, __: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        if params.response.status != 101:
            try:
                refusals.append(await params.response.read())
            except aiohttp.ClientError:
                pass

    return keep


def _http_refusal(exc: aiohttp.WSServerHandshakeError, body: bytes, base: str) -> str:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.status} and no API error (is {base} a cellblock API?)"
    after = exc.headers.get("Retry-After") if exc.headers else None
    return describe(error) + (f" (retry after {after}s)" if after else "")


def describe(error: dict[str, Any]) -> str:
    """An API error object ({status, code, field, reason}) as one line."""
    field = f"{error['field']}: " if error.get("field") else ""
    return f"HTTP {error.get('status')} {error.get('code')}: {field}{error.get('reason')}"


class Terminal:
    """One session's two directions (stdin -> program, its output -> stdout/stderr) and Ctrl-C."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, encoding: str) -> None:
        self.ws, self.encoding = ws, encoding
        self.started = False  # the session was taken ({"type": "session"} came)
        self.refusal: dict[str, Any] | None = None  # an error before that: why the session was refused
        self.interrupts = 0
        self.quitting = False
        self.chores: set[asyncio.Task[bool]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        typing = asyncio.create_task(self._stdin_to_session())
        receiving = asyncio.create_task(self._session_to_terminal())
        loop.add_signal_handler(signal.SIGINT, self._interrupt, receiving)
        try:
            return await receiving
        except asyncio.CancelledError:
            if not self.quitting:
                raise
            print(f"{PREFIX}: quit before the result (the run is killed)", file=sys.stderr)
            return QUIT
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            typing.cancel()
            await asyncio.gather(typing, *self.chores, return_exceptions=True)

    def _interrupt(self, receiving: asyncio.Task[int]) -> None:
        """Ctrl-C: the first kills the run (its result still comes), the second quits."""
        self.interrupts += 1
        if self.interrupts > 1:
            self.quitting = True
            receiving.cancel()
            return
        print(f"\n{PREFIX}: killing the run (Ctrl-C again to quit)", file=sys.stderr)
        task = asyncio.create_task(self._send({"type": "kill"}))
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    async def _send(self, message: dict[str, Any] | bytes) -> bool:
        """One message to the session; False when the socket is gone (the session is over)."""
        try:
            if isinstance(message, bytes):
                await self.ws.send_bytes(message)
            else:
                await self.ws.send_json(message)
        except (ConnectionError, aiohttp.ClientError):
            return False
        return True

    async def _stdin_to_session(self) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue(READ_AHEAD)
        # A thread, not loop.add_reader: epoll takes no regular file, and stdin may be one.
        threading.Thread(target=_read_stdin, args=(asyncio.get_running_loop(), queue), daemon=True).start()
        while data := await queue.get():
            if not await self._send(data):
                return
        await self._send({"type": "eof"})

    async def _session_to_terminal(self) -> int:
        """The session's events until its result: the exit status."""
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            kind = event.get("type")
            if kind == "session":
                self.started = True
            elif kind == "output":
                self._write(event["stream"], event["data"])
            elif kind == "error" and not self.started:
                self.refusal = event["error"]
            elif kind == "error":  # a message of ours refused; the session goes on
                print(f"{PREFIX}: {describe(event['error'])}", file=sys.stderr)
            elif kind == "result":
                return self._finish(event["result"])
        code = self.ws.close_code or 0
        if code >= 4000:
            raise Refused(describe(self.refusal) if self.refusal else f"closed with {code}")
        raise SubmitError(f"the connection closed before the session's result (code {code})")

    def _bytes(self, data: str) -> bytes:
        return base64.b64decode(data) if self.encoding == "base64" else data.encode()

    def _write(self, stream: str, data: str) -> None:
        out = sys.stderr.buffer if stream == "stderr" else sys.stdout.buffer
        out.write(self._bytes(data))
        out.flush()

    def _finish(self, result: dict[str, Any]) -> int:
        if result.get("compile_output"):
            self._write("stderr", result["compile_output"])
        sys.stdout.flush()
        print(summary(result), file=sys.stderr)
        return 0 if result.get("verdict") == "accepted" else 1


def summary(result: dict[str, Any]) -> str:
    """One line: the verdict, how the run ended, its cpu and wall time, and any message."""
    line = f"verdict: {result.get('verdict') or result.get('state')}"
    tests = result.get("tests") or []
    test = tests[0] if tests else {}
    if test:
        ended = f"signal {test['signal']}" if test.get("signal") else f"exit {test.get('exit_code')}"
        line += f" ({ended}, {test.get('cpu_time', 0):.3f}s cpu, {test.get('wall_time', 0):.3f}s wall)"
    messages = [m for m in (result.get("message"), test.get("message")) if m]
    return line + "".join(f": {m}" for m in messages)


def _read_stdin(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
    """In a thread: stdin's bytes as they come onto `queue` (waiting for room), then b"" at its end."""
    while True:
        try:
            data = os.read(0, READ_SIZE)
        except OSError:  # no stdin (EBADF), or a broken one: its end
            data = b""
        try:
            asyncio.run_coroutine_threadsafe(queue.put(data), loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):  # the loop is gone: the session is over
            return
        if not data:
            return
