"""The Judge0 layer over raw HTTP: every status cellblock can produce (1-14), every refusal in
Judge0's shape, the exact `fields=*` set, base64 and UTF-8 rules, loose typing, ownership,
and callbacks as Judge0 sends them (PUT, base64)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from api.judge0 import render
from tests.compat.conftest import new_key
from tests.conftest import RedisServer, Response, Stack, free_port, isolated_api, make_stack


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


class Judge0:
    """Raw requests to a stack's Judge0 layer with one key."""

    def __init__(self, stack: Stack, token: str | None) -> None:
        self.stack = stack
        self.headers = {"X-Auth-Token": token} if token else {}

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Response:
        return self.stack.request(
            method, "/judge0" + path, body, headers={**self.headers, **kw.pop("headers", {})}, **kw
        )

    def run(self, body: dict[str, Any], query: str = "") -> dict[str, Any]:
        """POST with wait=true, then poll (the wait may end first): the finished submission, fields=*."""
        made = self.call("POST", f"/submissions?wait=true&fields=*{query}", body)
        assert made.status == 201, made.body
        return self.finished(made.body["token"], query)

    def finished(self, token: str, query: str = "", timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.call("GET", f"/submissions/{token}?fields=*{query}")
            assert got.status == 200, got.body
            if got.body["status"]["id"] not in (1, 2):
                return dict(got.body)
            assert time.monotonic() < deadline, got.body
            time.sleep(0.05)


@pytest.fixture(scope="module")
def j0(cstack: Stack, token: str) -> Judge0:
    return Judge0(cstack, token)


C_PROGRAMS = {
    7: "int main(){ volatile int *p = 0; return *p; }",
    9: "int main(){ volatile int a = 7, z = 0; return a / z; }",
    10: "#include <stdlib.h>\nint main(){ abort(); }",
    12: "#include <signal.h>\nint main(){ raise(SIGUSR1); return 0; }",
}


@pytest.mark.parametrize("status", sorted(C_PROGRAMS))
def test_runtime_error_statuses_by_signal(j0: Judge0, status: int) -> None:
    got = j0.run({"language_id": 50, "source_code": C_PROGRAMS[status]})
    assert got["status"]["id"] == status, got
    assert got["exit_signal"] is not None and got["message"] == f"Caught fatal signal {got['exit_signal']}"


def test_accepted_wrong_answer_and_nzec(j0: Judge0) -> None:
    ok = j0.run({"language_id": 71, "source_code": "print('a  b ')\nprint()", "expected_output": "a  b\n"})
    assert (ok["status"], ok["message"], ok["exit_code"]) == ({"id": 3, "description": "Accepted"}, None, 0)
    wrong = j0.run({"language_id": 71, "source_code": "print('a b')", "expected_output": "a  b"})
    assert wrong["status"] == {"id": 4, "description": "Wrong Answer"}
    nzec = j0.run({"language_id": 71, "source_code": "raise SystemExit(3)"})
    assert nzec["status"]["id"] == 11 and nzec["exit_code"] == 3 and nzec["exit_signal"] is None
    assert nzec["message"] == "Exited with error status 3"


def test_time_limit_and_memory_limit(j0: Judge0) -> None:
    # the CPU limit stops it (the wall limit far enough that a busy machine cannot reach it first)
    tle = j0.run({"language_id": 71, "source_code": "while True: pass", "cpu_time_limit": "0.5", "wall_time_limit": 10})
    assert tle["status"]["id"] == 5 and tle["message"] == "Time limit exceeded"
    assert float(tle["time"]) >= 0.5 and tle["cpu_time_limit"] == 0.5
    # memory_limit in KB, sent as a float the way the SDK types it
    mle = j0.run({"language_id": 50, "memory_limit": 32768.0, "source_code": MEMORY_HOG})
    assert mle["status"]["id"] == 12 and mle["message"] == "Memory limit exceeded", mle
    assert mle["memory_limit"] == 32768 and 30000 <= mle["memory"] <= 32768


MEMORY_HOG = (
    "#include <stdlib.h>\n#include <string.h>\n"
    "int main(){ for(;;){ char *p = malloc(1<<20); if(!p) return 1; memset(p, 1, 1<<20); } }"
)


def test_output_limit_is_sigxfsz_status(j0: Judge0) -> None:
    got = j0.run({"language_id": 71, "source_code": "import sys\nsys.stdout.write('x' * (3 << 20))"})
    assert got["status"]["id"] == 8 and got["message"] == "Output limit exceeded", got


def test_compilation_error_nulls(j0: Judge0) -> None:
    got = j0.run({"language_id": 54, "source_code": "int main() { return }"})
    assert got["status"]["id"] == 6 and "error" in got["compile_output"]
    for name in ("stdout", "stderr", "time", "wall_time", "memory", "exit_code", "exit_signal", "message"):
        assert got[name] is None, name


def test_exec_format_error(j0: Judge0) -> None:
    got = j0.run({"language_id": 44, "source_code": b64(b"\x00\x01 not an ELF file")}, "&base64_encoded=true")
    assert got["status"]["id"] == 14, got


def test_in_queue_then_processing(redis_server: RedisServer, tmp_path: Path, j0: Judge0) -> None:
    # In Queue: an API with no worker. Processing: a program that sleeps, polled.
    alone = isolated_api(redis_server, tmp_path, "judge0-queue")
    try:
        made = alone.request("POST", "/judge0/submissions", {"language_id": 71, "source_code": "print(1)"})
        got = alone.request("GET", f"/judge0/submissions/{made.body['token']}?fields=status,stdout,time")
        assert got.body == {"status": {"id": 1, "description": "In Queue"}, "stdout": None, "time": None}
    finally:
        alone.stop()
    made = j0.call("POST", "/submissions", {"language_id": 71, "source_code": "import time\ntime.sleep(3)"})
    deadline = time.monotonic() + 60
    while (got := j0.call("GET", f"/submissions/{made.body['token']}?fields=status")).body["status"]["id"] != 2:
        assert got.body["status"]["id"] == 1 and time.monotonic() < deadline, got.body
        time.sleep(0.05)
    assert j0.finished(made.body["token"])["status"]["id"] == 3


def test_internal_error(redis_server: RedisServer, tmp_path: Path) -> None:
    # A worker whose jail has no slots: a sandbox fault, never blamed on the program.
    env = {"CELLBLOCK_JAIL_SLOTS": "0", "CELLBLOCK_JOB_RETRIES": "0"}
    stack = make_stack(redis_server, tmp_path, "judge0-fault", 1, env)
    try:
        got = Judge0(stack, None).run({"language_id": 71, "source_code": "print(1)"})
        assert got["status"] == {"id": 13, "description": "Internal Error"}
        assert got["message"] and got["stdout"] is None
    finally:
        stack.stop()


def test_fields_star_is_exactly_judge0s_set(j0: Judge0) -> None:
    got = j0.run({"language_id": 71, "source_code": "print(1)", "stdin": "in", "unknown_field": 1})
    # Judge0 1.13.1's set, stated here apart from the code's own list (api/judge0/requests.py)
    assert len(got) == 35 and set(got) == {
        "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id", "created_at",
        "finished_at", "time", "memory", "stderr", "token", "number_of_runs", "cpu_time_limit",
        "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit", "max_processes_and_or_threads",
        "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
        "max_file_size", "compile_output", "exit_code", "exit_signal", "message", "wall_time",
        "compiler_options", "command_line_arguments", "redirect_stderr_to_stdout", "callback_url",
        "additional_files", "enable_network", "status", "language",
    }  # fmt: skip
    assert got["source_code"] == "print(1)" and got["stdin"] == "in" and got["stdout"] == "1\n"
    assert isinstance(got["time"], str) and float(got["time"]) >= 0 and isinstance(got["memory"], int)
    assert time.strptime(got["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ") and got["created_at"][-5] != ":"
    default = j0.call("GET", f"/submissions/{got['token']}")
    assert set(default.body) == {"token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"}


def test_loose_typing_args_options_and_runs(j0: Judge0) -> None:
    got = j0.run(
        {
            "language_id": "50",
            "source_code": "#include <stdio.h>\nint main(int c, char **v){ for(int i=1;i<c;i++) puts(v[i]); }",
            "command_line_arguments": "one 'two words' $x;",
            "compiler_options": "-Wall",
            "number_of_runs": "3",
            "redirect_stderr_to_stdout": "true",
            "wall_time_limit": 4,
        }
    )
    assert got["status"]["id"] == 3, got
    assert got["stdout"] == "one\ntwo words\nx\n"  # Judge0 strips $ & ; < > | ` before splitting
    assert (got["number_of_runs"], got["compiler_options"], got["redirect_stderr_to_stdout"]) == (3, "-Wall", True)
    assert got["wall_time_limit"] == 4.0


def test_redirect_stderr_to_stdout(j0: Judge0) -> None:
    source = "import sys\nprint('out')\nsys.stdout.flush()\nprint('err', file=sys.stderr)"
    got = j0.run({"language_id": 71, "source_code": source, "redirect_stderr_to_stdout": True})
    assert got["stdout"] == "out\nerr\n" and got["stderr"] is None


def zipped(members: dict[str, str]) -> str:
    """A zip of `members` (name -> text; a name ending in / is a directory's entry), base64."""
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return b64(archive.getvalue())


def test_additional_files_zip(j0: Judge0) -> None:
    flat = zipped({"helper.py": "WORD = 'from the zip'\n"})
    got = j0.run({"language_id": 71, "source_code": "import helper\nprint(helper.WORD)", "additional_files": flat})
    assert got["stdout"] == "from the zip\n", got
    assert got["additional_files"] == flat
    # Judge0 unzips into the box, directories and all (`zip -r` writes a directory's own entry)
    nested = zipped({"lib/": "", "lib/words/deep.py": "WORD = 'two levels down'\n"})
    source = "from lib.words import deep\nprint(deep.WORD)"
    got = j0.run({"language_id": 71, "source_code": source, "additional_files": nested})
    assert got["stdout"] == "two levels down\n", got
    for name, why in (("../up.py", "invalid file name"), ("a/../b.py", "invalid file name"), ("main.py", "replace")):
        body = {"language_id": 71, "source_code": "print(1)", "additional_files": zipped({name: "x = 1\n"})}
        refused = j0.call("POST", "/submissions", body)
        assert refused.status == 422 and why in refused.body["additional_files"][0], (name, refused.body)


def test_paths_with_a_trailing_slash_and_the_text_endpoints(j0: Judge0) -> None:
    # Rails routes `/submissions/` as `/submissions`: judge0api asks for it with the slash.
    made = j0.call("POST", "/submissions/?wait=true", {"language_id": 71, "source_code": "print('slash')"})
    assert made.status == 201, made.body
    assert j0.finished(made.body["token"])["stdout"] == "slash\n"
    again = j0.call("GET", f"/submissions/{made.body['token']}/")
    assert again.status == 200 and again.body["token"] == made.body["token"], again.body
    assert j0.call("GET", "/languages/").status == 200
    assert j0.call("GET", "/nowhere/").status == 404
    # the key in the query (for clients that cannot send a header) beside an opaque Authorization
    opaque = j0.stack.request(
        "GET", f"/judge0/languages?X-Auth-Token={j0.headers['X-Auth-Token']}", headers={"Authorization": "proxy-x"}
    )
    assert opaque.status == 200, opaque.body
    for path, word in (("/isolate", "cellblock jail"), ("/license", "Apache")):
        text = j0.call("GET", path)
        assert text.status == 200 and text.headers["content-type"].startswith("text/plain"), text
        assert word in text.body, text.body


def test_base64_in_and_out_and_the_utf8_rule(j0: Judge0) -> None:
    source = "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe' + sys.stdin.buffer.read())"
    body = {"language_id": 71, "source_code": b64(source), "stdin": b64(b"\x00bin")}
    got = j0.run(body, "&base64_encoded=true")
    assert base64.b64decode(got["stdout"]) == b"\xff\xfe\x00bin" and got["message"] is None
    assert base64.b64decode(got["source_code"]).decode() == source
    plain = j0.call("GET", f"/submissions/{got['token']}")
    assert plain.status == 400
    assert plain.body == {"error": render.NOT_UTF8}
    assert render.NOT_UTF8.startswith("some attributes for this submission cannot be converted to UTF-8")
    waited = j0.call("POST", "/submissions?wait=true", {**body, "source_code": source, "stdin": "x"})
    assert waited.status == 201 and set(waited.body) == {"token", "error"}
    batch = j0.call("GET", f"/submissions/batch?tokens={got['token']}")
    assert batch.status == 400 and "one or more submissions" in batch.body["error"]
    # line breaks in base64 are accepted, as Ruby's decoder does
    wrapped = j0.run({"language_id": 71, "source_code": b64("print('ok')")[:4] + "\n" + b64("print('ok')")[4:]},
                     "&base64_encoded=true")  # fmt: skip
    assert base64.b64decode(wrapped["stdout"]) == b"ok\n"


def test_field_errors_are_422_with_judge0_messages(j0: Judge0) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"source_code": "print(1)"}, "language_id", "can't be blank"),
        ({"language_id": 150000, "source_code": "x"}, "language_id", "language with id 150000 doesn't exist"),
        ({"language_id": 71}, "source_code", "can't be blank"),
        ({"language_id": 71, "source_code": ""}, "source_code", "can't be blank"),
        ({"language_id": 71, "source_code": "x", "enable_network": True}, "enable_network", "enabling network"),
        ({"language_id": 71, "source_code": "x", "compiler_options": "-O2"}, "compiler_options", "only allowed"),
        ({"language_id": 71, "source_code": "x", "wall_time_limit": 3600}, "wall_time_limit", "ceiling"),
        ({"language_id": 71, "source_code": "x", "memory_limit": "lots"}, "memory_limit", "is not a number"),
        ({"language_id": 71, "source_code": "x", "number_of_runs": 0}, "number_of_runs", "from 1 to"),
        ({"language_id": 71, "source_code": "x", "callback_url": "ftp://x"}, "callback_url", "http"),
        ({"language_id": 71, "source_code": "x", "additional_files": b64("not a zip")}, "additional_files", "zip"),
        ({"language_id": 71, "source_code": "%%%"}, "source_code", "base64"),
        ({"language_id": 10**400, "source_code": "x"}, "language_id", "is not a number"),
        ({"language_id": 71, "source_code": "x", "memory_limit": -(10**400)}, "memory_limit", "is not a number"),
        ({"language_id": 71, "source_code": "x", "callback_url": "http://[::1"}, "callback_url", "not a valid URL"),
        ({"language_id": 71, "source_code": "x", "additional_files": CORRUPT_ZIP}, "additional_files", "zip"),
        ({"language_id": 71, "source_code": "x", "expected_output": "1", "redirect_stderr_to_stdout": True},
         "redirect_stderr_to_stdout", "cannot be combined with expected_output"),
    ]  # fmt: skip
    for body, field, words in cases:
        query = "?base64_encoded=true" if body.get("source_code") == "%%%" else ""
        got = j0.call("POST", "/submissions" + query, body)
        assert got.status == 422, (body, got.body)
        assert list(got.body) == [field] and words in got.body[field][0], (body, got.body)


