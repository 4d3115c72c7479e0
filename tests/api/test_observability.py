"""GET /metrics (Prometheus text, counted by workers in Redis) and GET /v1/ready."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from core.keys import Keys
from tests.conftest import RedisServer, Stack, error_of, free_port, start_api_only


def scrape(stack: Stack) -> dict[str, Any]:
    """{sample name: {labels tuple: value}} from /metrics."""
    resp = stack.request("GET", "/metrics")
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("text/plain")
    out: dict[str, Any] = {}
    for fam in text_string_to_metric_families(resp.body):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_count_submissions_and_stages(stack: Stack) -> None:
    before = scrape(stack)
    assert before["cellblock_workers"][()] >= 2
    stack.submit({"language": "python3", "source": "print('hi')"})
    stack.submit(
        {
            "language": "python3",
            "source": "print(input())",
            "tests": [{"input": "a", "expected_output": "a"}, {"input": "b", "expected_output": "c"}],
        }
    )
    stack.submit({"language": "c", "source": "int main( { return 0; }"})
    m = scrape(stack)

    def subs(lang: str, verdict: str, snap: dict[str, Any]) -> float:
        return float(snap.get("cellblock_submissions_total", {}).get((("language", lang), ("verdict", verdict)), 0))

    assert subs("python3", "accepted", m) - subs("python3", "accepted", before) == 1
    assert subs("python3", "wrong_answer", m) - subs("python3", "wrong_answer", before) == 1
    assert subs("c", "compilation_error", m) - subs("c", "compilation_error", before) == 1

    counts = m["cellblock_stage_seconds_count"]
    old_counts = before.get("cellblock_stage_seconds_count", {})
    for stage, n in {"queue_wait": 3, "total": 3, "compile": 3, "run": 3, "jail_overhead": 2}.items():
        key = (("stage", stage),)
        assert counts[key] - old_counts.get(key, 0) == n, (stage, counts)
        # cumulative buckets end at the count
        assert m["cellblock_stage_seconds_bucket"][(("le", "+Inf"), ("stage", stage))] == counts[key]
    total_sum = m["cellblock_stage_seconds_sum"][(("stage", "total"),)]
    assert 0 < total_sum < 60
    assert m["cellblock_queue_depth"][()] == 0
    assert m["cellblock_queue_oldest_age_seconds"][()] == 0
    assert 0 <= m["cellblock_workers_busy_ratio"][()] <= 1
    assert m["cellblock_internal_errors_total"][(("source", "api"),)] == 0


def test_ready_when_redis_and_workers(stack: Stack) -> None:
    resp = stack.request("GET", "/v1/ready")
    assert resp.status == 200 and resp.body["ready"] is True and resp.body["workers"] >= 2
    spec = stack.request("GET", "/v1/openapi.json").body
    assert {"/v1/ready", "/metrics"} <= set(spec["paths"])


def test_not_ready_without_workers_and_queue_age(redis_server: RedisServer, tmp_path: Path) -> None:
    name = uuid.uuid4().hex[:8]
    stack = start_api_only(
        redis_server.url, tmp_path, {"CELLBLOCK_QUEUE": f"q-{name}", "CELLBLOCK_KEY_PREFIX": f"cb-{name}"}
    )
    try:
        resp = stack.request("GET", "/v1/ready")
        assert resp.status == 503 and resp.body["redis"] is True and resp.body["workers"] == 0
        # health answers too: Redis reachable, no worker on this queue, nothing queued yet
        health = stack.request("GET", "/v1/health")
        assert health.status == 503, health.body
        assert health.body["status"] == "degraded" and health.body["redis"] is True, health.body
        assert health.body["workers"] == 0 and health.body["queue_depth"] == 0, health.body
        assert "error" not in health.body, health.body
        # no worker: a submission waits, and the queue metrics show it
        created = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"})
        assert created.status == 201, created.body
        time.sleep(1.1)
        m = scrape(stack)
        assert m["cellblock_queue_depth"][()] == 1
        assert m["cellblock_queue_oldest_age_seconds"][()] >= 1.0
        assert m["cellblock_workers"][()] == 0 and m["cellblock_workers_busy_ratio"][()] == 0
    finally:
        stack.stop()


def test_not_ready_without_redis(tmp_path: Path) -> None:
    stack = start_api_only(f"redis://127.0.0.1:{free_port()}/0", tmp_path)
    try:
        resp = stack.request("GET", "/v1/ready")
        assert resp.status == 503 and resp.body["redis"] is False and resp.body["ready"] is False
        assert stack.request("GET", "/metrics").status == 503
    finally:
        stack.stop()


def test_logs_carry_the_submission_id(stack: Stack) -> None:
    """JSON log lines (not a terminal) of the API and of the worker carry `submission`."""
    sid = stack.submit({"language": "python3", "source": "print(1)"})["id"]
    time.sleep(0.3)  # let the worker flush its `finished` line
    seen: dict[str, list[str]] = {}
    for path in stack.log_dir.glob("*.log"):
        for line in path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("submission") == sid:
                seen.setdefault(rec["component"], []).append(rec["msg"])
    assert any("POST /v1/submissions 20" in m for m in seen.get("api", [])), seen
    worker_msgs = seen.get("worker", [])
    assert any("started" in m for m in worker_msgs) and any("finished" in m for m in worker_msgs), seen


def test_api_errors_are_counted_for_every_api_process(redis_server: RedisServer, tmp_path: Path) -> None:
    """A submission whose stored result is corrupt (as after a bug or a bad restore) makes
    GET fail inside the API: a JSON 500, the error logged, and the count in Redis, so a
    second API process on the same Redis reports it too."""
    name = uuid.uuid4().hex[:8]
    env = {"CELLBLOCK_QUEUE": f"q-{name}", "CELLBLOCK_KEY_PREFIX": f"cb-{name}"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = start_api_only(redis_server.url, tmp_path / "a", env)
    two: Stack | None = None
    try:
        two = start_api_only(redis_server.url, tmp_path / "b", env)
        sid = one.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}).body["id"]
        r = redis_server.client()
        r.hset(Keys(f"cb-{name}").submission(sid), mapping={"state": "finished", "result": "{not json"})
        r.close()
        resp = one.request("GET", f"/v1/submissions/{sid}")
        assert resp.status == 500 and error_of(resp)["code"] == "internal", resp.body
        assert "unhandled error on GET" in one.logs()
        for api in (one, two):
            assert scrape(api)["cellblock_internal_errors_total"][(("source", "api"),)] == 1
    finally:
        one.stop()
        if two is not None:
            two.stop()
