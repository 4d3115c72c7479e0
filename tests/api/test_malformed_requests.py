"""What a client malforms is its own fault: a body that does not decode, a connection that
goes away mid-body, a header of bytes that are not UTF-8, a malformed request line or header
are answered as refusals (or not at all, when nobody is left to answer), never as the API's
500, never counted as its internal errors, never written to its log as tracebacks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.conftest import RedisServer, Stack, isolated_api

BODY = b'{"language": "python3", "source": "print(1)"}'


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = isolated_api(redis_server, tmp_path_factory.mktemp("malformed"), "malformed")
    yield stack
    stack.stop()


def exchange(port: int, raw: bytes, close_after_send: bool = False) -> bytes:
    """Send `raw` on a fresh connection; what came back until the server closed (nothing if we
    close first)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        if close_after_send:
            return b""
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return data


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
        + body
    )  # fmt: skip


def internal_errors(api: Stack) -> float:
    text = api.request("GET", "/metrics").body
    line = next(x for x in text.splitlines() if x.startswith('cellblock_internal_errors_total{source="api"}'))
    return float(line.split()[-1])


def test_a_body_its_content_encoding_does_not_decode_is_a_400(api: Stack) -> None:
    for path in ("/v1/submissions", "/v1/submissions/batch", "/judge0/submissions", "/piston/api/v2/execute"):
        answer = exchange(api.port, post(path, b"abcd", b"Content-Encoding: gzip"))
        assert answer.startswith(b"HTTP/1.1 400"), (path, answer)
        assert b"could not be read" in answer and b"gzip" in answer, (path, answer)


def test_a_client_gone_mid_body_is_nobodys_fault(api: Stack) -> None:
    before = internal_errors(api)
    for _ in range(5):
        exchange(api.port, post("/v1/submissions", BODY)[:-20], close_after_send=True)
    # Nothing to wait for when it works: watch for 3 s (a 500 counted and logged, as it was,
    # shows within milliseconds of the close).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert internal_errors(api) == before
        assert "Traceback" not in api.logs() and "unhandled error" not in api.logs()
        time.sleep(0.2)


def test_an_idempotency_key_of_bytes_that_are_not_utf8_is_a_key(api: Stack) -> None:
    ids = []
    for _ in range(2):
        answer = exchange(api.port, post("/v1/submissions", BODY, b"Idempotency-Key: k\xff\xfe"))
        assert answer.startswith(b"HTTP/1.1 201"), answer
        ids.append(answer.split(b'"id": "')[1].split(b'"')[0])
    assert ids[0] == ids[1]  # the same bytes, the same key: the retry gets the first one's id


def test_a_session_refuses_an_idempotency_key(api: Stack) -> None:
    async def refused(path: str) -> int:
        async with aiohttp.ClientSession() as http:
            try:
                async with http.ws_connect(f"ws://127.0.0.1:{api.port}{path}", headers={"Idempotency-Key": "k1"}):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    for path, status in (("/v1/sessions", 422), ("/piston/api/v2/connect", 400)):  # Piston refuses with 400s
        assert asyncio.run(refused(path)) == status, path


def test_requests_aiohttp_cannot_parse_are_refused_and_not_logged(api: Stack) -> None:
    malformed = [
        b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: \x7f\r\n\r\n",
        b"GET /v1/he\x00alth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        post("/v1/submissions", b"abcd", b"Transfer-Encoding: gzip"),
        post("/v1/submissions", b"abcd", b"Content-Encoding: deflate"),
    ]
    for raw in malformed:
        answer = exchange(api.port, raw)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0], (raw, answer)
    assert api.request("GET", "/v1/health").status in (200, 503)  # still answering
    log = api.logs()
    assert "Traceback" not in log and "Error handling request" not in log, log
