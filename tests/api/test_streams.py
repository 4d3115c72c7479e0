"""Event streams (SSE) against a real Redis and API: many idle streams cost no Redis connection,
the number of streams is capped, a bad Last-Event-ID is a 422, a stream resumed at or after its
end ends at once, and a client that leaves early is no error."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.streams import KEEPALIVE_JITTER, KEEPALIVE_S
from tests.conftest import RedisServer, Stack, error_of, isolated_api

STREAMS = 130  # above the 100 connections redis-py's pool allowed by default


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """An API without workers (submissions stay queued), on its own prefix and queue."""
    stack = isolated_api(redis_server, tmp_path, "sse", CELLBLOCK_MAX_STREAMS=str(STREAMS))
    yield stack
    stack.stop()


def open_stream(stack: Stack, sid: str, headers: str = "") -> tuple[socket.socket, bytes]:
    """A raw SSE request; returns the socket and what came before the first blank line after
    the response's headers (the status line and, for a stream, its first event)."""
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=20)
    request = f"GET /v1/submissions/{sid}/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
    s.sendall(request.encode())
    data = b""
    while data.count(b"\r\n\r\n") < 1 or (b" 200 " in data.split(b"\r\n", 1)[0] and b"\n\n" not in _body(data)):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return s, data


def _body(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""


def read_all(s: socket.socket, seconds: float) -> bytes:
    """Everything until the server closes (the stream ended), or fails after `seconds`."""
    s.settimeout(seconds)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_idle_streams_hold_no_redis_connection_and_are_capped(api: Stack) -> None:
    sid = api.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}).body["id"]
    streams = []
    try:
        for _ in range(STREAMS):
            s, head = open_stream(api, sid)
            assert b" 200 " in head.split(b"\r\n", 1)[0] and b"event: state" in head, head
            streams.append(s)
        # Every stream now waits for its submission's next event. Before, each waited in an
        # XREAD BLOCK on a pooled connection, and past 100 the API answered everyone 503.
        t0 = time.monotonic()
        created = api.request("POST", "/v1/submissions", {"language": "python3", "source": "print(2)"})
        assert created.status == 201, created.body
        assert api.request("GET", f"/v1/submissions/{sid}").status == 200
        assert api.request("GET", "/v1/health").body["redis"] is True
        assert time.monotonic() - t0 < 3
        # One stream more than CELLBLOCK_MAX_STREAMS: 503 with Retry-After, not a hang.
        s, head = open_stream(api, sid)
        s.close()
        assert head.startswith(b"HTTP/1.1 503") and b"Retry-After" in head, head
        streams.pop().close()
        deadline = time.monotonic() + KEEPALIVE_S * (1 + KEEPALIVE_JITTER) + 3
        while True:  # the server notices the closed stream at its next write (keep-alive)
            s, head = open_stream(api, sid)
            if b" 200 " in head.split(b"\r\n", 1)[0]:
                streams.append(s)
                break
            s.close()
            assert time.monotonic() < deadline, head
            time.sleep(0.5)
    finally:
        for s in streams:
            s.close()


def test_last_event_id_is_checked_and_a_stream_resumed_past_its_end_ends(api: Stack, redis_server: RedisServer) -> None:
    sid = api.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}).body["id"]
    for bad in (
        "garbage",
        "1-2-3",
        "-1",
        "9" * 30 + "-0",
        "99999999999999999999-0",
        f"{(1 << 64) - 1}-{(1 << 64) - 1}",
    ):
        s, head = open_stream(api, sid, f"Last-Event-ID: {bad}\r\n")
        s.close()
        assert head.startswith(b"HTTP/1.1 422") and b'"field": "Last-Event-ID"' in head, (bad, head)
    # Finish it as a worker would (no worker here): the stream's last event is `finished`.
    r = redis_server.client()
    prefix = api.env["CELLBLOCK_KEY_PREFIX"]
    finished_id = r.xadd(f"{prefix}:sub:{sid}:events", {"event": "finished", "data": '{"state": "finished"}'})
    r.hset(f"{prefix}:sub:{sid}", "state", "finished")
    for last in (finished_id.decode(), "99999999999999-0"):
        s, head = open_stream(api, sid, f"Last-Event-ID: {last}\r\n")
        rest = head + read_all(s, 5)  # before: no end until the stream's TTL
        s.close()
        assert b" 200 " in rest.split(b"\r\n", 1)[0] and b"event:" not in rest, rest


def test_a_client_that_leaves_early_is_no_error(api: Stack) -> None:
    sid = api.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}).body["id"]
    for _ in range(5):
        s, head = open_stream(api, sid)
        assert b"event: state" in head
        s.close()
    time.sleep(KEEPALIVE_S * (1 + KEEPALIVE_JITTER) + 1)  # the next keep-alive write meets the closed sockets
    log = (api.log_dir / "api.log").read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    assert 'cellblock_internal_errors_total{source="api"} 0.0' in api.request("GET", "/metrics").body
    resp = api.request("GET", "/v1/submissions/" + "0" * 32 + "/events")  # well-formed, unknown
    assert resp.status == 404 and error_of(resp)["field"] == "id"
