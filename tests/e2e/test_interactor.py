"""Interactor problems through the real stack: a guessing game, every way it can end."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Stack

# Guess the secret in input.txt: "? x" is answered "<", ">" or "="; "! x" is the final answer.
GUESSING = """\
import sys
secret = int(open(sys.argv[1]).read())
for _ in range(40):
    line = sys.stdin.readline()
    if not line:
        print("the program stopped talking", file=sys.stderr)
        sys.exit(1)
    kind, x = line.split()
    if kind == "!":
        if int(x) == secret:
            print(f"found {secret}", file=sys.stderr)
            sys.exit(0)
        print(f"{x} is not {secret}", file=sys.stderr)
        sys.exit(1)
    x = int(x)
    print("<" if secret < x else ">" if secret > x else "=", flush=True)
print("too many questions", file=sys.stderr)
sys.exit(1)
"""

BINARY_SEARCH_PY = """\
lo, hi = 1, 10**9
while lo < hi:
    mid = (lo + hi) // 2
    print("?", mid, flush=True)
    answer = input()
    if answer == "=":
        lo = hi = mid
    elif answer == "<":
        hi = mid - 1
    else:
        lo = mid + 1
print("!", lo, flush=True)
"""

BINARY_SEARCH_C = r"""
#include <stdio.h>
int main(void) {
    long lo = 1, hi = 1000000000;
    char answer[4];
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        printf("? %ld\n", mid);
        fflush(stdout);
        if (scanf("%3s", answer) != 1) return 1;
        if (answer[0] == '=') lo = hi = mid;
        else if (answer[0] == '<') hi = mid - 1;
        else lo = mid + 1;
    }
    printf("! %ld\n", lo);
    return 0;
}
"""

TESTS = [{"input": "1"}, {"input": "777777777"}, {"input": "1000000000"}]
LIMITS = {"cpu_time": 2, "wall_time": 3}


def judged(stack: Stack, language: str, source: str, interactor: str = GUESSING, **extra: Any) -> dict[str, Any]:
    body = {"language": language, "source": source, "tests": TESTS, "limits": LIMITS,
            "interactor": {"language": "python3", "source": interactor}, **extra}  # fmt: skip
    return stack.submit(body)


@pytest.mark.parametrize(("language", "source"), [("python3", BINARY_SEARCH_PY), ("c", BINARY_SEARCH_C)])
def test_binary_search_is_accepted(stack: Stack, language: str, source: str) -> None:
    view = judged(stack, language, source)
    assert view["verdict"] == "accepted", view
    for test, secret in zip(view["tests"], ("1", "777777777", "1000000000"), strict=True):
        assert test["verdict"] == "accepted" and test["message"] == f"found {secret}", test
        assert test["interactor"]["status"] == "ok" and test["interactor"]["exit_code"] == 0
        assert test["interactor"]["cpu_time"] > 0 and test["cpu_time"] > 0 and test["wall_time"] > 0
        assert test["stdout"] == ""  # the program's output went to the interactor


def test_a_wrong_answer(stack: Stack) -> None:
    view = judged(stack, "python3", 'input_ = None\nprint("! 5", flush=True)\n')
    assert view["verdict"] == "wrong_answer", view
    assert view["tests"][0]["message"] == "wrong answer: 5 is not 1"


def test_a_program_that_never_answers_runs_out_of_time(stack: Stack) -> None:
    t0 = time.monotonic()
    view = judged(stack, "python3", "import time\ntime.sleep(60)\n", stop_on_first_failure=True)
    assert view["verdict"] == "time_limit_exceeded", view
    assert view["tests"][0]["status"] == "wall_time_limit"
    assert time.monotonic() - t0 < 30


def test_a_program_that_stops_reading_runs_out_of_time(stack: Stack) -> None:
    """The interactor floods a program that never reads: it blocks, the program's clock runs out."""
    flood = "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n"
    view = judged(stack, "python3", "import time\ntime.sleep(60)\n", interactor=flood, stop_on_first_failure=True)
    assert view["verdict"] == "time_limit_exceeded", view["tests"]


def test_a_program_that_crashes_is_a_runtime_error(stack: Stack) -> None:
    view = judged(stack, "python3", "print('? 1', flush=True)\nraise SystemExit(7)\n")
    assert view["verdict"] == "runtime_error", view
    assert view["tests"][0]["exit_code"] == 7


@pytest.mark.parametrize(
    ("interactor", "how"),
    [
        ("import sys\nsys.exit(3)\n", "testlib's fail"),
        ("import os\nos.abort()\n", "killed by SIGABRT"),
        ("import sys\nsys.exit(42)\n", "exit code 42"),
    ],
)
def test_an_interactor_that_fails_is_a_checker_error(stack: Stack, interactor: str, how: str) -> None:
    view = judged(stack, "python3", BINARY_SEARCH_PY, interactor=interactor)
    assert view["verdict"] == "checker_error", view
    assert view["tests"][0]["message"].startswith(f"the interactor failed ({how})"), view["tests"][0]


def test_an_interactor_that_hangs_ends_in_a_verdict(stack: Stack) -> None:
    t0 = time.monotonic()
    view = judged(stack, "python3", BINARY_SEARCH_PY, interactor="while True:\n    pass\n", stop_on_first_failure=True)
    assert view["verdict"] in ("time_limit_exceeded", "checker_error"), view
    assert time.monotonic() - t0 < 40


def test_an_interactor_that_does_not_compile(stack: Stack) -> None:
    body = {"language": "python3", "source": BINARY_SEARCH_PY, "tests": TESTS,
            "interactor": {"language": "c", "source": "int main( {"}}  # fmt: skip
    view = stack.submit(body)
    assert view["verdict"] == "checker_error" and view["message"].startswith("the interactor did not compile")


def test_refusals(stack: Stack) -> None:
    base = {"language": "python3", "source": "pass"}
    cases = [
        ({**base, "interactor": {"language": "python3", "source": "pass"}}, "interactor"),
        ({**base, "tests": TESTS, "interactor": "x"}, "interactor"),
        ({**base, "tests": TESTS, "interactor": {"language": "cobol", "source": "x"}}, "interactor.language"),
        ({**base, "tests": TESTS, "interactor": {"language": "python3"}}, "interactor.source"),
        ({**base, "tests": TESTS, "interactor": {"language": "python3", "source": "x", "args": []}}, "interactor.args"),
        (
            {**base, "tests": TESTS, "interactor": {"language": "python3", "source": "x"}, "checker": "tokens"},
            "checker",
        ),
    ]
    for body, field in cases:
        resp = stack.request("POST", "/v1/submissions", body)
        assert resp.status == 422 and resp.body["error"]["field"] == field, (body, resp.body)
