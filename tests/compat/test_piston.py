"""The Piston layer: the npm `piston-client` (tests/clients, installed by `make test`), unchanged,
against a real stack with the API key in the mount path (Piston's clients cannot send a
header); and raw HTTP for every endpoint, refusal and run status."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import RedisServer, Response, Stack, isolated_api

CLIENTS = Path(__file__).resolve().parents[1] / "clients"


def piston_client(server: str, calls: list[list[Any]], tmp_path: Path) -> list[Any]:
    """Run the calls through piston-client in node; its answers."""
    if not (CLIENTS / "node_modules" / "piston-client").is_dir():
        pytest.fail("piston-client is not installed: run `make clients` (make test does)")
    requests = tmp_path / "calls.json"
    requests.write_text(json.dumps(calls))
    node = shutil.which("node")
    assert node is not None, "node is needed to run piston-client"
    done = subprocess.run(
        [node, str(CLIENTS / "piston.mjs"), server, str(requests)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def execute(stack: Stack, token: str, body: Any, **kw: Any) -> Response:
    return stack.request("POST", f"/piston/{token}/api/v2/execute", body, **kw)


def test_piston_client_runtimes_and_execute(cstack: Stack, token: str, tmp_path: Path) -> None:
    runtimes, python, cpp, broken, java = piston_client(
        f"{cstack.base}/piston/{token}",
        [
            ["runtimes"],
            ["execute", "python", "import sys\nprint(sys.argv[1:], input())", {"stdin": "hi"}],
            ["execute", "c++", "#include <cstdio>\nint main(){ puts(\"c++ ok\"); }", {}],
            ["execute", "c", "int main(){ syntax error }", {}],
            ["execute", "java", "public class Solution { public static void main(String[] a) {"
             " System.out.println(\"any class name\"); } }", {}],
        ],
        tmp_path,
    )  # fmt: skip
    names = {r["language"]: r for r in runtimes}
    assert {"python", "c", "c++", "java", "javascript", "typescript", "bash", "file"} <= set(names)
    assert names["c++"]["runtime"] == "gcc" and "cpp" in names["c++"]["aliases"]
    assert all(len(r["version"].split(".")) == 3 for r in runtimes)
    # the client posts text/plain, always sends args ["1","2","3"] and -1 memory limits
    assert python["language"] == "python" and python["version"] == names["python"]["version"]
    assert python["run"]["stdout"] == "['1', '2', '3'] hi\n" and python["run"]["code"] == 0
    assert "compile" not in python and python["run"]["status"] is None and python["run"]["memory"] > 0
    assert cpp["compile"]["code"] == 0 and cpp["run"]["output"] == "c++ ok\n"
    assert broken["compile"]["code"] != 0 and broken["run"] == broken["compile"]  # as Piston: run is compile
    assert "error" in broken["run"]["output"]
    assert java["run"]["stdout"] == "any class name\n", java


def test_piston_client_at_the_root_of_the_piston_port(cstack: Stack, token: str, tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{cstack.env['CELLBLOCK_PISTON_PORT']}/{token}"
    (answer,) = piston_client(server, [["execute", "javascript", "console.log(process.argv.length)", {}]], tmp_path)
    assert answer["run"]["stdout"] == "5\n", answer  # node, the script and the client's three args


def test_run_statuses(cstack: Stack, token: str) -> None:
    def run(language: str, code: str, **extra: Any) -> dict[str, Any]:
        got = execute(cstack, token, {"language": language, "version": "*", "files": [{"content": code}], **extra})
        assert got.status == 200, got.body
        return dict(got.body["run"])

    assert run("bash", "exit 4") | {"cpu_time": 0, "wall_time": 0, "memory": 0} == {
        "stdout": "", "stderr": "", "output": "", "code": 4, "signal": None, "message": "Exited with error status 4",
        "status": "RE", "cpu_time": 0, "wall_time": 0, "memory": 0,
    }  # fmt: skip
    segv = run("c", "int main(){ volatile int *p = 0; return *p; }")
    assert (segv["status"], segv["signal"], segv["code"]) == ("SG", "SIGSEGV", None)
    # the CPU limit stops it: the wall limit is far enough that a busy machine cannot reach it first
    slow = run("python3", "while True: pass", run_timeout=10000, run_cpu_time=500)
    assert (slow["status"], slow["signal"], slow["code"]) == ("TO", "SIGKILL", None) and slow["cpu_time"] >= 500
    hog = run("python", "x = bytearray(300 << 20)", run_memory_limit=64 << 20)
    assert (hog["status"], hog["signal"], hog["message"]) == ("SG", "SIGKILL", "Memory limit exceeded"), hog
    flood = run("py", "import sys\nsys.stdout.write('x' * (3 << 20))")
    assert (flood["status"], flood["signal"]) == ("OL", "SIGKILL")
    # stdin gets a newline, as Piston appends one; files beside the main one are importable
    echo = execute(
        cstack,
        token,
        {"language": "python", "version": "3.x", "stdin": "no newline",
         "files": [{"name": "main.py", "content": "import other\nprint(repr(input()), other.X)"},
                   {"name": "other.py", "content": "X = 42"}]},
    )  # fmt: skip
    assert echo.body["run"]["stdout"] == "'no newline' 42\n", echo.body
    binary = execute(
        cstack,
        token,
        {"language": "python", "version": "*", "files": [{"content": "cHJpbnQoJ2I2NCcp", "encoding": "base64"},
                                                          {"name": "x.txt", "content": "x"}]},
    )  # fmt: skip
    assert binary.body["run"]["stdout"] == "b64\n"


def test_refusals_are_400_with_a_message(cstack: Stack, token: str) -> None:
    files = [{"content": "print(1)"}]
    cases: list[tuple[Any, str]] = [
        ({"version": "*", "files": files}, "language is required as a string"),
        ({"language": "python", "files": files}, "version is required as a string"),
        ({"language": "python", "version": "*", "files": "print(1)"}, "files is required as an array"),
        ({"language": "python", "version": "*", "files": [{"content": 5}]}, "files[0].content is required as a string"),
        ({"language": "cobol", "version": "1.0.0", "files": files}, "cobol-1.0.0 runtime is unknown"),
        ({"language": "python", "version": "2.7.18", "files": files}, "python-2.7.18 runtime is unknown"),
        ({"language": "python", "version": "*", "files": files, "run_timeout": "soon"},
         "If specified, run_timeout must be a number"),
        ({"language": "python", "version": "*", "files": files, "run_timeout": 10**9},
         "run_timeout cannot exceed the configured limit of"),
        ({"language": "python", "version": "*", "files": files, "run_memory_limit": -5},
         "run_memory_limit must be non-negative"),
        ({"language": "python", "version": "*", "files": [{"content": "eA==", "encoding": "base64"}]},
         "files must include at least one utf8 encoded file"),
        ({"language": "python", "version": "*", "files": [*files, {"name": "../x.py", "content": ""}]},
         "invalid file name"),
        ({"language": "python", "version": "*", "files": [*files, {"name": "main.py", "content": ""}]},
         "files[1].name main.py is the name the main file"),
        ({"language": "python", "version": "*", "files": files, "run_timeout": 10**400},
         "If specified, run_timeout must be a number"),
        ({"language": "python", "version": "9" * 5000, "files": files}, "runtime is unknown"),
        ([files], "the body must be a JSON object"),
        ({"language": "java", "version": "*", "files": [{"content": "package a.b;\nclass S {}"}]},
         "a package declaration is not supported"),
    ]  # fmt: skip
    for body, message in cases:
        got = execute(cstack, token, body)
        assert got.status == 400 and message in got.body["message"], (body, got.body)
    malformed = execute(cstack, token, None, raw=b"{oops", headers={"Content-Type": "text/plain"})
    assert malformed.status == 400 and "JSON" in malformed.body["message"]
    too_big = execute(cstack, token, None, raw=b" " * (int(cstack.env["CELLBLOCK_MAX_BODY"]) + 1))
    assert too_big.status == 413 and "above" in too_big.body["message"]


def test_files_are_written_as_piston_writes_them(cstack: Stack, token: str) -> None:
    def run(files: list[dict[str, str]], language: str = "python") -> Any:
        got = execute(cstack, token, {"language": language, "version": "*", "files": files})
        assert got.status == 200, got.body
        return got.body["run"]["stdout"]

    # in order, a later file of a name replacing the earlier one, the main file's too (pistonpy sends it twice)
    assert (
        run([{"name": "main.py", "content": "print('first')"}, {"name": "main.py", "content": "print('last')"}])
        == "last\n"
    )
    assert run([{"content": "import a\nprint(a.X)"}, {"name": "a.py", "content": "X = 1"},
                {"name": "a.py", "content": "X = 2"}]) == "2\n"  # fmt: skip
    # in directories of their own
    assert run([{"name": "main.py", "content": "from lib.deep import util\nprint(util.X)"},
                {"name": "lib/deep/util.py", "content": "X = 42"}]) == "42\n"  # fmt: skip
    # a Java class whose name has a `$` (its file is named after it)
    java = 'public class My$Main { public static void main(String[] a) { System.out.println("dollar"); } }'
    assert run([{"content": java}], "java") == "dollar\n"


def test_paths_with_a_trailing_slash_and_a_bare_authorization_header(cstack: Stack, token: str) -> None:
    # Express routes `/runtimes/` as `/runtimes`; aiopyston asks for it, and sends its key as
    # `Authorization: <key>`, as the clients of Piston's public API do.
    for path in (f"/piston/{token}/api/v2/runtimes/", f"/piston/{token}/"):
        assert cstack.request("GET", path).status == 200, path
    body = {"language": "python", "version": "*", "files": [{"content": "print('bare')"}]}
    got = cstack.request("POST", "/piston/api/v2/execute/", body, headers={"Authorization": token})
    assert got.status == 200 and got.body["run"]["stdout"] == "bare\n", got.body
    wrong = cstack.request("POST", "/piston/api/v2/execute", body, headers={"Authorization": token + "x"})
    assert wrong.status == 401, wrong.body
    # a bare value is the last place a key is looked for: the path's key, X-Auth-Token come first
    opaque = {"Authorization": "some-proxys-token"}
    assert execute(cstack, token, body, headers=opaque).status == 200
    assert cstack.request("GET", "/piston/api/v2/runtimes", headers={**opaque, "X-Auth-Token": token}).status == 200


def test_a_hostile_java_source_is_answered_at_once(cstack: Stack, token: str) -> None:
    # Finding the class to launch reads the source in one linear pass: 200 KB of what would make
    # a backtracking scan take minutes is answered (a compile error), and the API goes on. (Blank
    # lines took the package check quadratic time: 120,000 of them held the API for 29 s.)
    for source in (
        "class A { " + "static " * 28_000 + "}",
        "/* " * 65_000,
        '"""' * 65_000,
        "\n" * 250_000 + "class A {}",  # within the stack's 256 KiB CELLBLOCK_MAX_SOURCE
    ):
        body = {"language": "java", "version": "*", "files": [{"content": source}]}
        got = execute(cstack, token, body, timeout=60)
        assert got.status == 200 and got.body["compile"]["code"] != 0, got.body


