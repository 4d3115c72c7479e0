"""Redis as production runs it: TLS only (a certificate of a CA of the test's own) and an ACL
user with a password instead of the open default user. The whole stack — the API's pool and
its Pub/Sub wake-ups, RQ and the worker, `cellblock keys` — reaches it through
CELLBLOCK_REDIS_URL alone (`rediss://user:password@host:port/db?ssl_ca_certs=CA`), refuses a
server it cannot verify, and never writes the password in a log."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, RedisServer, Stack, free_port, make_stack, spawn, start_api_only
from tests.tls import certificates

pytestmark = pytest.mark.slow

USER, PASSWORD = "cellblock", "not-the-default-3f9c"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, dict[str, Path]]]:
    where = tmp_path_factory.mktemp("redis-tls")
    certs = certificates(where)
    port = free_port()
    conf = where / "redis.conf"
    conf.write_text(
        f"port 0\nbind 127.0.0.1\ntls-port {port}\ntls-cert-file {certs['srv.crt']}\n"
        f"tls-key-file {certs['srv.key']}\ntls-ca-cert-file {certs['ca.crt']}\ntls-auth-clients no\n"
        f'dir {where}\nsave ""\nappendonly no\n'
        f"user default off\nuser {USER} on >{PASSWORD} ~* &* +@all\n"
    )
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server not found: `make test` installs deploy/host-packages.txt"
    proc = spawn([exe, str(conf)], dict(os.environ), where / "redis.log")
    url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={certs['ca.crt']}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with redis.Redis.from_url(url) as r:
                assert r.acl_whoami() == USER
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, (where / "redis.log").read_text()
            time.sleep(0.05)
    yield RedisServer(url, port, proc), certs
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(tls_redis: tuple[RedisServer, dict[str, Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(tls_redis[0], tmp_path_factory.mktemp("stack-tls"), "tls", workers=1)
    yield s
    s.stop()


def test_the_stack_runs_on_a_tls_redis_with_an_acl_user(stack: Stack) -> None:
    # `wait` is woken by the API's Pub/Sub subscription; RQ and the worker carry the job.
    view = stack.submit({"language": "python3", "source": "print('over TLS')"}, wait=30)
    assert view["verdict"] == "accepted" and view["stdout"] == "over TLS\n"
    # An event stream is woken by its own subscription.
    sid = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}).body["id"]
    events = stack.request("GET", f"/v1/submissions/{sid}/events", timeout=30).body
    assert "event: finished" in events, events
    metrics = stack.request("GET", "/metrics").body
    assert "cellblock_workers 1.0" in metrics
    # The admin side too: `cellblock keys` with the same URL.
    created = json.loads(stack.keys("create", "--name", "tls", "--json"))
    assert created["token"].startswith("cb_")


def test_the_password_is_in_no_log(stack: Stack) -> None:
    stack.submit({"language": "python3", "source": "print(2)"})
    logs = stack.logs()
    assert logs and PASSWORD not in logs


def test_a_server_it_cannot_verify_is_refused_not_trusted(
    tls_redis: tuple[RedisServer, dict[str, Path]], tmp_path: Path
) -> None:
    server, certs = tls_redis
    for i, url in enumerate(
        (
            server.url.replace(str(certs["ca.crt"]), str(certs["other.crt"])),  # another CA: not verified
            server.url.replace(f":{PASSWORD}@", ":wrong@"),  # the wrong password
        )
    ):
        (tmp_path / str(i)).mkdir()
        api = start_api_only(url, tmp_path / str(i))
        try:
            resp = api.request("GET", "/v1/health")
            assert resp.status == 503 and resp.body["redis"] is False, resp.body
            assert PASSWORD not in json.dumps(resp.body) and PASSWORD not in api.logs()
        finally:
            api.stop()


def test_up_shows_the_url_without_its_password(tls_redis: tuple[RedisServer, dict[str, Path]], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBLOCK_")}
    env.update(
        {
            "CELLBLOCK_REDIS_URL": tls_redis[0].url,
            "CELLBLOCK_PORT": str(free_port()),
            "CELLBLOCK_WORKERS": "1",
            "CELLBLOCK_VAR_DIR": str(tmp_path / "var"),
            "CELLBLOCK_CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONPATH": str(ROOT),
        }
    )
    log = tmp_path / "up.log"
    up = spawn([sys.executable, "-m", "cli", "up"], env, log)
    try:
        deadline = time.monotonic() + 30
        while "cellblock up: API on" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        up.terminate()
        up.wait(timeout=30)
    text = log.read_text()
    assert f"rediss://{USER}:***@127.0.0.1:{tls_redis[0].port}/0" in text and PASSWORD not in text
