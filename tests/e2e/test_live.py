"""Live runs through the real stack: output events while a run goes, interactive sessions over
a WebSocket (a Python REPL, EOF, kill, idle timeout, refusals, the per-key session limit)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import RedisServer, Stack, make_stack

TIMEOUT = 60


@pytest.fixture(scope="module")
def live(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API + 1 worker; at most 2 sessions per key (auth off: every client is one)."""
    s = make_stack(redis_server, tmp_path_factory.mktemp("live"), "live", workers=1,
                   extra_env={"CELLBLOCK_MAX_SESSIONS": "2"})  # fmt: skip
    yield s
    s.stop()


class Session:
    """One WebSocket session: what came, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []

    async def next(self, within: float = TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=within)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        data: dict[str, Any] = json.loads(msg.data)
        self.messages.append(data)
        return data

    async def next_of(self, kind: str) -> dict[str, Any]:
        """The next message of type `kind` (state changes come whenever they come)."""
        while (m := await self.next())["type"] != kind:
            assert m["type"] == "state", m
        return m

    async def output_until(self, text: str, within: float = TIMEOUT) -> str:
        """The program's stdout from here until it holds `text`."""
        seen = ""
        end = time.monotonic() + within
        while text not in seen:
            m = await self.next(max(0.1, end - time.monotonic()))
            assert m["type"] in ("output", "state"), m
            if m["type"] == "output" and m["stream"] == "stdout":
                seen += m["data"]
        return seen

    async def result(self) -> dict[str, Any]:
        while True:
            m = await self.next()
            if m["type"] == "result":
                return m["result"]  # type: ignore[no-any-return]


