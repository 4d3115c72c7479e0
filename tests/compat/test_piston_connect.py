"""Piston's interactive `GET /api/v2/connect` over a WebSocket, as Piston's CLI speaks it
(../shared/compat-spec.md B.7), on cellblock's sessions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.conftest import Stack

TIMEOUT = 60


async def converse(url: str, messages: list[Any], until_close: bool = True) -> tuple[list[dict[str, Any]], int | None]:
    """Send `messages` (dicts as JSON, str raw, bytes as a binary frame, ("wait", text) to wait
    for `text` in stdout first); what came back, and the close code."""
    got: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        stdout = ""
        for m in messages:
            if isinstance(m, tuple):
                while m[1] not in stdout:
                    msg = await ws.receive(timeout=TIMEOUT)
                    assert msg.type is aiohttp.WSMsgType.TEXT, msg
                    got.append(json.loads(msg.data))
                    if got[-1]["type"] == "data" and got[-1]["stream"] == "stdout":
                        stdout += got[-1]["data"]
            elif isinstance(m, str):
                await ws.send_str(m)
            elif isinstance(m, bytes):
                await ws.send_bytes(m)
            else:
                await ws.send_json(m)
        while until_close:
            msg = await ws.receive(timeout=TIMEOUT)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            got.append(json.loads(msg.data))
        return got, ws.close_code


def url(stack: Stack, token: str) -> str:
    return f"ws://127.0.0.1:{stack.port}/piston/{token}/api/v2/connect"


INIT = {"type": "init", "language": "python", "version": "*",
        "files": [{"content": "while True:\n    line = input()\n    print(line[::-1], flush=True)\n"}]}  # fmt: skip


def test_a_conversation_then_a_signal(cstack: Stack, token: str) -> None:
    got, code = asyncio.run(converse(url(cstack, token), [
        INIT,
        {"type": "data", "stream": "stdin", "data": "hello\n"}, ("wait", "olleh"),
        {"type": "data", "stream": "stdin", "data": "abc\n"}, ("wait", "cba"),
        {"type": "signal", "signal": "SIGKILL"},
    ]))  # fmt: skip
    assert got[0]["type"] == "runtime" and got[0]["language"] == "python", got
    assert {"type": "stage", "stage": "run"} in got
    assert "".join(m["data"] for m in got if m["type"] == "data") == "olleh\ncba\n"
    assert got[-1] == {"type": "exit", "stage": "run", "code": None, "signal": "SIGKILL"}, got
    assert code == 4999


def test_a_compiled_program_has_two_stages(cstack: Stack, token: str) -> None:
    source = '#include <stdio.h>\nint main(){char s[64]; if(scanf("%63s",s)==1) printf("got %s\\n", s); return 3;}'
    init = {"type": "init", "language": "c", "version": "*", "files": [{"content": source}]}
    got, code = asyncio.run(converse(url(cstack, token), [init, {"type": "data", "stream": "stdin", "data": "x\n"}]))
    kinds = [(m["type"], m.get("stage")) for m in got if m["type"] in ("stage", "exit")]
    assert kinds == [("stage", "compile"), ("exit", "compile"), ("stage", "run"), ("exit", "run")], got
    assert got[-1] == {"type": "exit", "stage": "run", "code": 3, "signal": None}
    assert {"type": "data", "stream": "stdout", "data": "got x\n"} in got and code == 4999

    broken = {"type": "init", "language": "c", "version": "*", "files": [{"content": "int main( {"}]}
    got, code = asyncio.run(converse(url(cstack, token), [broken]))
    assert got[-1]["type"] == "exit" and got[-1]["stage"] == "compile" and got[-1]["code"] != 0, got
    assert any(m["type"] == "data" and "error" in m["data"] for m in got) and code == 4999


def test_protocol_errors_close_with_pistons_codes(cstack: Stack, token: str) -> None:
    def closed(messages: list[Any]) -> tuple[list[dict[str, Any]], int | None]:
        return asyncio.run(converse(url(cstack, token), messages))

    assert closed([{"type": "data", "stream": "stdin", "data": "x"}]) == ([], 4003)
    assert closed([INIT, INIT])[1] == 4000
    assert closed([INIT, {"type": "data", "stream": "stdout", "data": "x"}])[1] == 4004
    assert closed([INIT, {"type": "signal", "signal": "SIGNOPE"}])[1] == 4005
    got, code = closed([{**INIT, "language": "cobol"}])
    assert code == 4002 and got == [{"type": "error", "message": "cobol-* runtime is unknown"}]
    got, code = closed([INIT, "{not json"])
    assert code == 4002 and got[-1]["type"] == "error"
    got, code = asyncio.run(converse(url(cstack, token), []))  # nothing within a second
    assert (got, code) == ([], 4001)
    # Piston parses a binary frame as JSON too, every one: a whole conversation in them works
    stdin = {"type": "data", "stream": "stdin", "data": "hey\n"}
    kill = {"type": "signal", "signal": "SIGKILL"}
    got, code = closed([json.dumps(m).encode() for m in (INIT, stdin)] + [("wait", "yeh"), json.dumps(kill).encode()])
    assert got[0]["type"] == "runtime" and code == 4999, (got, code)
    assert got[-1] == {"type": "exit", "stage": "run", "code": None, "signal": "SIGKILL"}, got
    got, code = closed([b"\xff\xfe not json"])
    assert code == 4002 and got[-1]["type"] == "error", (got, code)
    got, code = closed([json.dumps(INIT).encode(), b"\xff\xfe not json"])  # after init too
    assert code == 4002 and got[-1]["type"] == "error", (got, code)


def test_a_key_is_needed(cstack: Stack) -> None:
    async def refused() -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(f"ws://127.0.0.1:{cstack.port}/piston/api/v2/connect"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(refused()) == 401