def _corrupt_zip() -> str:
    """A zip whose directory is sound and whose deflated member is garbage."""
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.txt", "hello " * 1000)
    raw = bytearray(archive.getvalue())
    start = raw.index(b"data.txt") + len(b"data.txt")  # the member's compressed bytes follow its name
    raw[start : start + 40] = b"\xff" * 40
    return b64(bytes(raw))


CORRUPT_ZIP = _corrupt_zip()


def test_a_submission_of_another_api_is_not_a_judge0_token(cstack: Stack, token: str, j0: Judge0) -> None:
    made = cstack.request(
        "POST", "/v1/submissions", {"language": "python3", "source": "print(1)"}, headers={"X-Auth-Token": token}
    )
    as_token = str(uuid.UUID(made.body["id"]))
    assert j0.call("GET", f"/submissions/{as_token}?fields=*").status == 404


def test_other_refusals(cstack: Stack, j0: Judge0) -> None:
    assert j0.call("GET", "/submissions/8c2b0dcb-0000-4000-8000-000000000000").body == {
        "status": 404,
        "error": "Not Found",
    }
    assert j0.call("GET", "/submissions/not-a-token").status == 404
    assert j0.call("GET", "/submissions/8c2b0dcb-0000-4000-8000-000000000000?fields=stdout,bogus,x").body == {
        "error": "invalid fields: [bogus, x]"
    }
    assert j0.call("GET", "/languages/99999").status == 404
    no_key = Judge0(cstack, None).call("GET", "/languages")
    assert (no_key.status, no_key.body) == (401, "")
    assert Judge0(cstack, "caf\u00e9").call("GET", "/languages").status == 401  # a header byte beyond ASCII
    for method, path in (("GET", "/submissions"), ("DELETE", "/submissions/8c2b0dcb-0000-4000-8000-000000000000")):
        refused = j0.call(method, path)
        assert (refused.status, refused.body) == (403, ""), (method, path)
    assert j0.call("POST", "/authenticate").status == 200
    assert j0.call("POST", "/authorize").status == 403
    assert j0.call("POST", "/submissions", raw=b"{not json").status == 400
    too_big = j0.call("POST", "/submissions", raw=b" " * (int(cstack.env["CELLBLOCK_MAX_BODY"]) + 1))
    assert too_big.status == 413 and "above" in too_big.body["error"]