async def session(stack: Stack, spec: dict[str, Any], fn: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{stack.base}/v1/sessions") as ws:
        await ws.send_json(spec)
        s = Session(ws)
        first = await s.next()
        assert first["type"] == "session", first
        return await fn(s)


def test_python_repl(live: Stack) -> None:
    async def drive(s: Session) -> dict[str, Any]:
        await s.ws.send_json({"type": "stdin", "data": "1+1\n"})
        assert "2" in (await s.output_until("2")).split()
        await s.ws.send_bytes(b"print('a' * 3)\n")
        await s.output_until("aaa")
        await s.ws.send_json({"type": "eof"})
        return await s.result()

    spec = {"language": "python3", "source": "import code\ncode.interact(banner='', exitmsg='')\n"}
    result = asyncio.run(session(live, spec, drive))
    assert result["state"] == "finished" and result["verdict"] == "accepted", result


def post(stack: Stack, body: dict[str, Any]) -> str:
    """Submit without waiting: the submission's id."""
    resp = stack.request("POST", "/v1/submissions", body)
    assert resp.status == 201, resp.body
    return str(resp.body["id"])


async def sse(stack: Stack, sid: str) -> list[tuple[float, str, dict[str, Any]]]:
    """A submission's events as they arrive: (when, kind, data)."""
    out = []
    async with aiohttp.ClientSession() as http, http.get(f"{stack.base}/v1/submissions/{sid}/events") as resp:
        assert resp.status == 200
        kind = ""
        async for line in resp.content:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                kind = text[7:]
            elif text.startswith("data: "):
                out.append((time.monotonic(), kind, json.loads(text[6:])))
    return out


def test_output_events_come_while_the_run_goes(live: Stack) -> None:
    source = "import time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n"
    for encoding, first in (("utf-8", "first\n"), ("base64", "Zmlyc3QK")):
        text = base64.b64encode(source.encode()).decode() if encoding == "base64" else source
        body = {"language": "python3", "source": text, "stream_output": True, "encoding": encoding}
        sid = post(live, body)
        events = asyncio.run(sse(live, sid))
        outputs = [(at, data) for at, kind, data in events if kind == "output"]
        finished_at = next(at for at, kind, _ in events if kind == "finished")
        assert outputs[0][1] == {"test": 1, "stream": "stdout", "offset": 0, "size": 6, "data": first}
        assert finished_at - outputs[0][0] > 1.0, "the first line came only with the end of the run"
        view = live.request("GET", f"/v1/submissions/{sid}").body
        assert view["tests"][0]["stdout"] == ("first\nsecond\n" if encoding == "utf-8" else "Zmlyc3QKc2Vjb25kCg==")


def test_output_events_split_no_character(live: Stack) -> None:
    """A character cut between two reads of the pipe comes whole, in one event."""
    source = "import sys, time\nsys.stdout.buffer.write(b'\\xc3'); sys.stdout.flush(); time.sleep(0.3)\n" \
             "sys.stdout.buffer.write(b'\\xa9!\\n')\n"  # fmt: skip
    sid = post(live, {"language": "python3", "source": source, "stream_output": True})
    events = asyncio.run(sse(live, sid))
    assert "".join(d["data"] for _, kind, d in events if kind == "output") == "é!\n"


def test_no_output_events_unless_asked(live: Stack) -> None:
    sid = post(live, {"language": "python3", "source": "print('x')"})
    assert all(kind != "output" for _, kind, _ in asyncio.run(sse(live, sid)))


def test_eof_kill_and_results(live: Stack) -> None:
    cat = {
        "language": "python3",
        "source": "import sys\nfor line in sys.stdin:\n    print(line.upper(), end='', flush=True)\n",
    }

    async def eof(s: Session) -> dict[str, Any]:
        await s.ws.send_json({"type": "stdin", "data": "hello\n"})
        await s.output_until("HELLO")
        await s.ws.send_json({"type": "eof"})
        return await s.result()

    result = asyncio.run(session(live, cat, eof))
    assert result["verdict"] == "accepted" and result["tests"][0]["exit_code"] == 0, result

    async def kill(s: Session) -> dict[str, Any]:
        await s.ws.send_json({"type": "kill"})
        return await s.result()

    result = asyncio.run(session(live, cat, kill))
    assert result["verdict"] == "runtime_error" and result["tests"][0]["signal"] == "SIGKILL", result


def test_kill_overtakes_input_the_program_does_not_read(live: Stack, redis_server: RedisServer) -> None:
    """Input waits in Redis at most 16 entries, whatever the client sends (eof too), and a kill
    ends the run at once although that input is still unread (up to 1 MiB more waits in the API,
    which reads on to see a kill)."""
    spec = {"language": "python3", "source": "import time\nprint('up', flush=True)\ntime.sleep(30)\n",
            "limits": {"wall_time": 40}, "idle_timeout": 30}  # fmt: skip
    r = redis_server.client()

    async def flood(s: Session) -> tuple[int, float, dict[str, Any]]:
        await s.output_until("up")
        for _ in range(20):
            await s.ws.send_bytes(b"x" * 70000)  # two entries each: 1 MiB in Redis, the rest in the API
        for _ in range(100):
            await s.ws.send_json({"type": "eof"})
        await asyncio.sleep(1.5)
        pending = r.xlen(f"{live.env['CELLBLOCK_KEY_PREFIX']}:sub:{s.messages[0]['id']}:stdin")
        t0 = time.monotonic()
        await s.ws.send_json({"type": "kill"})
        return pending, time.monotonic() - t0, await s.result()

    pending, _, result = asyncio.run(session(live, spec, flood))
    assert pending <= 16, pending
    assert result["tests"][0]["signal"] == "SIGKILL" and result["tests"][0]["wall_time"] < 15, json.dumps(result)[:3000]


def test_idle_timeout_ends_the_run(live: Stack) -> None:
    spec = {"language": "python3", "source": "input()", "idle_timeout": 1}

    async def idle(s: Session) -> tuple[float, dict[str, Any]]:
        t0 = time.monotonic()
        return time.monotonic() - t0, await s.result()

    _, result = asyncio.run(session(live, spec, idle))
    assert result["verdict"] == "time_limit_exceeded", result
    assert result["tests"][0]["message"] == "idle for 1 s: no input and no output"
    assert 1.0 <= result["tests"][0]["wall_time"] < 4.0


def test_a_client_that_leaves_ends_the_run(live: Stack) -> None:
    spec = {"language": "python3", "source": "import time\nwhile True:\n    time.sleep(0.05)\n", "idle_timeout": 60}

    async def leave(s: Session) -> str:
        while (await s.next())["type"] != "state" or s.messages[-1]["state"] != "running":
            pass
        await s.ws.close()
        return str(s.messages[0]["id"])

    sid = asyncio.run(session(live, spec, leave))
    view = live.wait_state(sid, "finished", timeout=30)
    assert view["tests"][0]["signal"] == "SIGKILL", view


def test_refusals(live: Stack) -> None:
    resp = live.request("GET", "/v1/sessions")
    assert resp.status == 426 and resp.body["error"]["code"] == "upgrade_required"

    async def refused(first: Any) -> tuple[dict[str, Any], int | None]:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{live.base}/v1/sessions") as ws:
            await (ws.send_json(first) if not isinstance(first, bytes) else ws.send_bytes(first))
            msg = json.loads((await ws.receive(timeout=TIMEOUT)).data)
            await ws.receive(timeout=TIMEOUT)
            return msg, ws.close_code

    msg, code = asyncio.run(refused({"language": "cobol", "source": "x"}))
    assert (msg["type"], msg["error"]["field"], code) == ("error", "language", 4422)
    msg, code = asyncio.run(refused({"language": "python3", "source": "x", "tests": []}))
    assert (msg["error"]["field"], msg["error"]["code"], code) == ("tests", "unknown_field", 4422)
    msg, code = asyncio.run(refused({"language": "python3", "source": "x", "idle_timeout": 0}))
    assert (msg["error"]["field"], code) == ("idle_timeout", 4422)
    msg, code = asyncio.run(refused(b"\x00"))
    assert (msg["error"]["field"], code) == ("session", 4422)


def test_a_bad_message_is_refused_and_the_session_goes_on(live: Stack) -> None:
    async def drive(s: Session) -> dict[str, Any]:
        await s.ws.send_str("{not json")
        assert (await s.next_of("error"))["error"]["code"] == "malformed_json"
        await s.ws.send_json({"type": "paste"})
        assert (await s.next_of("error"))["error"]["field"] == "type"
        await s.ws.send_json({"type": "stdin", "data": "ok\n"})
        return await s.result()

    spec = {"language": "python3", "source": "print(input())"}
    result = asyncio.run(session(live, spec, drive))
    assert result["verdict"] == "accepted" and result["tests"][0]["stdout"] == "", result


def test_sessions_per_key_are_limited(live: Stack, redis_server: RedisServer) -> None:
    spec = {"language": "python3", "source": "input()"}
    # The earlier tests' sessions give their places back as their handlers end, after the close.
    places = f"{live.env['CELLBLOCK_KEY_PREFIX']}:sessions:anonymous"
    deadline = time.monotonic() + 15
    while redis_server.client().zcard(places):
        assert time.monotonic() < deadline, redis_server.client().zrange(places, 0, -1, withscores=True)
        time.sleep(0.1)

    async def three() -> int:
        async with aiohttp.ClientSession() as http:
            held = [await http.ws_connect(f"{live.base}/v1/sessions") for _ in range(2)]
            for ws in held:
                await ws.send_json(spec)
            try:
                async with http.ws_connect(f"{live.base}/v1/sessions"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status
            finally:
                for ws in held:
                    await ws.close()

    assert asyncio.run(three()) == 429
    # The places are given back when the sessions end (their handlers run on after the close
    # handshake): one more is let in soon.
    deadline = time.monotonic() + 10
    while True:
        try:
            asyncio.run(session(live, {"language": "python3", "source": "pass"}, Session.result))
            break
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 429 and time.monotonic() < deadline, exc
            time.sleep(0.1)


def rss(pid: int) -> int:
    """Resident memory of process `pid`, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_a_flood_to_a_slow_client_grows_no_memory(live: Stack, redis_server: RedisServer) -> None:
    """The program writes as fast as it can; the client reads a little, then nothing, then a
    little: the worker's, the API's and Redis's memory stay flat, the program waits for the client."""
    assert live.api is not None
    pids = [live.api.pid, live.workers[0].pid, redis_server.proc.pid]
    flood = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
    spec = {"language": "python3", "source": flood, "limits": {"output": 64 << 20, "wall_time": 60}, "idle_timeout": 30}

    async def slow(s: Session) -> tuple[list[list[int]], int]:
        samples, received = [], 0
        for second in range(6):
            if second % 2 == 0:  # a second of slow reading, a second of none
                end = time.monotonic() + 1
                while time.monotonic() < end:
                    m = await s.next()
                    received += len(m.get("data", ""))
                    await asyncio.sleep(0.05)
            else:
                await asyncio.sleep(1)
            samples.append([rss(pid) for pid in pids])
        await s.ws.send_json({"type": "kill"})
        return samples, received

    samples, received = asyncio.run(session(live, spec, slow))
    grown = [max(s[i] for s in samples[1:]) - samples[0][i] for i in range(len(pids))]
    assert all(g < 16 << 20 for g in grown), f"RSS grew by {grown} (API, worker, Redis): {samples}"
    assert received < 16 << 20, f"the client read only a little, yet {received} bytes came"


def test_the_deployment_holds_sessions_per_live_worker(redis_server: RedisServer, tmp_path: Path) -> None:
    """CELLBLOCK_SESSIONS_PER_WORKER=1 with one worker: a second session at once is a 503."""
    small = make_stack(redis_server, tmp_path, "one-session", workers=1,
                       extra_env={"CELLBLOCK_SESSIONS_PER_WORKER": "1"})  # fmt: skip

    async def two() -> int:
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{small.base}/v1/sessions") as held:
            await held.send_json({"language": "python3", "source": "input()"})
            try:
                async with http.ws_connect(f"{small.base}/v1/sessions"):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    try:
        assert asyncio.run(two()) == 503
    finally:
        small.stop()