def test_loggable_paths_hide_keys() -> None:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from api.middleware import KEY_IN_PATH, loggable

    main, port = web.Application(), web.Application()
    port[KEY_IN_PATH] = True
    seen = {
        (main, "/piston/SECRET"): "/piston/<key>",
        (main, "/piston/SECRET/api/v2/execute"): "/piston/<key>/api/v2/execute",
        (main, "/piston/api/v2/execute"): "/piston/api/v2/execute",
        (main, "/v1/submissions"): "/v1/submissions",
        (port, "/SECRET"): "/<key>",
        (port, "/SECRET/api/v2"): "/<key>/api/v2",
        (port, "/api/v2/runtimes"): "/api/v2/runtimes",
    }
    for (app, path), shown in seen.items():
        assert loggable(make_mocked_request("GET", path, app=app)) == shown


def test_auth_packages_and_paths(cstack: Stack, token: str) -> None:
    assert cstack.request("GET", "/piston/api/v2/runtimes").status == 401
    assert cstack.request("GET", "/piston/wrong-key/api/v2/runtimes").status == 401
    by_header = cstack.request("GET", "/piston/api/v2/runtimes", headers={"X-Auth-Token": token})
    assert by_header.status == 200 and by_header.body
    packages = cstack.request("GET", f"/piston/{token}/api/v2/packages")
    assert all(p["installed"] is True for p in packages.body) and {"python", "c++"} <= {
        p["language"] for p in packages.body
    }
    for method in ("POST", "DELETE"):
        refused = cstack.request(method, f"/piston/{token}/api/v2/packages", {"language": "python", "version": "*"})
        assert refused.status == 403 and refused.body == {"message": "package management is not available"}
    assert cstack.request("GET", f"/piston/{token}").body["message"].startswith("Piston v3")
    missing = cstack.request("GET", f"/piston/{token}/api/v2/nothing")
    assert (missing.status, missing.body) == (404, {"message": "Not Found"})


