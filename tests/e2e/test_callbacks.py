"""callback_url: the finished result is POSTed to a receiver the test runs, signed (Standard
Webhooks), retried on failure, never redirected, and never sent where the address rule refuses.

The receivers listen on 127.0.0.1, which a callback may reach only when the operator allows it:
the stacks here set CELLBLOCK_CALLBACK_ALLOW=127.0.0.1/32, except `bare`, an API with the
default (public addresses only). No test sends anything anywhere but the loopback.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from core import apikeys, models, store
from core.keys import Keys
from core.models import Result, Submission, Verdict
from tests.conftest import RedisServer, Stack, error_of, free_port, make_stack, start_api_only

ALLOW_LOOPBACK = {"CELLBLOCK_CALLBACK_ALLOW": "127.0.0.1/32", "CELLBLOCK_CALLBACK_ATTEMPTS": "3"}
ATTEMPTS = 3


@dataclass
class Call:
    """One POST a receiver got: its headers (lower-case names) and its body as sent."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    received: list[dict[str, Any]] = field(default_factory=list)  # bodies taken (answered 204)
    calls: list[Call] = field(default_factory=list)  # every POST, taken or not
    fail_first: bool = False  # answer 500 to the first POST of each submission
    redirect_to: str | None = None  # answer every POST with a 307 to this URL
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

    def calls_of(self, sid: str) -> list[Call]:
        return [c for c in self.calls if c.headers.get("webhook-id") == sid]


def serve(rec: Receiver) -> Iterator[Receiver]:
    """Run `rec`'s aiohttp server on 127.0.0.1 in a thread of its own while the caller yields."""

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        rec.calls.append(Call({k.lower(): v for k, v in request.headers.items()}, raw))
        body = await request.json()
        rec.attempts[body["id"]] = rec.attempts.get(body["id"], 0) + 1
        if rec.redirect_to is not None:
            return web.Response(status=307, headers={"Location": rec.redirect_to})
        if rec.fail_first and rec.attempts[body["id"]] == 1:
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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver(free_port()))


@pytest.fixture
def other() -> Iterator[Receiver]:
    """A second receiver, on another port."""
    yield from serve(Receiver(free_port()))


@pytest.fixture(scope="module")
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API (keys off) + 2 workers whose callbacks may reach 127.0.0.1."""
    s = make_stack(redis_server, tmp_path_factory.mktemp("callbacks"), "callbacks", 2, ALLOW_LOOPBACK)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kstack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API (keys required) + 1 worker whose callbacks may reach 127.0.0.1."""
    env = {**ALLOW_LOOPBACK, "CELLBLOCK_AUTH": "required"}
    s = make_stack(redis_server, tmp_path_factory.mktemp("callbacks-keyed"), "callbacks-keyed", 1, env)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bare(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API with the default rule: callbacks go to public addresses only. No worker: a submission
    it wrongly took would never finish, so not even a regression sends a callback anywhere."""
    name = uuid.uuid4().hex[:8]
    env = {"CELLBLOCK_CALLBACK_ALLOW": "", "CELLBLOCK_KEY_PREFIX": f"cb-bare-{name}", "CELLBLOCK_QUEUE": f"q-{name}"}
    s = start_api_only(redis_server.url, tmp_path_factory.mktemp("callbacks-bare"), env)
    yield s
    s.stop()


def keys_of(s: Stack) -> Keys:
    return Keys(s.env["CELLBLOCK_KEY_PREFIX"])


def api_log_line(s: Stack, *words: str, timeout: float = 30) -> str:
    """The first line of the API's log holding every one of `words` (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in (s.log_dir / "api.log").read_text(errors="replace").splitlines():
            if all(w in line for w in words):
                return line
        time.sleep(0.1)
    pytest.fail(f"no API log line with {words} in {timeout}s\n{s.logs()}")


def verify(secret: str, call: Call) -> Any:
    """The receiver's side of Standard Webhooks: the body, when its signature is the secret's."""
    return Webhook(secret).verify(call.body, call.headers)


def test_callback_delivers_the_result_signed_with_the_deployment_secret(stack: Stack, receiver: Receiver) -> None:
    resp = stack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": "print('cb')", "callback_url": receiver.url()}
    )
    assert resp.status == 201
    sid = resp.body["id"]
    body = receiver.wait_for(sid)
    assert body["state"] == "finished" and body["verdict"] == "accepted" and body["stdout"] == "cb\n"
    assert receiver.attempts[sid] == 1
    # Made without a key: signed with the deployment's secret, which `cellblock keys webhook-secret` prints.
    with redis.Redis.from_url(stack.redis_url) as r:
        secret = apikeys.webhook_secret(r, keys_of(stack))
    assert secret.startswith("whsec_")
    (call,) = receiver.calls_of(sid)
    assert call.headers["webhook-id"] == sid
    assert verify(secret, call) == body
    with pytest.raises(WebhookVerificationError):  # a body changed on the way does not verify
        Webhook(secret).verify(call.body.replace(b"cb", b"xx"), call.headers)