def test_batches(j0: Judge0) -> None:
    made = j0.call(
        "POST",
        "/submissions/batch",
        {"submissions": [{"language_id": 71, "source_code": "print(1)"}, {"language_id": 9999, "source_code": "x"}]},
    )
    assert made.status == 201
    assert set(made.body[0]) == {"token"} and made.body[1] == {"language_id": ["language with id 9999 doesn't exist"]}
    token = made.body[0]["token"]
    j0.finished(token)
    unknown = "8c2b0dcb-0000-4000-8000-000000000000"
    got = j0.call("GET", f"/submissions/batch?tokens={token},{unknown}&fields=stdout,status_id")
    assert got.body == {"submissions": [{"stdout": "1\n", "status_id": 3}, None]}
    none = j0.call("POST", "/submissions/batch", {"submissions": [{"language_id": 9999}]})
    assert none.status == 422 and none.body == [{"language_id": ["language with id 9999 doesn't exist"]}]
    empty = j0.call("GET", "/submissions/batch?tokens=")
    assert empty.status == 400 and empty.body == {"error": "there should be at least one submission in a batch"}
    too_many = j0.call("POST", "/submissions/batch", {"submissions": [{"language_id": 71}] * 11})
    assert too_many.status == 400 and "less than or equal to 10" in too_many.body["error"]


