"""callback_url: the finished result is POSTed to a receiver the test runs, retried on failure."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import Stack, free_port


@dataclass
class Receiver:
    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_first: set[str] = field(default_factory=set)  # ids to answer 500 once
    attempts: dict[str, int] = field(default_factory=dict)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, sid: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.received):
                if body["id"] == sid:
                    return body
            time.sleep(0.05)
        pytest.fail(f"no callback for {sid} within {timeout}s (attempts: {self.attempts})")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(free_port())

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        rec.attempts[body["id"]] = rec.attempts.get(body["id"], 0) + 1
        if body["id"] in rec.fail_first and rec.attempts[body["id"]] == 1:
            return web.Response(status=500)
        rec.received.append(body)
        return web.Response(status=204)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", rec.port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield rec
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_callback_delivers_the_result(stack: Stack, receiver: Receiver) -> None:
    resp = stack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": "print('cb')", "callback_url": receiver.url()}
    )
    assert resp.status == 201
    body = receiver.wait_for(resp.body["id"])
    assert body["state"] == "finished" and body["verdict"] == "accepted" and body["stdout"] == "cb\n"
    assert receiver.attempts[resp.body["id"]] == 1


def test_callback_is_retried_after_a_failure(stack: Stack, receiver: Receiver) -> None:
    # The id is only known after creation, so make the receiver fail the first call for any id.
    receiver.fail_first = _Everything()
    resp = stack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": "print(1)", "callback_url": receiver.url()}
    )
    body = receiver.wait_for(resp.body["id"])
    assert body["verdict"] == "accepted"
    assert receiver.attempts[resp.body["id"]] == 2


class _Everything(set[str]):
    def __contains__(self, item: object) -> bool:
        return True
