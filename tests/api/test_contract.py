"""API contract: every endpoint, every refusal, against the real stack (real Redis, real workers)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from core.keys import Keys
from tests.conftest import RedisServer, Stack, error_of

PY_ECHO = "print(input())\n"


def test_languages_lists_core_languages(stack: Stack) -> None:
    resp = stack.request("GET", "/v1/languages")
    assert resp.status == 200
    langs = {lang["id"]: lang for lang in resp.body["languages"]}
    assert {"c", "python3"} <= set(langs)
    c = langs["c"]
    assert c["compiled"] is True and c["source_name"] == "main.c" and c["version"]
    assert c["limits"]["max"]["cpu_time"] >= c["limits"]["default"]["cpu_time"]
    assert langs["python3"]["compiled"] is False


def test_health_reports_redis_workers_queue(stack: Stack) -> None:
    resp = stack.request("GET", "/v1/health")
    assert resp.status == 200
    assert resp.body["status"] == "ok" and resp.body["redis"] is True
    assert resp.body["workers"] >= 2 and isinstance(resp.body["queue_depth"], int)


def test_openapi_lists_every_route(stack: Stack) -> None:
    resp = stack.request("GET", "/v1/openapi.json")
    assert resp.status == 200 and resp.body["openapi"].startswith("3.")
    assert {
        "/v1/submissions",
        "/v1/submissions/batch",
        "/v1/submissions/{id}",
        "/v1/submissions/{id}/events",
        "/v1/languages",
        "/v1/health",
    } <= set(resp.body["paths"])


def test_docs_page_is_html(stack: Stack) -> None:
    resp = stack.request("GET", "/docs")
    assert resp.status == 200 and resp.headers["content-type"].startswith("text/html")
    assert "/v1/submissions" in resp.body and "/v1/openapi.json" in resp.body


def test_create_without_wait_is_201_then_finishes(stack: Stack) -> None:
    resp = stack.request("POST", "/v1/submissions", {"language": "python3", "source": PY_ECHO, "stdin": "hi\n"})
    assert resp.status == 201
    sid = resp.body["id"]
    assert resp.body["state"] == "queued" and resp.headers["location"] == f"/v1/submissions/{sid}"
    view = stack.wait_state(sid)
    assert view["verdict"] == "accepted" and view["stdout"] == "hi\n"
    got = stack.request("GET", f"/v1/submissions/{sid}")
    assert got.status == 200 and got.body["id"] == sid


def test_wait_returns_finished_result(stack: Stack) -> None:
    resp = stack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": PY_ECHO, "stdin": "hello\n", "wait": 30}
    )
    assert resp.status == 200
    assert resp.body["state"] == "finished" and resp.body["verdict"] == "accepted"
    assert resp.body["stdout"] == "hello\n" and resp.body["exit_code"] == 0


def test_files_instead_of_source(stack: Stack) -> None:
    view = stack.submit(
        {
            "language": "python3",
            "files": {"main.py": "import helper\nhelper.hi()\n", "helper.py": "def hi():\n    print('hi')\n"},
        }
    )
    assert view["verdict"] == "accepted" and view["stdout"] == "hi\n"
    files = {
        "main.py": "from pkg.sub import helper\nhelper.hi()\n",
        "pkg/sub/helper.py": "def hi():\n    print('deep')\n",
    }
    nested = stack.submit({"language": "python3", "files": files})
    assert nested["verdict"] == "accepted" and nested["stdout"] == "deep\n", nested


def test_base64_encoding_both_ways(stack: Stack) -> None:
    src = base64.b64encode(b"import sys\nsys.stdout.buffer.write(bytes(range(256)))\n").decode()
    view = stack.submit({"language": "python3", "source": src, "encoding": "base64"})
    assert view["verdict"] == "accepted"
    assert base64.b64decode(view["stdout"]) == bytes(range(256))


def test_get_unknown_is_404(stack: Stack) -> None:
    resp = stack.request("GET", "/v1/submissions/nope")
    assert resp.status == 404 and error_of(resp)["code"] == "not_found"


def test_events_unknown_is_404(stack: Stack) -> None:
    resp = stack.request("GET", "/v1/submissions/nope/events")
    assert resp.status == 404 and error_of(resp)["code"] == "not_found"


def test_get_many_by_ids(stack: Stack) -> None:
    a = stack.submit({"language": "python3", "source": "print(1)"})
    b = stack.submit({"language": "python3", "source": "print(2)"})
    resp = stack.request("GET", f"/v1/submissions?ids={a['id']},{b['id']},missing")
    assert resp.status == 200
    subs = resp.body["submissions"]
    assert [s["id"] for s in subs] == [a["id"], b["id"], "missing"]
    assert subs[0]["stdout"] == "1\n" and subs[1]["stdout"] == "2\n" and subs[2]["error"] == "not_found"


@pytest.mark.parametrize("query,field", [("", "ids"), ("?ids=" + ",".join(["x"] * 11), "ids")])
def test_get_many_refusals(stack: Stack, query: str, field: str) -> None:
    resp = stack.request("GET", f"/v1/submissions{query}")
    assert resp.status == 422 and error_of(resp)["field"] == field


def test_batch_creates_all(stack: Stack) -> None:
    items = [{"language": "python3", "source": f"print({i})"} for i in range(3)]
    resp = stack.request("POST", "/v1/submissions/batch", {"submissions": items})
    assert resp.status == 201 and len(resp.body["ids"]) == 3
    outs = [stack.wait_state(sid)["stdout"] for sid in resp.body["ids"]]
    assert outs == ["0\n", "1\n", "2\n"]


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({"submissions": []}, 422, "submissions"),
        ({"submissions": "x"}, 422, "submissions"),
        ({}, 422, "submissions"),
        ({"submissions": [{"language": "python3", "source": "1"}] * 11}, 422, "submissions"),
        (
            {"submissions": [{"language": "python3", "source": "1"}, {"language": "cobol", "source": "x"}]},
            422,
            "submissions[1].language",
        ),
        ({"submissions": [{"language": "python3", "source": "1", "wait": True}]}, 422, "submissions[0].wait"),
        ({"submissions": [{"language": "python3", "source": "1"}], "wait": True}, 422, "wait"),  # not dropped
    ],
)
def test_batch_refusals(stack: Stack, body: dict[str, Any], status: int, field: str) -> None:
    resp = stack.request("POST", "/v1/submissions/batch", body)
    assert resp.status == status, resp.body
    assert error_of(resp)["field"] == field


def test_batch_is_all_or_nothing(stack: Stack, redis_server: RedisServer) -> None:
    r = redis_server.client()
    keys = Keys(stack.env["CELLBLOCK_KEY_PREFIX"])

    def stored() -> int:  # submissions of this stack in Redis, queued or not
        names = r.scan_iter(keys.submission("*"))
        return sum(1 for k in names if not k.endswith((b":events", b":owner")))

    before, depth_before = stored(), stack.request("GET", "/v1/health").body["queue_depth"]
    resp = stack.request(
        "POST",
        "/v1/submissions/batch",
        {"submissions": [{"language": "python3", "source": "1"}, {"language": "python3"}]},
    )
    assert resp.status == 422 and error_of(resp)["field"] == "submissions[1].source"
    assert stack.request("GET", "/v1/health").body["queue_depth"] <= depth_before
    assert stored() == before  # the valid first item was not stored either
    r.close()


def test_malformed_json_is_400(stack: Stack) -> None:
    resp = stack.request("POST", "/v1/submissions", raw=b'{"language": "c", ')
    assert resp.status == 400
    err = error_of(resp)
    assert err["code"] == "malformed_json" and err["field"] == "body"


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b"", b'{"wait": NaN}'])
def test_hostile_json_is_4xx(stack: Stack, raw: bytes) -> None:
    resp = stack.request("POST", "/v1/submissions", raw=raw)
    assert resp.status in (400, 422), resp.body
    error_of(resp)


def test_non_object_json_is_400(stack: Stack) -> None:
    resp = stack.request("POST", "/v1/submissions", body=["language", "c"])
    assert resp.status == 400 and error_of(resp)["field"] == "body"


KiB = 1024


@pytest.mark.parametrize(
    ("body", "field", "bound"),
    [  # the stack's bounds: 256 KiB of source, 512 KiB of input
        ({"language": "python3", "source": "#" * (256 * KiB + 1)}, "source", 256 * KiB),
        ({"language": "python3", "files": {"main.py": "print(1)\n", "big.txt": "x" * 256 * KiB}}, "files", 256 * KiB),
        ({"language": "python3", "source": "print(1)", "stdin": "x" * (512 * KiB + 1)}, "stdin", 512 * KiB),
        (
            {
                "language": "python3",
                "source": "print(1)",
                "tests": [{"input": "x" * 200 * KiB, "expected_output": "y" * 100 * KiB}] * 2,
            },
            "tests",
            512 * KiB,
        ),
    ],
)
def test_source_and_input_sizes_are_bounded(stack: Stack, body: dict[str, Any], field: str, bound: int) -> None:
    """Under the 1 MiB body cap, a source above CELLBLOCK_MAX_SOURCE or inputs above
    CELLBLOCK_MAX_INPUT are 422 `too_large`, naming the field and the bound."""
    resp = stack.request("POST", "/v1/submissions", body)
    assert resp.status == 422, resp.body
    err = error_of(resp)
    assert err["code"] == "too_large" and err["field"] == field, err
    assert re.search(rf"\bat most {bound}\b", err["reason"]), err  # the bound, in bytes


def test_body_too_large_is_413(stack: Stack) -> None:
    big = json.dumps({"language": "python3", "source": "#" + "x" * (1024 * 1024 + 10)}).encode()
    resp = stack.request("POST", "/v1/submissions", raw=big)
    assert resp.status == 413
    assert error_of(resp)["code"] == "body_too_large"


GOOD: dict[str, Any] = {"language": "python3", "source": PY_ECHO}


@pytest.mark.parametrize(
    "change,field,code",
    [
        ({"language": "cobol"}, "language", "unknown_language"),
        ({"language": None}, "language", "missing"),
        ({"language": 3}, "language", "invalid"),
        ({"source": None}, "source", "missing"),
        ({"files": {"main.py": "print(1)"}}, "source", "invalid"),  # both source and files
        ({"source": None, "files": {"../x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"a/../x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"/etc/x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"a//x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"a/.x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"/".join("d" * 10) + "/x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"a": "1", "a/x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {"main.py/x.py": "1", "main.py": "2"}}, "files", "invalid"),
        ({"source": None, "files": {}}, "files", "invalid"),
        ({"source": "!!!not base64", "encoding": "base64"}, "source", "invalid_base64"),
        (
            {"stdin": "@@@", "encoding": "base64", "source": base64.b64encode(PY_ECHO.encode()).decode()},
            "stdin",
            "invalid_base64",
        ),
        ({"encoding": "latin-1"}, "encoding", "invalid"),
        ({"limits": {"cpu_time": 10_000}}, "limits.cpu_time", "above_ceiling"),
        ({"limits": {"memory": 1 << 40}}, "limits.memory", "above_ceiling"),
        ({"limits": {"wall_time": -1}}, "limits.wall_time", "out_of_range"),
        ({"limits": {"pids": 2.5}}, "limits.pids", "out_of_range"),
        ({"limits": {"cpu_time": "1"}}, "limits.cpu_time", "invalid"),
        ({"limits": {"gpu": 1}}, "limits.gpu", "unknown_field"),
        ({"limits": [1]}, "limits", "invalid"),
        ({"tests": [{"input": "", "expected_output": ""}] * 21}, "tests", "too_many_tests"),
        ({"tests": []}, "tests", "invalid"),
        ({"tests": [{"input": "1"}]}, "tests[0].expected_output", "missing"),
        ({"tests": [{"input": "1", "expected_output": "1", "x": 1}]}, "tests[0].x", "invalid"),
        ({"tests": [{"input": "1", "expected_output": "1"}], "stdin": "1"}, "stdin", "invalid"),
        ({"checker": "fuzzy", "tests": [{"input": "", "expected_output": ""}]}, "checker.type", "invalid"),
        (
            {"checker": {"type": "float", "tolerence": 0.1}, "tests": [{"input": "", "expected_output": ""}]},
            "checker.tolerence",
            "unknown_field",
        ),
        (
            {
                "checker": {"type": "custom", "language": "cobol", "source": "x"},
                "tests": [{"input": "", "expected_output": ""}],
            },
            "checker.language",
            "unknown_language",
        ),
        (
            {"checker": {"type": "float", "tolerance": "a"}, "tests": [{"input": "", "expected_output": ""}]},
            "checker.tolerance",
            "invalid",
        ),
        ({"checker": "tokens"}, "checker", "invalid"),  # a checker without tests
        ({"wait": 10_000}, "wait", "above_ceiling"),
        ({"wait": 10**400}, "wait", "above_ceiling"),  # float() of it overflows: it used to be a 500
        ({"wait": "soon"}, "wait", "invalid"),
        ({"callback_url": "ftp://example.org/x"}, "callback_url", "invalid"),
        ({"callback_url": 5}, "callback_url", "invalid"),
        ({"args": "a b"}, "args", "invalid"),
        ({"args": ["x" * 5000]}, "args", "invalid"),
        ({"compile_options": ["-O2"]}, "compile_options", "invalid"),  # python is not compiled
        (
            {"language": "c", "source": "int main(){}", "compile_options": ["-fplugin=/tmp/evil.so"]},
            "compile_options[0]",
            "invalid",
        ),
        ({"stop_on_first_failure": "yes"}, "stop_on_first_failure", "invalid"),
        # a lone surrogate is valid JSON but no UTF-8: it used to crash the worker and its failure
        # handler (the submission stayed `running` until its TTL)
        ({"callback_url": "http://example.org/\ud800"}, "callback_url", "invalid"),
        ({"args": ["ok", "\ud800"]}, "args[1]", "invalid"),
        ({"language": "c", "source": "int main(){}", "compile_options": ["-D\udfff"]}, "compile_options[0]", "invalid"),
        ({"unexpected": 1}, "unexpected", "unknown_field"),
        ({"stream_output": "yes"}, "stream_output", "invalid"),
        ({"idle_timeout": 5}, "idle_timeout", "unknown_field"),  # a session's (/v1/sessions) only
        (
            {"interactor": {"language": "python3", "source": "\ud800"}, "tests": [{"input": ""}]},
            "interactor.source",
            "invalid",
        ),
    ],
)
def test_bad_input_is_422_naming_the_field(stack: Stack, change: dict[str, Any], field: str, code: str) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    resp = stack.request("POST", "/v1/submissions", body)
    assert resp.status == 422, resp.body
    err = error_of(resp)
    assert err["field"] == field, err
    assert err["code"] == code, err


def test_unknown_route_is_json_404(stack: Stack) -> None:
    resp = stack.request("GET", "/v2/nothing")
    assert resp.status == 404 and error_of(resp)["code"] == "not_found"


def test_wrong_method_is_json_405(stack: Stack) -> None:
    resp = stack.request("DELETE", "/v1/languages")
    assert resp.status == 405 and error_of(resp)["code"] == "method_not_allowed"


def test_an_id_that_is_not_a_submission_id_names_nothing(stack: Stack) -> None:
    """Ids are built into Redis keys: `<real id>:events` used to read the event stream as a hash
    (WRONGTYPE, a 500)."""
    sid = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}).body["id"]
    for path in (f"/v1/submissions/{sid}:events", f"/v1/submissions/{sid}:events/events", "/v1/submissions/..%2f"):
        resp = stack.request("GET", path)
        assert resp.status == 404 and error_of(resp)["code"] == "not_found", (path, resp.body)
    listed = stack.request("GET", f"/v1/submissions?ids={sid}:events,{sid}")
    assert listed.status == 200, listed.body
    assert listed.body["submissions"][0] == {"id": f"{sid}:events", "error": "not_found"}
    assert listed.body["submissions"][1]["id"] == sid