def test_catalog_endpoints(j0: Judge0) -> None:
    langs = j0.call("GET", "/languages").body
    ids = {lang["id"] for lang in langs}
    assert {46, 50, 52, 54, 44, 60, 62, 63, 78, 64, 68, 71, 72, 73, 74} <= ids and 70 not in ids
    assert [lang["name"] for lang in langs] == sorted(lang["name"] for lang in langs)
    assert j0.call("GET", "/languages/71").body["name"].startswith("Python (3.")
    assert j0.call("GET", "/languages/92").body["id"] == 92  # a hosted ce.judge0.com id, accepted
    statuses = j0.call("GET", "/statuses").body
    assert [s["id"] for s in statuses] == list(range(1, 15)) and statuses[10]["description"] == "Runtime Error (NZEC)"
    assert j0.call("GET", "/about").body["version"] == "1.13.1"
    config = j0.call("GET", "/config_info").body
    assert config["allow_enable_network"] is False and config["max_submission_batch_size"] == 10
    assert config["max_wall_time_limit"] >= config["wall_time_limit"] > 0
    workers = j0.call("GET", "/workers").body
    assert workers[0]["available"] == 2 and set(workers[0]) >= {"queue", "size", "idle", "working"}


def test_another_keys_token_is_not_found(cstack: Stack, j0: Judge0) -> None:
    made = j0.call("POST", "/submissions", {"language_id": 71, "source_code": "print(1)"})
    other = Judge0(cstack, new_key(cstack))
    assert other.call("GET", f"/submissions/{made.body['token']}").status == 404
    assert other.call("GET", f"/submissions/batch?tokens={made.body['token']}").body == {"submissions": [None]}


