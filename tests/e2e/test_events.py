"""Server-Sent Events: the order of a submission's events, live and replayed."""

from __future__ import annotations

import http.client
import json
from typing import Any

from tests.conftest import Stack

SLOWISH = "import time\ntime.sleep(0.2)\nprint(input())\n"
TESTS = [{"input": f"{i}\n", "expected_output": f"{i}\n"} for i in range(3)]


def read_events(stack: Stack, sid: str, last_id: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=60)
    try:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        conn.request("GET", f"/v1/submissions/{sid}/events", headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/event-stream")
        text = resp.read().decode()  # the server ends the stream after `finished`
    finally:
        conn.close()
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return events


def expected_sequence(n: int) -> list[tuple[str, Any]]:
    seq: list[tuple[str, Any]] = [("state", "queued"), ("state", "compiling")]
    for k in range(1, n + 1):
        seq += [("state", ("running", k, n)), ("test", k)]
    return [*seq, ("finished", "accepted")]


def summarize(events: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for _id, kind, data in events:
        if kind == "state":
            out.append(
                (kind, (data["state"], data["test"], data["of"]) if data["state"] == "running" else data["state"])
            )
        elif kind == "test":
            assert data["verdict"] == "accepted"
            out.append((kind, data["index"]))
        else:
            out.append((kind, data["verdict"]))
    return out


def test_live_events_arrive_in_order(stack: Stack) -> None:
    resp = stack.request("POST", "/v1/submissions", {"language": "python3", "source": SLOWISH, "tests": TESTS})
    assert resp.status == 201
    events = read_events(stack, resp.body["id"])
    assert summarize(events) == expected_sequence(3)
    ids = [tuple(int(x) for x in e[0].split("-")) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_late_subscriber_replays_everything(stack: Stack) -> None:
    view = stack.submit({"language": "python3", "source": "print(input())", "tests": TESTS})
    events = read_events(stack, view["id"])
    assert summarize(events) == expected_sequence(3)
    # Last-Event-ID resumes after the given event
    resumed = read_events(stack, view["id"], last_id=events[2][0])
    assert resumed == events[3:]
