"""Slow and half-open clients cannot hold the API's connections: headers not sent in time close
the connection, a body not sent in time is a 408, and many such clients at once leave the API
answering everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RedisServer, Stack, isolated_api

TIMEOUT = 2.0


@pytest.fixture
def api(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    stack = isolated_api(redis_server, tmp_path, "slow", CELLBLOCK_CLIENT_TIMEOUT=str(TIMEOUT))
    yield stack
    stack.stop()


def closed_by_server(s: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `s` within `seconds`, and what it sent before."""
    s.settimeout(seconds)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        return False, data
    except ConnectionResetError:
        pass
    return True, data


def test_half_sent_headers_are_closed_after_the_client_timeout(api: Stack) -> None:
    s = socket.create_connection(("127.0.0.1", api.port))
    try:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and nothing more
        t0 = time.monotonic()
        closed, _ = closed_by_server(s, TIMEOUT + 5)
        assert closed and time.monotonic() - t0 < TIMEOUT + 3  # aiohttp's default: an hour
    finally:
        s.close()


def test_a_trickled_body_is_408(api: Stack) -> None:
    s = socket.create_connection(("127.0.0.1", api.port))
    try:
        s.sendall(
            b"POST /v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"lang'
        )
        _, data = closed_by_server(s, TIMEOUT + 5)
        assert data.startswith(b"HTTP/1.1 408") and b"request_timeout" in data, data
    finally:
        s.close()


def test_many_idle_connections_leave_the_api_answering(api: Stack) -> None:
    held = []
    try:
        for _ in range(600):
            s = socket.create_connection(("127.0.0.1", api.port))
            s.sendall(b"GET /v1/languages HTTP/1.1\r\n")  # never finished
            held.append(s)
        t0 = time.monotonic()
        assert api.request("GET", "/v1/languages").status == 200
        assert time.monotonic() - t0 < 2
        time.sleep(TIMEOUT + 2)
        closed = sum(closed_by_server(s, 0.5)[0] for s in held)
        assert closed == len(held)  # every one of them let go
    finally:
        for s in held:
            s.close()
