"""The official Judge0 Python SDK (PyPI `judge0`), unchanged, against the Judge0 layer of a real
stack: pointed at `<api>/judge0` with `X-Auth-Token: <cellblock key>`, as a Judge0 CE user
would point it at their own server. The SDK asks for `fields=*` on every poll and refuses a
submission with any key it does not know, parses the dates strictly, and decodes base64
strictly: each run here passes through all of that."""

from __future__ import annotations

import json

import httpx
import judge0
import pytest

from tests.compat.conftest import new_key
from tests.conftest import Stack

C_READS_SUM = '#include <stdio.h>\nint main(){int a,b; scanf("%d %d",&a,&b); printf("%d\\n",a+b); return 0;}\n'


@pytest.fixture(scope="module")
def client(cstack: Stack, token: str) -> judge0.Client:
    # The constructor itself reads /languages and /config_info (every key of it is required).
    return judge0.Client(endpoint=f"{cstack.base}/judge0", headers={"X-Auth-Token": token})


def test_run_python_with_stdin(client: judge0.Client) -> None:
    result = judge0.run(client=client, source_code="print(input()[::-1])", language=judge0.PYTHON, stdin="abc")
    assert result.status == judge0.Status.ACCEPTED
    assert result.stdout == "cba\n"
    assert result.stderr is None
    assert 0 < result.time < 2 and result.memory > 0
    assert result.created_at is not None and result.finished_at is not None
    assert result.finished_at >= result.created_at


def test_judge_with_expected_output_the_judge0_way(client: judge0.Client) -> None:
    # Judge0 ignores trailing blanks on each line and trailing blank lines, nothing else.
    accepted = judge0.run(
        client=client, source_code=C_READS_SUM, language=judge0.C, stdin="2 3", expected_output="5  \n\n"
    )
    assert accepted.status == judge0.Status.ACCEPTED, accepted
    wrong = judge0.run(client=client, source_code=C_READS_SUM, language=judge0.C, stdin="2 3", expected_output="6")
    assert wrong.status == judge0.Status.WRONG_ANSWER
    assert wrong.stdout == "5\n"


def test_cpp_by_the_sdk_alias(cstack: Stack, token: str, client: judge0.Client) -> None:
    # judge0.CPP is id 52 in the SDK's 1.13.1 table: listed, and run by cellblock's C++.
    source = "#include <iostream>\nint main(){std::cout<<6*7;}"
    result = judge0.run(client=client, source_code=source, language=judge0.CPP)
    assert result.status == judge0.Status.ACCEPTED
    assert result.stdout == "42"
    asked = cstack.request(
        "GET", f"/judge0/submissions/{result.token}?fields=language_id,language", headers={"X-Auth-Token": token}
    )
    assert asked.body["language_id"] == 52
    assert asked.body["language"]["name"].startswith("C++ (GCC ")


def test_batch_create_and_batch_poll(client: judge0.Client) -> None:
    submissions = [judge0.Submission(source_code=f"print({i} * {i})", language=judge0.PYTHON) for i in range(5)]
    results = judge0.run(client=client, submissions=submissions)  # POST + GET /submissions/batch
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(5)]
    assert len({r.token for r in results}) == 5


def test_base64_round_trip_of_bytes_that_are_not_text(client: judge0.Client) -> None:
    # The SDK sends base64 and decodes the outputs itself (bytes that are not UTF-8 escaped).
    source = "import sys\nsys.stdout.buffer.write(b'\\xff' + sys.stdin.buffer.read())"
    result = judge0.run(client=client, source_code=source, language=judge0.PYTHON, stdin="héllo ✓")
    assert result.stdout == "\\xffhéllo ✓"


def test_async_run_then_polling(client: judge0.Client) -> None:
    submission = judge0.async_run(
        client=client, source_code="import time\ntime.sleep(0.5)\nraise SystemExit(3)", language=judge0.PYTHON
    )
    assert submission.token is not None
    judge0.wait(client=client, submissions=submission)  # polls GET /submissions/{token}?fields=*
    assert submission.status == judge0.Status.RUNTIME_ERROR_NZEC
    assert submission.exit_code == 3


def test_compile_error_has_the_compiler_output(client: judge0.Client) -> None:
    result = judge0.run(client=client, source_code="int main() { return x; }", language=judge0.C)
    assert result.status == judge0.Status.COMPILATION_ERROR
    assert "undeclared" in (result.compile_output or "")
    assert result.stdout is None and result.time is None


def test_a_bad_key_is_refused(cstack: Stack) -> None:
    with pytest.raises(RuntimeError, match="Authentication failed") as refused:
        judge0.Client(endpoint=f"{cstack.base}/judge0", headers={"X-Auth-Token": "not-a-key"})
    cause = refused.value.__cause__ or refused.value.__context__
    assert isinstance(cause, httpx.HTTPStatusError) and cause.response.status_code == 401


def test_another_keys_submission_is_unknown(cstack: Stack, client: judge0.Client) -> None:
    mine = judge0.async_run(client=client, source_code="print(1)", language=judge0.PYTHON)
    other = judge0.Client(endpoint=f"{cstack.base}/judge0", headers={"X-Auth-Token": new_key(cstack)})
    with pytest.raises(httpx.HTTPStatusError) as refused:
        other.get_submission(mine)
    assert refused.value.response.status_code == 404


def test_the_sdk_at_the_root_of_the_judge0_port(cstack: Stack, token: str) -> None:
    # A client configured with a host and a port only, as for Judge0's usual 2358.
    root = judge0.Client(
        endpoint=f"http://127.0.0.1:{cstack.env['CELLBLOCK_JUDGE0_PORT']}", headers={"X-Auth-Token": token}
    )
    result = judge0.run(client=root, source_code="print('root')", language=judge0.PYTHON)
    assert result.status == judge0.Status.ACCEPTED and result.stdout == "root\n"


def test_the_sdks_implicit_client_from_the_environment(
    cstack: Stack, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JUDGE0_CE_ENDPOINT + JUDGE0_CE_AUTH_HEADERS: then judge0.run needs no client at all.
    monkeypatch.setenv("JUDGE0_CE_ENDPOINT", f"{cstack.base}/judge0")
    monkeypatch.setenv("JUDGE0_CE_AUTH_HEADERS", json.dumps({"X-Auth-Token": token}))
    monkeypatch.setattr(judge0, "JUDGE0_IMPLICIT_CE_CLIENT", None)  # the SDK keeps the first one it made
    result = judge0.run(source_code="print('implicit')", language=judge0.PYTHON)
    assert result.status == judge0.Status.ACCEPTED and result.stdout == "implicit\n"
