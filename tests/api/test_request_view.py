"""`GET /v1/submissions/{id}?include=request`: the submission as it was asked, in POST's own
shape (what a shared playground link shows and a client can send again), and the units of the
limits in /v1/languages (what the playground's limit fields say)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from core.limits import LIMIT_NAMES
from jail.spec import BOUNDS
from tests.conftest import Stack, error_of

pytestmark = pytest.mark.slow

CHECKER = "import sys\nout = open(sys.argv[2]).read().split()\nsys.exit(0 if out == ['4'] else 1)\n"


def asked(stack: Stack, sid: str) -> dict[str, Any]:
    resp = stack.request("GET", f"/v1/submissions/{sid}?include=request")
    assert resp.status == 200, resp.body
    request: dict[str, Any] = resp.body["request"]
    assert resp.body["id"] == sid
    return request


def test_run_mode_comes_back_as_asked_and_runs_again_the_same(stack: Stack) -> None:
    body = {
        "language": "python3",
        "source": "import sys\nprint(input(), sys.argv[1:])\n",
        "stdin": "héllo\n",
        "args": ["a", "b c"],
        "limits": {"cpu_time": 1.5, "memory": 128 * 1024 * 1024},
    }
    first = stack.submit(body)
    request = asked(stack, first["id"])
    assert request == {
        "language": "python3",
        "files": {"main.py": body["source"]},
        "stdin": "héllo\n",
        "args": ["a", "b c"],
        "compile_options": [],
        "limits": {"cpu_time": 1.5, "memory": 128 * 1024 * 1024},
        "encoding": "utf-8",
        "stop_on_first_failure": False,
        "checker": {"type": "exact"},
    }
    again = stack.submit(request)
    assert again["stdout"] == first["stdout"] == "héllo ['a', 'b c']\n"
    # Without include the view stays as it was: no request in it.
    assert "request" not in stack.request("GET", f"/v1/submissions/{first['id']}").body


def test_judge_mode_keeps_tests_and_checker_in_its_encoding(stack: Stack) -> None:
    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    body = {
        "language": "python3",
        "encoding": "base64",
        "source": b64("print(int(input()) * 2)\n"),
        "tests": [
            {"input": b64("2\n"), "expected_output": b64("4\n")},
            {"input": b64("3\n"), "expected_output": b64("4\n")},
        ],
        "checker": {"type": "custom", "language": "python3", "source": b64(CHECKER)},
        "stop_on_first_failure": True,
    }
    first = stack.submit(body)
    assert [t["verdict"] for t in first["tests"]] == ["accepted", "wrong_answer"]
    request = asked(stack, first["id"])
    assert request["encoding"] == "base64" and "stdin" not in request
    assert request["files"] == {"main.py": body["source"]}
    assert request["tests"] == body["tests"]
    assert request["checker"] == {"type": "custom", "language": "python3", "source": body["checker"]["source"]}
    assert request["stop_on_first_failure"] is True
    assert stack.submit(request)["verdict"] == "wrong_answer"

    floats = stack.submit(
        {"language": "python3", "source": "print(0.5)", "tests": [{"input": "", "expected_output": "0.50001"}],
         "checker": {"type": "float", "tolerance": 0.001}}
    )  # fmt: skip
    assert asked(stack, floats["id"])["checker"] == {"type": "float", "tolerance": 0.001}


def test_an_interactor_submission_comes_back_without_a_checker_and_runs_again(stack: Stack) -> None:
    body = {
        "language": "python3",
        "source": "input()\nprint('ok', flush=True)\n",
        "tests": [{"input": "1"}],
        "interactor": {
            "language": "python3",
            "source": "import sys\nprint('q', flush=True)\nsys.exit(input() != 'ok')\n",
        },
        "collect": ["*.txt"],
        "stream_output": True,
    }
    first = stack.submit(body)
    assert first["verdict"] == "accepted", first
    request = asked(stack, first["id"])
    assert "checker" not in request  # the interactor is the checker: POST takes one or the other
    assert request["interactor"] == body["interactor"]
    assert request["tests"] == [{"input": "1", "expected_output": ""}]  # stored as an empty answer
    assert request["collect"] == ["*.txt"] and request["stream_output"] is True
    assert stack.submit(request)["verdict"] == "accepted"


def test_an_unknown_include_is_refused_naming_the_field(stack: Stack) -> None:
    sid = stack.submit({"language": "python3", "source": "print(1)"})["id"]
    resp = stack.request("GET", f"/v1/submissions/{sid}?include=request,secrets")
    assert resp.status == 422
    err = error_of(resp)
    assert err["field"] == "include" and "secrets" in err["reason"]
    assert stack.request("GET", f"/v1/submissions/{'0' * 32}?include=request").status == 404


def test_languages_say_what_each_limit_counts(stack: Stack) -> None:
    units = stack.request("GET", "/v1/languages").body["limit_units"]
    assert set(units) == set(LIMIT_NAMES)
    assert units["cpu_time"] == "seconds" and units["memory"] == "bytes" and units["pids"] == "items"
    assert all(units[name] == {"s": "seconds", "bytes": "bytes", "": "items"}[b.unit] for name, b in BOUNDS.items())
