"""Access control and fairness against the real stack: API keys (CELLBLOCK_AUTH=required),
per-key ceilings and languages, ownership, rate limit, in-flight quota, queue backpressure,
Idempotency-Key."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from api.auth import KEY_CACHE_S
from core import apikeys, settings
from core.keys import Keys
from core.limits import ceiling
from tests.conftest import ROOT, RedisServer, Response, Stack, error_of, make_stack

HELLO = {"language": "python3", "source": "print('hi')\n"}


def sleeper(seconds: int) -> dict[str, Any]:
    """A submission that sleeps `seconds`, then prints done."""
    return {
        "language": "python3",
        "source": f"import time\ntime.sleep({seconds})\nprint('done')\n",
        "limits": {"wall_time": 10},
    }


MAX_QUEUE = 2


@pytest.fixture(scope="module")
def astack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(
        redis_server,
        tmp_path_factory.mktemp("auth"),
        "auth",
        workers=1,
        extra_env={"CELLBLOCK_AUTH": "required", "CELLBLOCK_MAX_QUEUE": str(MAX_QUEUE)},
    )
    yield s
    s.stop()


def new_key(stack: Stack, **limits: Any) -> tuple[str, dict[str, str]]:
    r = redis.Redis.from_url(stack.redis_url)
    key_id, token, _secret = apikeys.create_key(r, Keys(stack.env["CELLBLOCK_KEY_PREFIX"]), **limits)
    r.close()
    return key_id, {"Authorization": f"Bearer {token}"}


def error_code(resp: Response, status: int) -> str:
    """The error code of a refusal with this status."""
    assert resp.status == status, (resp.status, resp.body)
    return str(error_of(resp)["code"])


def stored_values(r: Any, key: bytes) -> list[bytes]:
    """Everything stored under `key` (r: a redis.Redis), whatever its type: members, fields and values."""
    kind = r.type(key).decode()
    if kind == "string":
        return [r.get(key) or b""]
    if kind == "hash":
        return [b for pair in r.hgetall(key).items() for b in pair]
    if kind == "set":
        return list(r.smembers(key))
    if kind == "list":
        return list(r.lrange(key, 0, -1))
    if kind == "zset":
        return list(r.zrange(key, 0, -1))
    if kind == "stream":
        return [b for _, fields in r.xrange(key) for pair in fields.items() for b in pair]
    assert kind == "none", (key, kind)  # expired since the scan
    return []


def test_no_key_is_401(astack: Stack) -> None:
    assert error_code(astack.request("POST", "/v1/submissions", HELLO), 401) == "unauthorized"
    assert error_code(astack.request("GET", "/v1/submissions/abc"), 401) == "unauthorized"
    # open endpoints stay open; /metrics is not (any key may scrape it)
    assert astack.request("GET", "/v1/languages").status == 200
    assert error_code(astack.request("GET", "/metrics"), 401) == "unauthorized"
    _, hdrs = new_key(astack)
    scraped = astack.request("GET", "/metrics", headers=hdrs)
    assert scraped.status == 200 and "cellblock_queue_depth" in scraped.body


def test_wrong_key_is_401(astack: Stack) -> None:
    resp = astack.request("POST", "/v1/submissions", HELLO, headers={"Authorization": "Bearer cb_nope"})
    assert error_code(resp, 401) == "unauthorized"


def test_key_runs_and_x_auth_token_alias(astack: Stack) -> None:
    _, hdrs = new_key(astack)
    resp = astack.request("POST", "/v1/submissions", {**HELLO, "wait": 30}, headers=hdrs)
    assert resp.status == 200 and resp.body["stdout"] == "hi\n", resp.body
    alias = {"X-Auth-Token": hdrs["Authorization"].split()[1]}
    assert astack.request("GET", f"/v1/submissions/{resp.body['id']}", headers=alias).status == 200


def test_cli_create_list_revoke_webhook_secret(astack: Stack) -> None:
    cli = astack.keys

    created = json.loads(
        cli(
            "create",
            "--name",
            "ci",
            "--rps",
            "50",
            "--max",
            "memory=128M",
            "--max",
            "pids=16",
            "--languages",
            "python3,c",
            "--json",
        )
    )
    hdrs = {"Authorization": f"Bearer {created['token']}"}
    listed = {row["id"]: row for row in json.loads(cli("list", "--json"))}
    row = listed[created["id"]]
    assert row["name"] == "ci" and row["languages"] == "python3,c"
    assert json.loads(row["max_limits"]) == {"memory": 128 * 1024 * 1024, "pids": 16}
    table = cli("list")
    assert created["id"] in table and "memory=134217728,pids=16" in table
    assert "hash" not in row and created["token"] not in json.dumps(listed)
    # The key's webhook secret is shown at creation, and by `keys webhook-secret --key`; never listed.
    assert created["webhook_secret"].startswith("whsec_") and created["webhook_secret"] not in json.dumps(listed)
    assert created["webhook_secret"] not in table
    assert cli("webhook-secret", "--key", created["id"]).strip() == created["webhook_secret"]
    deployment = cli("webhook-secret").strip()  # made on first use, the same ever after
    assert deployment.startswith("whsec_") and cli("webhook-secret").strip() == deployment
    assert "webhook secret: whsec_" in cli("create")
    # The token is stored nowhere (only its hash): not in any key of the stack, name or value.
    r = redis.Redis.from_url(astack.redis_url)
    keys = Keys(astack.env["CELLBLOCK_KEY_PREFIX"])
    names = list(r.scan_iter(f"{keys.prefix}:*"))
    record = keys.api_key(created["id"]).encode()
    assert record in names  # the scan sees the key's own record, and reads its values: the token's hash
    assert apikeys.token_digest(created["token"]).encode() in stored_values(r, record)
    token = created["token"].encode()
    assert not [k for k in names if token in k or any(token in v for v in stored_values(r, k))]
    r.close()
    resp = astack.request("POST", "/v1/submissions", HELLO, headers=hdrs)
    assert resp.status == 201, resp.body
    assert "revoked" in cli("revoke", created["id"])
    time.sleep(KEY_CACHE_S)  # an API process may remember the key as valid this long
    assert error_code(astack.request("POST", "/v1/submissions", HELLO, headers=hdrs), 401) == "unauthorized"
    assert error_code(astack.request("GET", f"/v1/submissions/{resp.body['id']}", headers=hdrs), 401) == "unauthorized"


def test_other_keys_submission_is_404(astack: Stack) -> None:
    _, mine = new_key(astack)
    _, theirs = new_key(astack)
    sid = astack.request("POST", "/v1/submissions", HELLO, headers=mine).body["id"]
    astack.wait_state(sid, headers=mine)
    assert error_code(astack.request("GET", f"/v1/submissions/{sid}", headers=theirs), 404) == "not_found"
    assert error_code(astack.request("GET", f"/v1/submissions/{sid}/events", headers=theirs), 404) == "not_found"
    listed = astack.request("GET", f"/v1/submissions?ids={sid}", headers=theirs)
    assert listed.status == 200 and listed.body["submissions"] == [{"id": sid, "error": "not_found"}]
    events = astack.request("GET", f"/v1/submissions/{sid}/events", headers=mine)
    assert events.status == 200 and "event: finished" in events.body


def test_limits_above_key_ceiling_are_422(astack: Stack) -> None:
    _, hdrs = new_key(astack, max_limits={"cpu_time": 1, "memory": 64 * 1024 * 1024, "wall_time": 3})
    resp = astack.request("POST", "/v1/submissions", {**HELLO, "limits": {"cpu_time": 2}}, headers=hdrs)
    assert error_code(resp, 422) == "above_key_ceiling" and resp.body["error"]["field"] == "limits.cpu_time"
    resp = astack.request("POST", "/v1/submissions", {**HELLO, "limits": {"memory": 128 * 1024 * 1024}}, headers=hdrs)
    assert error_code(resp, 422) == "above_key_ceiling" and resp.body["error"]["field"] == "limits.memory"
    resp = astack.request("POST", "/v1/submissions", {**HELLO, "limits": {"wall_time": 4}}, headers=hdrs)
    assert error_code(resp, 422) == "above_key_ceiling" and resp.body["error"]["field"] == "limits.wall_time"
    batch = {"submissions": [HELLO, {**HELLO, "limits": {"cpu_time": 5}}]}
    resp = astack.request("POST", "/v1/submissions/batch", batch, headers=hdrs)
    assert error_code(resp, 422) == "above_key_ceiling"
    assert resp.body["error"]["field"] == "submissions[1].limits.cpu_time"
    # within the ceiling runs; the language's defaults are capped to the key's ceiling
    resp = astack.request("POST", "/v1/submissions", {**HELLO, "limits": {"cpu_time": 1}, "wait": 30}, headers=hdrs)
    assert resp.status == 200 and resp.body["verdict"] == "accepted", resp.body
    r = redis.Redis.from_url(astack.redis_url)
    stored = r.hget(Keys(astack.env["CELLBLOCK_KEY_PREFIX"]).submission(resp.body["id"]), "spec")
    r.close()
    assert stored is not None
    spec = json.loads(stored)
    # python3's defaults are memory 256M and wall_time 5 s: both above this key's ceiling
    assert spec["limits"] == {"cpu_time": 1, "memory": 64 * 1024 * 1024, "wall_time": 3}, spec["limits"]


def test_language_not_allowed_is_403(astack: Stack) -> None:
    _, hdrs = new_key(astack, languages=["c"])
    resp = astack.request("POST", "/v1/submissions", HELLO, headers=hdrs)
    assert error_code(resp, 403) == "language_not_allowed" and resp.body["error"]["field"] == "language"


def test_a_custom_checker_obeys_the_keys_languages_and_ceilings(astack: Stack) -> None:
    """The checker runs under the submitter's key: its language must be one the key may use, and
    its limits are capped by the key's ceilings (it used to get 5 s CPU, 10 s wall, 256 MiB, in
    any language, whatever the key)."""
    c_program = {
        "language": "c",
        "source": '#include <stdio.h>\nint main(){puts("1");}',
        "tests": [{"input": "", "expected_output": "1"}],
    }
    _, only_c = new_key(astack, languages=["c"], max_limits={"cpu_time": 1, "wall_time": 2})
    checker = {"type": "custom", "language": "python3", "source": "import sys\nsys.exit(0)\n"}
    resp = astack.request("POST", "/v1/submissions", {**c_program, "checker": checker}, headers=only_c)
    assert error_code(resp, 403) == "language_not_allowed" and resp.body["error"]["field"] == "checker.language"
    _, capped = new_key(astack, max_limits={"cpu_time": 1, "wall_time": 2})
    resp = astack.request("POST", "/v1/submissions", {**c_program, "checker": checker, "wait": 60}, headers=capped)
    assert resp.status == 200 and resp.body["verdict"] == "accepted", resp.body
    r = redis.Redis.from_url(astack.redis_url)
    stored = r.hget(Keys(astack.env["CELLBLOCK_KEY_PREFIX"]).submission(resp.body["id"]), "spec")
    r.close()
    assert stored is not None and json.loads(stored)["checker"]["limits"] == {"cpu_time": 1, "wall_time": 2}


def test_rate_limit_429_with_retry_after(astack: Stack) -> None:
    _, hdrs = new_key(astack, rps=1)
    first = astack.request("GET", "/v1/submissions?ids=x", headers=hdrs)
    assert first.status == 200
    second = astack.request("GET", "/v1/submissions?ids=x", headers=hdrs)
    assert error_code(second, 429) == "rate_limited"
    assert int(second.headers["retry-after"]) >= 1
    _, other = new_key(astack, rps=1)  # per key: another key is not limited by the first
    assert astack.request("GET", "/v1/submissions?ids=x", headers=other).status == 200
    time.sleep(1.1)
    assert astack.request("GET", "/v1/submissions?ids=x", headers=hdrs).status == 200


def test_in_flight_quota(astack: Stack) -> None:
    _, hdrs = new_key(astack, max_in_flight=1)
    first = astack.request("POST", "/v1/submissions", sleeper(2), headers=hdrs)
    assert first.status == 201, first.body
    resp = astack.request("POST", "/v1/submissions", HELLO, headers=hdrs)
    assert error_code(resp, 429) == "too_many_in_flight" and int(resp.headers["retry-after"]) >= 1
    assert astack.wait_state(first.body["id"], headers=hdrs)["stdout"] == "done\n"
    again = astack.request("POST", "/v1/submissions", {**HELLO, "wait": 30}, headers=hdrs)
    assert again.status == 200, again.body


def test_a_batch_larger_than_the_quota_is_422_and_old_idempotency_records_still_answer(astack: Stack) -> None:
    """A batch that could never fit the key's in-flight quota is the request's fault (it got a
    429 to retry forever); an Idempotency-Key record written before records held a fingerprint
    (the ids joined by commas) answers its submission (it was a 500)."""
    key_id, hdrs = new_key(astack, max_in_flight=1)
    resp = astack.request("POST", "/v1/submissions/batch", {"submissions": [HELLO, HELLO]}, headers=hdrs)
    assert error_code(resp, 422) == "invalid" and resp.body["error"]["field"] == "submissions", resp.body
    sid = astack.request("POST", "/v1/submissions", {**HELLO, "wait": 30}, headers=hdrs).body["id"]
    r = redis.Redis.from_url(astack.redis_url)
    keys = Keys(astack.env["CELLBLOCK_KEY_PREFIX"])
    r.set(keys.idempotency(key_id, hashlib.sha256(b"legacy-1").hexdigest()), sid, ex=60)
    r.close()
    again = astack.request("POST", "/v1/submissions", HELLO, headers={**hdrs, "Idempotency-Key": "legacy-1"})
    assert again.status == 200 and again.body["id"] == sid, again.body


def test_backpressure_503(astack: Stack) -> None:
    _, hdrs = new_key(astack)
    running = astack.request("POST", "/v1/submissions", sleeper(4), headers=hdrs).body["id"]
    astack.wait_state(running, {"compiling", "running", "finished"}, timeout=30, headers=hdrs)  # out of the queue
    queued = [astack.request("POST", "/v1/submissions", HELLO, headers=hdrs) for _ in range(MAX_QUEUE)]
    assert [q.status for q in queued] == [201] * MAX_QUEUE
    resp = astack.request("POST", "/v1/submissions", HELLO, headers=hdrs)
    assert error_code(resp, 503) == "overloaded" and int(resp.headers["retry-after"]) >= 1
    for sid in [running, *(q.body["id"] for q in queued)]:
        astack.wait_state(sid, headers=hdrs)
    assert astack.request("POST", "/v1/submissions", HELLO, headers=hdrs).status == 201


def test_idempotent_retry(astack: Stack) -> None:
    _, hdrs = new_key(astack)
    _, other = new_key(astack)
    idem = {**hdrs, "Idempotency-Key": "order-42"}
    first = astack.request("POST", "/v1/submissions", HELLO, headers=idem)
    assert first.status == 201
    sid = first.body["id"]
    astack.wait_state(sid, headers=hdrs)
    retry = astack.request("POST", "/v1/submissions", HELLO, headers=idem)
    assert retry.status == 200 and retry.body["id"] == sid and retry.body["stdout"] == "hi\n"
    # scoped per key: the same Idempotency-Key from another key is a new submission
    theirs = astack.request("POST", "/v1/submissions", HELLO, headers={**other, "Idempotency-Key": "order-42"})
    assert theirs.status == 201 and theirs.body["id"] != sid
    fresh = astack.request("POST", "/v1/submissions", HELLO, headers={**hdrs, "Idempotency-Key": "order-43"})
    assert fresh.status == 201 and fresh.body["id"] != sid
    astack.wait_state(fresh.body["id"], headers=hdrs)
    astack.wait_state(theirs.body["id"], headers=other)
    batch = {"submissions": [HELLO, HELLO]}
    b1 = astack.request("POST", "/v1/submissions/batch", batch, headers={**hdrs, "Idempotency-Key": "b-1"})
    b2 = astack.request("POST", "/v1/submissions/batch", batch, headers={**hdrs, "Idempotency-Key": "b-1"})
    assert b1.status == 201 and b2.status == 201 and b1.body["ids"] == b2.body["ids"]
    for s in b1.body["ids"]:
        astack.wait_state(s, headers=hdrs)
    # one key, one request: another body, or the other endpoint, under it is refused (it used to
    # answer the batch's ids joined as one id, "a,b", or the first request's submission)
    other_body = astack.request("POST", "/v1/submissions", {**HELLO, "stdin": "x"}, headers=idem)
    single_for_batch = astack.request("POST", "/v1/submissions", HELLO, headers={**hdrs, "Idempotency-Key": "b-1"})
    for refused in (other_body, single_for_batch):
        assert refused.status == 422, refused.body
        assert error_of(refused)["code"] == "idempotency_key_reused" and error_of(refused)["field"] == "Idempotency-Key"


def test_auth_mode_defaults() -> None:
    assert not settings.load({"CELLBLOCK_HOST": "127.0.0.1"}).auth_required
    assert not settings.load({"CELLBLOCK_HOST": "::1"}).auth_required
    assert settings.load({"CELLBLOCK_HOST": "0.0.0.0"}).auth_required
    assert settings.load({"CELLBLOCK_HOST": "127.0.0.1", "CELLBLOCK_AUTH": "required"}).auth_required
    assert not settings.load({"CELLBLOCK_HOST": "0.0.0.0", "CELLBLOCK_AUTH": "off"}).auth_required


def test_auth_off_warns_and_openapi_documents_keys(stack: Stack) -> None:
    assert "AUTHENTICATION IS OFF" in (stack.log_dir / "api.log").read_text()
    spec = stack.request("GET", "/v1/openapi.json").body
    assert {"bearer", "xAuthToken"} <= set(spec["components"]["securitySchemes"])
    assert {"401", "403", "429", "503"} <= set(spec["paths"]["/v1/submissions"]["post"]["responses"])
    # auth off: no key needed, Idempotency-Key still works
    hdrs = {"Idempotency-Key": "anon-1"}
    first = stack.request("POST", "/v1/submissions", HELLO, headers=hdrs)
    again = stack.request("POST", "/v1/submissions", HELLO, headers=hdrs)
    assert first.status == 201 and again.body["id"] == first.body["id"]


def test_key_ceiling_parsing() -> None:
    assert ceiling("memory=256M") == ("memory", 256 * 1024 * 1024)
    assert ceiling("wall_time=2.5") == ("wall_time", 2.5)
    # a ceiling the jail could not honour would make a capped default the jail refuses
    for bad in ("bogus=1", "cpu_time", "cpu_time=-1", "pids=nan", "memory=1000", "pids=1.5", "open_files=2"):
        with pytest.raises(ValueError):
            ceiling(bad)


def test_cli_submit_sends_the_key_retries_429_and_takes_any_bytes(astack: Stack, tmp_path: Path) -> None:
    """`cellblock submit --key`: refused without the key; a source that is not UTF-8 goes as
    base64; a 429 from the key's rate limit is retried after its Retry-After."""
    _, hdrs = new_key(astack, rps=0.5)
    token = hdrs["Authorization"].removeprefix("Bearer ")
    prog = tmp_path / "hi.c"
    prog.write_bytes(b'/* caf\xe9, in Latin-1 */\n#include <stdio.h>\nint main(void){puts("h\xe9");return 0;}\n')

    def submit(*extra: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "cli", "submit", str(prog), "--url", astack.base, *extra],
            cwd=ROOT,
            env={k: v for k, v in astack.env.items() if k != "CELLBLOCK_API_KEY"},
            capture_output=True,
            timeout=120,
        )

    refused = submit()
    assert refused.returncode == 2 and b"unauthorized" in refused.stderr, refused
    first, second = submit("--key", token), submit("--key", token, "--json")
    assert first.returncode == 0 and b"verdict: accepted" in first.stdout, first
    assert "h\ufffd" in first.stdout.decode(), first  # the program's Latin-1 byte, shown as text
    assert second.returncode == 0 and b"HTTP 429, trying again" in second.stderr, second
    view = json.loads(second.stdout)
    assert view["encoding"] == "base64" and view["verdict"] == "accepted"


def test_a_browser_session_offers_its_key_as_a_subprotocol(astack: Stack) -> None:
    """A browser's WebSocket cannot send a header: its key comes as the subprotocol
    `cellblock.key.<token>`, and the server answers `cellblock.v1`, never the key."""
    _, hdrs = new_key(astack)
    token = hdrs["Authorization"].removeprefix("Bearer ")
    url = f"{astack.base}/v1/sessions"

    async def go() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            for offered in ((), ("cellblock.v1", "cellblock.key.cb_not_a_key")):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url, protocols=offered)
                assert refused.value.status == 401
            async with http.ws_connect(url, protocols=("cellblock.v1", f"cellblock.key.{token}")) as ws:
                assert ws.protocol == "cellblock.v1"
                await ws.send_json({"language": "python3", "source": "print('hi')"})
                return [json.loads(m.data) async for m in ws]

    got = asyncio.run(go())
    assert "".join(m["data"] for m in got if m["type"] == "output") == "hi\n"
    assert got[-1]["type"] == "result" and got[-1]["result"]["verdict"] == "accepted"
