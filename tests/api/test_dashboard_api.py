"""GET /v1/dashboard and what it is drawn from: the per-minute history the workers count beside
the /metrics counters (core/metrics.py), the compile cache's hits and misses, quantiles from
bucket counts, and admin keys. Real Redis and a real stack; only the quantile math is pure."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis

from api import dashboard
from core import apikeys, metrics, models, store
from core.keys import Keys
from core.models import Result, Submission, Verdict
from core.settings import load as load_settings
from jail.spec import RunResult, Status
from tests.api.test_observability import scrape
from tests.conftest import RedisServer, Stack, error_of, isolated_api, make_stack
from worker.judge import record_compile
from worker.toolchain import CompileOutcome

B = metrics.BUCKETS
N = len(B) + 1  # bucket counts: every finite bucket and +Inf


def counts(**at: int) -> list[int]:
    """Bucket counts with `b<i>=n` set, the rest 0 (b14: the +Inf bucket)."""
    out = [0] * N
    for name, n in at.items():
        out[int(name[1:])] = n
    return out


# --------------------------------------------------------------------------- quantiles


def test_quantile_of_nothing_is_none() -> None:
    assert metrics.quantile(0.5, [0] * N) is None
    assert metrics.Histogram.from_hash({}).quantile(0.99) is None


def test_quantile_interpolates_within_the_bucket() -> None:
    # 10 observations in (0, 0.005]: the median is halfway, as histogram_quantile answers
    assert metrics.quantile(0.5, counts(b0=10)) == pytest.approx(0.0025)
    # 4 in (0.005, 0.01]: rank 2 of 4 -> halfway through that bucket
    assert metrics.quantile(0.5, counts(b1=4)) == pytest.approx(0.0075)
    # 90 fast, 10 in (1, 2.5]: p50 in the first bucket, p95 halfway through (1, 2.5], p99 at 9/10 of it
    h = counts(b0=90, b8=10)
    assert metrics.quantile(0.5, h) == pytest.approx(0.005 * 50 / 90)
    assert metrics.quantile(0.95, h) == pytest.approx(1.0 + 1.5 * 0.5)
    assert metrics.quantile(0.99, h) == pytest.approx(1.0 + 1.5 * 0.9)
    assert metrics.quantile(1.0, h) == pytest.approx(2.5)  # the top of the last non-empty bucket
    # empty buckets between are skipped: the rank lands in the first bucket that reaches it
    assert metrics.quantile(0.75, counts(b2=2, b10=2)) == pytest.approx(5.0 + 5.0 * 0.5)
    assert metrics.quantile(0.0, counts(b3=5)) == pytest.approx(0.025)  # the lower bound of the first observed


def test_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert metrics.quantile(0.5, counts(b14=3)) == B[-1]
    assert metrics.quantile(0.99, counts(b0=98, b14=2)) == B[-1]
    assert metrics.quantile(0.5, counts(b0=98, b14=2)) == pytest.approx(0.005 * 50 / 98)


def test_quantile_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        metrics.quantile(1.5, counts(b0=1))
    with pytest.raises(ValueError):
        metrics.quantile(-0.1, counts(b0=1))
    with pytest.raises(ValueError):
        metrics.quantile(0.5, [1, 2, 3])  # not BUCKETS' shape


def test_histogram_from_hash_matches_the_written_convention() -> None:
    h = metrics.Histogram.from_hash({b"b0": b"2", b"b14": b"1", b"sum": b"130.5", b"other": b"9"})
    assert h.count == 3 and h.sum == 130.5
    cum = h.cumulative()
    assert cum[0] == (0.005, 2) and cum[-2] == (120.0, 2) and cum[-1] == (math.inf, 3)


# --------------------------------------------------------------------------- counting (real Redis)


@pytest.fixture
def r(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def fresh_keys() -> Keys:
    return Keys(f"dash-{uuid.uuid4().hex[:8]}")


def finished(
    r: redis.Redis,
    keys: Keys,
    language: str,
    verdict: Verdict,
    seconds: float,
    compile_outcome: CompileOutcome,
) -> Result:
    """Store a result as the worker does (store.finish) for a submission created `seconds` ago."""
    now = time.time()
    sub = Submission(uuid.uuid4().hex, language, {"main": b""}, [models.TestCase()], created_at=now - seconds)
    result = Result(sub.id, verdict, tests=[models.TestResult(1, verdict)])
    record_compile(result, compile_outcome, 0.01)
    result.verdict = verdict  # whatever the compile's outcome would make it
    result.timings.update({"enqueued_at": sub.created_at, "started_at": sub.created_at + 0.001})
    with r.pipeline(transaction=True) as pipe:
        store.stage_new(pipe, keys, sub, ttl=60)
        pipe.execute()
    assert store.finish(r, keys, sub, result, ttl=60)
    return result


def test_finishing_counts_into_the_minute_and_the_compile_cache(r: redis.Redis) -> None:
    keys = fresh_keys()
    ran = CompileOutcome(ok=True, result=RunResult(Status.OK, exit_code=0))
    crashed = CompileOutcome(ok=False, result=RunResult(Status.SIGNALED, signal="SIGKILL"))  # ran; no exit code
    hit = CompileOutcome(ok=True, cached=True)
    interpreted = CompileOutcome(ok=True)  # nothing to compile
    refused = CompileOutcome(ok=False, output="compile_options: -Wfoo is not allowed")  # never ran
    before = time.time()
    finished(r, keys, "c", Verdict.ACCEPTED, 0.03, ran)
    res = finished(r, keys, "c", Verdict.COMPILATION_ERROR, 0.03, crashed)
    finished(r, keys, "c", Verdict.ACCEPTED, 0.3, hit)
    finished(r, keys, "python3", Verdict.ACCEPTED, 0.3, interpreted)
    finished(r, keys, "c", Verdict.INTERNAL_ERROR, 200.0, refused)
    after = time.time()
    assert res.compile_ran and not res.compile_cached and res.compile_exit_code is None

    counters = metrics.read_counters(r, keys)
    # two compiles ran (one of them was killed), one came from the cache; python3 and the refused one: neither
    assert counters["compile_cache:misses"] == 2 and counters["compile_cache:hits"] == 1, counters
    assert counters["internal_errors:worker"] == 1

    # The minute's hash (two, should the minute have changed while finishing), summed.
    h: dict[str, float] = {}
    for minute in range(int(before // 60), int(after // 60) + 1):
        key = metrics.minute_key(keys, minute)
        assert key == f"{keys.prefix}:metrics:minute:{minute}"
        for k, v in r.hgetall(key).items():
            h[store.text(k)] = h.get(store.text(k), 0) + float(v)
        assert 3600 < r.ttl(key) <= metrics.MINUTE_TTL_S
    assert h["finished"] == 5 and h["internal_errors"] == 1, h
    # the `total` latency's buckets, non-cumulative: 2 in b3 (25-50 ms), 2 in b6 (0.25-0.5 s), 1 in +Inf
    assert {k: v for k, v in h.items() if k.startswith("b")} == {"b3": 2, "b6": 2, f"b{len(B)}": 1}, h
    assert 200.6 < h["sum"] < 202
    assert metrics.minute_key(keys, int(before // 60) - 1) not in {store.text(k) for k in r.keys(f"{keys.prefix}:*")}


def test_counters_count_into_the_minute_from_any_client(r: redis.Redis, redis_server: RedisServer) -> None:
    """stage_counter on a sync client (the worker's sandbox faults), an asyncio client (the
    API's 500s) and a pipeline (staged, executed by the caller)."""
    keys = fresh_keys()
    metrics.stage_counter(r, keys, "sandbox_faults")
    with r.pipeline(transaction=True) as pipe:
        assert metrics.stage_counter(pipe, keys, "sandbox_faults") is None
        pipe.execute()

    async def from_async() -> None:
        ar = aioredis.Redis.from_url(redis_server.url)
        try:
            await metrics.stage_counter(ar, keys, "internal_errors:api")
        finally:
            await ar.aclose()

    asyncio.run(from_async())
    metrics.stage_counter(r, keys, "retries")  # a counter the minutes do not keep
    now = time.time()
    counters = metrics.read_counters(r, keys)
    assert counters == {"sandbox_faults": 2, "internal_errors:api": 1, "retries": 1}
    minutes = metrics.read_minutes(r, keys, now)
    assert len(minutes) == 60 and minutes[-1].start == int(now // 60) * 60
    assert [m.start for m in minutes] == [minutes[0].start + 60 * i for i in range(60)]
    assert sum(m.sandbox_faults for m in minutes) == 2 and sum(m.internal_errors for m in minutes) == 1
    assert sum(m.finished for m in minutes) == 0
    for m in minutes:
        if m.sandbox_faults or m.internal_errors:
            assert 3600 < r.ttl(metrics.minute_key(keys, m.start // 60)) <= metrics.MINUTE_TTL_S


def test_result_json_keeps_the_compile_cache_fields_and_reads_old_results() -> None:
    res = Result("x", Verdict.ACCEPTED, compile_cached=True)
    assert Result.from_json(json.loads(json.dumps(res.to_json()))) == res
    old = res.to_json()
    del old["compile_cached"], old["compile_ran"]  # as stored before these fields
    back = Result.from_json(old)
    assert back.compile_cached is False and back.compile_ran is False


def test_snapshot_of_an_empty_deployment(r: redis.Redis) -> None:
    """Nothing counted yet: every minute zero, quantiles null, no hit rate (and no division by zero)."""
    keys = fresh_keys()
    cfg = load_settings({"CELLBLOCK_QUEUE": keys.prefix, "CELLBLOCK_KEY_PREFIX": keys.prefix})
    snap = dashboard.snapshot(r, cfg, keys, now=1_000_000_000.0)
    assert snap["now"] == 1_000_000_000.0 and snap["auth"] is False
    assert snap["queue"] == {"depth": 0, "oldest_age": 0.0} and snap["workers"] == []
    assert len(snap["minutes"]) == 60 and snap["minutes"][-1]["t"] == 1_000_000_000 // 60 * 60
    assert snap["minutes"][0] == {
        "t": (1_000_000_000 // 60 - 59) * 60,
        "finished": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "internal_errors": 0,
        "sandbox_faults": 0,
    }
    assert snap["verdicts"] == {}
    assert snap["totals"] == {
        "finished": 0,
        "internal_errors": {"worker": 0, "api": 0},
        "sandbox_faults": 0,
        "compile_cache": {"hits": 0, "misses": 0, "hit_rate": None},
    }
    assert set(snap["stages"]) == set(metrics.STAGES)
    assert snap["stages"]["total"] == {"count": 0, "p50": None, "p95": None, "p99": None}


# --------------------------------------------------------------------------- the real stack


@pytest.fixture(scope="module")
def dstack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker (its job counts are the test's), keys off, a compile cache of its own."""
    s = make_stack(redis_server, tmp_path_factory.mktemp("dashboard"), "dashboard", workers=1)
    yield s
    s.stop()


def dashboard_of(stack: Stack, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = stack.request("GET", "/v1/dashboard", headers=headers)
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.headers.get("cache-control") == "no-store"
    body: dict[str, Any] = resp.body
    return body


@pytest.mark.slow
def test_dashboard_shows_real_submissions(dstack: Stack, redis_server: RedisServer) -> None:
    c_source = f'/* {uuid.uuid4().hex} */\n#include <stdio.h>\nint main(void) {{ puts("hi"); return 0; }}\n'
    t0 = time.time()
    views = [
        dstack.submit({"language": "python3", "source": "print('hello')"}),
        dstack.submit({"language": "c", "source": c_source}),
        dstack.submit({"language": "c", "source": c_source}),  # the same program: from the compile cache
        dstack.submit({"language": "python3", "source": "raise SystemExit(3)"}),
    ]
    t1 = time.time()
    assert [v["verdict"] for v in views] == ["accepted", "accepted", "accepted", "runtime_error"], views

    # RQ counts a worker's job after the job returned: wait until it has counted all four.
    deadline = time.monotonic() + 30
    while True:
        d = dashboard_of(dstack)
        workers = d["workers"]
        if workers and workers[0]["successful_jobs"] >= 4 and workers[0]["state"] == "idle":
            break
        assert time.monotonic() < deadline, d["workers"]
        time.sleep(0.2)

    assert d["auth"] is False and d["now"] >= t1
    assert d["queue"] == {"depth": 0, "oldest_age": 0.0}
    (w,) = workers
    assert w["failed_jobs"] == 0 and w["current_job"] is None, w
    assert isinstance(w["name"], str) and w["hostname"] and isinstance(w["pid"], int)
    assert 0 <= w["last_heartbeat_age"] < 60 and w["started_at"] <= t0

    assert d["verdicts"] == {"python3": {"accepted": 1, "runtime_error": 1}, "c": {"accepted": 2}}
    totals = d["totals"]
    assert totals["finished"] == 4 and totals["internal_errors"] == {"worker": 0, "api": 0}
    assert totals["sandbox_faults"] == 0
    # C compiled once and came from the cache once; python3 counts neither
    assert totals["compile_cache"] == {"hits": 1, "misses": 1, "hit_rate": 0.5}

    minutes = d["minutes"]
    assert len(minutes) == 60
    assert [m["t"] for m in minutes] == [minutes[-1]["t"] - 60 * (59 - i) for i in range(60)]
    assert minutes[-1]["t"] == int(d["now"] // 60) * 60
    assert sum(m["finished"] for m in minutes) == 4
    assert sum(m["finished"] for m in minutes if m["t"] >= int(t0 // 60) * 60) == 4  # since the test began
    if int(t0 // 60) == int(d["now"] // 60):  # all in the current minute
        assert minutes[-1]["finished"] == 4, minutes[-1]
    for m in minutes:
        if m["finished"]:
            assert 0 < m["p50"] <= m["p95"] <= m["p99"] <= 120, m
        else:
            assert m["p50"] is None and m["p99"] is None, m

    stages = d["stages"]
    assert set(stages) == set(metrics.STAGES)
    for stage in ("queue_wait", "compile", "run", "total", "jail_overhead"):
        s = stages[stage]
        assert s["count"] == 4, (stage, s)
        assert s["p50"] is not None and s["p50"] <= s["p95"] <= s["p99"], (stage, s)
    # a submission's total (created -> finished) is at most the test's own wait for it
    assert stages["total"]["p50"] <= t1 - t0

    # /metrics shows the same counters
    m = scrape(dstack)
    assert m["cellblock_compile_cache_total"] == {(("result", "hit"),): 1.0, (("result", "miss"),): 1.0}
    assert m["cellblock_stage_seconds_count"][(("stage", "total"),)] == 4


@pytest.mark.slow
def test_dashboard_counts_api_errors_in_the_minute(dstack: Stack, redis_server: RedisServer) -> None:
    """An API 500 (a corrupt stored result) is counted by the API's asyncio client: in the totals
    and in the current minute."""
    before = dashboard_of(dstack)
    sid = dstack.submit({"language": "python3", "source": "print(1)"})["id"]
    r = redis_server.client()
    r.hset(Keys(dstack.env["CELLBLOCK_KEY_PREFIX"]).submission(sid), mapping={"result": "{not json"})
    r.close()
    resp = dstack.request("GET", f"/v1/submissions/{sid}")
    assert resp.status == 500 and error_of(resp)["code"] == "internal", resp.body
    after = dashboard_of(dstack)
    assert after["totals"]["internal_errors"]["api"] == before["totals"]["internal_errors"]["api"] + 1
    # the stack is minutes old: no error has left the 60-minute window in between
    added = sum(m["internal_errors"] for m in after["minutes"]) - sum(m["internal_errors"] for m in before["minutes"])
    assert added == 1, after["minutes"][-2:]
    assert sum(m["internal_errors"] for m in after["minutes"][-2:]) >= 1


# --------------------------------------------------------------------------- who may see it


def test_dashboard_needs_an_admin_key_when_keys_are_required(redis_server: RedisServer, tmp_path: Path) -> None:
    api = isolated_api(redis_server, tmp_path, "dash-auth", CELLBLOCK_AUTH="required")
    try:
        none = api.request("GET", "/v1/dashboard")
        assert none.status == 401 and error_of(none)["code"] == "unauthorized", none.body
        wrong = api.request("GET", "/v1/dashboard", headers={"Authorization": "Bearer cb_nope"})
        assert wrong.status == 401 and error_of(wrong)["code"] == "unauthorized", wrong.body

        plain = json.loads(api.keys("create", "--name", "plain", "--json"))
        plain_hdrs = {"Authorization": f"Bearer {plain['token']}"}
        refused = api.request("GET", "/v1/dashboard", headers=plain_hdrs)
        assert refused.status == 403, refused.body
        err = error_of(refused)
        assert err["code"] == "admin_required" and "admin key" in err["reason"], err

        admin = json.loads(api.keys("create", "--name", "ops", "--admin", "--json"))
        assert admin["admin"] is True and plain["admin"] is False
        admin_hdrs = {"X-Auth-Token": admin["token"]}
        d = dashboard_of(api, admin_hdrs)
        assert d["auth"] is True and d["workers"] == [] and len(d["minutes"]) == 60

        # an admin key is an ordinary key otherwise: it submits and scrapes /metrics
        created = api.request(
            "POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}, headers=admin_hdrs
        )
        assert created.status == 201, created.body
        assert api.request("GET", "/metrics", headers=admin_hdrs).status == 200
        assert dashboard_of(api, admin_hdrs)["queue"]["depth"] == 1  # no worker here: it waits

        listed = {row["id"]: row for row in json.loads(api.keys("list", "--json"))}
        assert listed[admin["id"]]["admin"] == "1" and listed[plain["id"]]["admin"] == "0"
        table = api.keys("list")
        assert "admin" in table.splitlines()[0]

        # the key's hash says so: Principal reads it back, and a key made before admin keys is not one
        r = redis_server.client()
        keys = Keys(api.env["CELLBLOCK_KEY_PREFIX"])
        stored = cast(dict[bytes, bytes], r.hgetall(keys.api_key(admin["id"])))
        assert apikeys.Principal.from_hash(stored).admin is True
        del stored[b"admin"]
        assert apikeys.Principal.from_hash(stored).admin is False
        r.close()
    finally:
        api.stop()


def test_dashboard_is_open_with_keys_off(dstack: Stack) -> None:
    d = dashboard_of(dstack)
    assert d["auth"] is False
    fields = {"now", "auth", "quantile_ceiling", "queue", "workers", "minutes", "verdicts", "totals", "stages"}
    assert fields == set(d)
    assert d["quantile_ceiling"] == metrics.BUCKETS[-1]
    spec = dstack.request("GET", "/v1/openapi.json").body
    op = spec["paths"]["/v1/dashboard"]["get"]
    assert {"200", "401", "403"} <= set(op["responses"])
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == set(d)