def test_callback_is_retried_after_a_failure_with_the_same_webhook_id(stack: Stack, receiver: Receiver) -> None:
    receiver.fail_first = True
    resp = stack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": "print(1)", "callback_url": receiver.url()}
    )
    sid = resp.body["id"]
    body = receiver.wait_for(sid)
    assert body["verdict"] == "accepted"
    assert receiver.attempts[sid] == 2
    with redis.Redis.from_url(stack.redis_url) as r:
        secret = apikeys.webhook_secret(r, keys_of(stack))
    calls = receiver.calls_of(sid)
    # One delivery, one id (the receiver can drop a duplicate); each attempt signed on its own.
    assert len(calls) == 2 and {c.headers["webhook-id"] for c in calls} == {sid}
    assert [verify(secret, c) for c in calls] == [body, body]


def test_keyed_callback_is_signed_with_the_keys_secret(kstack: Stack, receiver: Receiver) -> None:
    with redis.Redis.from_url(kstack.redis_url) as r:
        key = apikeys.create_key(r, keys_of(kstack), name="hooks")
        deployment = apikeys.webhook_secret(r, keys_of(kstack))
    assert key.webhook_secret.startswith("whsec_") and key.webhook_secret != deployment
    resp = kstack.request(
        "POST",
        "/v1/submissions",
        {"language": "python3", "source": "print('k')", "callback_url": receiver.url()},
        headers={"Authorization": f"Bearer {key.token}"},
    )
    assert resp.status == 201, resp.body
    sid = resp.body["id"]
    body = receiver.wait_for(sid)
    (call,) = receiver.calls_of(sid)
    assert verify(key.webhook_secret, call) == body
    with pytest.raises(WebhookVerificationError):  # not the deployment's: each key its own
        verify(deployment, call)


def test_a_redirect_is_not_followed(stack: Stack, receiver: Receiver, other: Receiver) -> None:
    receiver.redirect_to = other.url()
    resp = stack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": "print(2)", "callback_url": receiver.url()}
    )
    sid = resp.body["id"]
    api_log_line(stack, sid, "gave up")
    assert receiver.attempts[sid] == ATTEMPTS  # a 307 is a failed attempt, retried like a 500
    assert "HTTP 307" in api_log_line(stack, sid, "redirect")
    assert other.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://[::ffff:127.0.0.1]:{port}/x",
        "http://localhost:{port}/x",
        "https://LOCALHOST./x",
        "http://127.1:{port}/x",
        "http://0.0.0.0:{port}/x",
    ],
)
def test_a_callback_to_a_refused_address_is_422_at_submit(bare: Stack, url: str) -> None:
    body = {"language": "python3", "source": "print(3)", "callback_url": url.format(port=free_port())}
    resp = bare.request("POST", "/v1/submissions", body)
    err = error_of(resp)
    assert resp.status == 422 and err["field"] == "callback_url" and err["code"] == "forbidden_destination", err


def test_a_name_that_resolves_to_a_refused_address_is_refused_at_delivery(bare: Stack, receiver: Receiver) -> None:
    # A name is only resolved when the callback is delivered (no DNS on the request path): a
    # callback_url naming one is accepted at submit. `localhost` itself is refused at submit,
    # so the finished submission is written as a worker writes it (core.store.finish), with a
    # callback_url a resolver maps to 127.0.0.1 — which `bare` does not allow.
    keys = keys_of(bare)
    sid = uuid.uuid4().hex
    sub = Submission(
        id=sid,
        language="python3",
        files={"main.py": b"print(4)"},
        tests=[models.TestCase()],
        callback_url=f"http://localhost:{receiver.port}/hook",
        created_at=time.time(),
    )
    with redis.Redis.from_url(bare.redis_url) as r:
        with r.pipeline(transaction=True) as pipe:
            store.stage_new(pipe, keys, sub, 600)
            pipe.execute()
        store.finish(
            r, keys, sub, Result(sid, Verdict.ACCEPTED, [models.TestResult(1, Verdict.ACCEPTED, stdout=b"4\n")]), 600
        )
        line = api_log_line(bare, sid, "refused")
        assert "127.0.0.1" in line and "loopback" in line
        # Given up at once: acknowledged, not retried, and the receiver never called.
        deadline = time.monotonic() + 10
        while r.xpending(keys.callbacks(), keys.callback_group())["pending"]:
            assert time.monotonic() < deadline, "the refused callback was not acknowledged"
            time.sleep(0.05)
    time.sleep(1.0)  # a retry, were there one, would come after 0.5 s
    assert receiver.calls == []
    log = (bare.log_dir / "api.log").read_text()
    assert not [ln for ln in log.splitlines() if sid in ln and ("attempt" in ln or "gave up" in ln)]
