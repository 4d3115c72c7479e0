"""Locust load mix for cellblock (run headless by load/run_load.py, or `locust -f` by hand).

Each simulated client loops over a realistic mix, every submission with `wait` so the
request's latency is the user-visible one (accept -> queue -> compile -> run -> result):

| name              | weight | what |
|-------------------|-------:|------|
| hello_python      | 30 | print("hello") |
| hello_c           | 25 | printf hello world in C (compile-cache hit after the first) |
| judge_python_10   | 20 | a Python solution judged on 10 tests (all accepted) |
| compile_error_c   | 10 | C that does not compile -> compilation_error |
| tle_python        |  5 | an endless loop with a 0.3 s CPU limit -> time_limit_exceeded |
| bad_request       | 10 | malformed JSON (400) or an unknown language (422), alternately |

A request fails (in locust's stats) when the status or the verdict is not the expected one.

Pacing: with CELLBLOCK_LOAD_USER_RATE=x each client starts at most x tasks a second
(locust's constant_throughput), so users x rate is the offered load; without it clients
loop with no pause (a closed loop, to find the saturation throughput).

With CELLBLOCK_LOAD_RECORD=path, the ids of every created submission and the count of 5xx
answers are written there as JSON when the run ends, so that load/run_load.py can check
that every submission finished (none lost).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

from locust import HttpUser, constant, constant_throughput, events, task

HELLO_C = '#include <stdio.h>\nint main(void) { printf("hello\\n"); return 0; }\n'
JUDGE_PY = "a, b = map(int, input().split())\nprint(a + b)\n"
JUDGE_TESTS = [{"input": f"{i} {i * 7}\n", "expected_output": f"{i * 8}\n"} for i in range(10)]
BROKEN_C = "int main(void) { return 0 }\n"
TLE_PY = "while True:\n    pass\n"

USER_RATE = float(os.environ.get("CELLBLOCK_LOAD_USER_RATE", "0"))
RECORD = os.environ.get("CELLBLOCK_LOAD_RECORD")
CREATED: list[str] = []  # ids of the submissions the API accepted
SERVER_ERRORS = [0]  # answers with a 5xx status


@events.request.add_listener
def _count_server_errors(response: Any = None, **_kw: Any) -> None:
    if response is not None and getattr(response, "status_code", 0) >= 500:
        SERVER_ERRORS[0] += 1


@events.quitting.add_listener
def _write_record(**_kw: Any) -> None:
    if RECORD:
        with open(RECORD, "w") as f:
            json.dump({"created": CREATED, "server_errors": SERVER_ERRORS[0]}, f)


class Client(HttpUser):
    wait_time = constant_throughput(USER_RATE) if USER_RATE > 0 else constant(0)
    _bad = itertools.cycle(["malformed", "unknown_language"])

    def _submit(self, name: str, body: dict[str, Any], verdict: str) -> None:
        with self.client.post(
            "/v1/submissions", json={**body, "wait": True}, name=name, catch_response=True, timeout=90
        ) as resp:
            if resp.status_code in (200, 201):
                CREATED.append(resp.json()["id"])
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            got = resp.json().get("verdict")
            if got != verdict:
                resp.failure(f"verdict {got!r}, expected {verdict!r}")
            else:
                resp.success()

    @task(30)
    def hello_python(self) -> None:
        self._submit("hello_python", {"language": "python3", "source": "print('hello')"}, "accepted")

    @task(25)
    def hello_c(self) -> None:
        self._submit("hello_c", {"language": "c", "source": HELLO_C}, "accepted")

    @task(20)
    def judge_python_10(self) -> None:
        self._submit("judge_python_10", {"language": "python3", "source": JUDGE_PY, "tests": JUDGE_TESTS}, "accepted")

    @task(10)
    def compile_error_c(self) -> None:
        self._submit("compile_error_c", {"language": "c", "source": BROKEN_C}, "compilation_error")

    @task(5)
    def tle_python(self) -> None:
        self._submit(
            "tle_python", {"language": "python3", "source": TLE_PY, "limits": {"cpu_time": 0.3}}, "time_limit_exceeded"
        )

    @task(10)
    def bad_request(self) -> None:
        kind = next(self._bad)
        if kind == "malformed":
            data, expected = b'{"language": "python3", "source": ', 400
        else:
            data, expected = json.dumps({"language": "cobol-85", "source": "x"}).encode(), 422
        with self.client.post(
            "/v1/submissions",
            data=data,
            headers={"Content-Type": "application/json"},
            name="bad_request",
            catch_response=True,
            timeout=30,
        ) as resp:
            if resp.status_code == expected and "error" in resp.json():
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}, expected {expected}")