def test_java_runs_the_class_that_declares_main(cstack: Stack, token: str) -> None:
    source = (
        "// the solution class, with a nested one\n"
        "import java.util.*;\nclass Helper { static int twice(int x) { return 2 * x; } }\n"
        "class Solution {\n  public class Node {}\n"
        '  public static void main(String[] args) { System.out.println("class X {" + Helper.twice(21)); }\n}\n'
    )
    got = execute(cstack, token, {"language": "java", "version": "*", "files": [{"name": "main", "content": source}]})
    assert got.body["run"]["stdout"] == "class X {42\n", got.body


def test_the_key_in_the_path_never_reaches_the_log(cstack: Stack, token: str) -> None:
    body = {"language": "python", "version": "*", "files": [{"content": "print(1)"}]}
    assert execute(cstack, token, body).status == 200
    port = cstack.env["CELLBLOCK_PISTON_PORT"]
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
    conn.request("POST", f"/{token}/api/v2/execute", body=json.dumps(body))
    assert conn.getresponse().status == 200
    conn.close()
    assert "/api/v2/execute" in cstack.logs() and token not in cstack.logs()


def test_no_free_worker_in_time_runs_nothing(redis_server: RedisServer, tmp_path: Path) -> None:
    # An API without workers and a 1 s CELLBLOCK_MAX_WAIT: Piston's clients cannot poll, so the
    # submission is withdrawn from the queue and the 503 may be retried without running it twice.
    alone = isolated_api(redis_server, tmp_path, "piston-alone", CELLBLOCK_MAX_WAIT="1")
    try:
        got = alone.request(
            "POST", "/piston/api/v2/execute", {"language": "python", "version": "*", "files": [{"content": "1"}]}
        )
        assert got.status == 503 and got.headers["retry-after"] == "5", got.body
        assert "nothing was run" in got.body["message"]
        r = redis.Redis.from_url(alone.redis_url)
        try:
            assert r.llen(f"rq:queue:{alone.env['CELLBLOCK_QUEUE']}") == 0
            assert not r.keys(f"{alone.env['CELLBLOCK_KEY_PREFIX']}:sub:*")
        finally:
            r.close()
    finally:
        alone.stop()