@pytest.fixture
def puts() -> Iterator[tuple[int, list[tuple[str, dict[str, Any]]]]]:
    """A receiver on 127.0.0.1 that records (method, JSON body) of every callback."""
    port, seen = free_port(), []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.method, await request.json()))
        return web.Response(status=200)

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/hook", hook)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port, seen
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_callback_is_a_put_of_the_base64_default_fields(
    j0: Judge0, puts: tuple[int, list[tuple[str, dict[str, Any]]]]
) -> None:
    port, seen = puts
    made = j0.call(
        "POST",
        "/submissions",
        {"language_id": 71, "source_code": "print('é')", "callback_url": f"http://127.0.0.1:{port}/hook"},
    )
    deadline = time.monotonic() + 60
    while not seen:
        assert time.monotonic() < deadline, "no callback"
        time.sleep(0.05)
    method, body = seen[0]
    assert method == "PUT"
    assert set(body) == {"token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status"}
    assert body["token"] == made.body["token"] and base64.b64decode(body["stdout"]).decode() == "é\n"


def test_cors_as_judge0_answers_it_once_keys_are_required(
    redis_server: RedisServer, tmp_path: Path, cstack: Stack, j0: Judge0
) -> None:
    # With keys required a browser IDE on any origin may call the layer (it still needs a key)...
    origin = {"Origin": "https://ide.example"}
    asked = {**origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-judge0-app"}
    preflight = cstack.request("OPTIONS", "/judge0/submissions", headers=asked)
    assert preflight.status == 204 and preflight.headers["access-control-allow-origin"] == "https://ide.example"
    assert preflight.headers["access-control-allow-headers"] == "x-judge0-app"  # any header, as Judge0
    got = j0.call("GET", "/statuses", headers=origin)
    assert got.status == 200 and got.headers["access-control-allow-origin"] == "https://ide.example"
    # ...but with keys off (loopback), a page from elsewhere may not make the browser run code here.
    open_api = isolated_api(redis_server, tmp_path, "judge0-cors")
    try:
        for path in ("/judge0/submissions", "/piston/api/v2/execute"):
            refused = open_api.request("POST", path, {"language_id": 71, "source_code": "x"}, headers=origin)
            assert refused.status == 403, (path, refused.body)
    finally:
        open_api.stop()
