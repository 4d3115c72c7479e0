"""End-to-end judging through the real stack: every verdict, in C and in Python."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TIME_SCALE, Stack

ADD_TESTS = [{"input": "1 2\n", "expected_output": "3\n"}, {"input": "20 22\n", "expected_output": "42\n"}]

C_PROGRAMS = {
    "accepted": '#include <stdio.h>\nint main(){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);}',
    "wrong_answer": '#include <stdio.h>\nint main(){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a-b);}',
    "time_limit_exceeded": "int main(){volatile unsigned long x=0;for(;;)x++;}",
    "memory_limit_exceeded": "#include <stdlib.h>\n#include <string.h>\n"
    "int main(){for(;;){char*p=malloc(1<<20);if(!p)return 3;memset(p,1,1<<20);}}",
    "runtime_error": '#include <stdio.h>\nint main(){int*p=0;printf("%d",*p);return 0;}',
    "compilation_error": "int main(){ this is not C }",
    "output_limit_exceeded": '#include <stdio.h>\nint main(){for(;;)fputs("yyyyyyyyyyyyyyyyyyyy\\n",stdout);}',
}

PY_PROGRAMS = {
    "accepted": "a, b = map(int, input().split())\nprint(a + b)\n",
    "wrong_answer": "a, b = map(int, input().split())\nprint(a - b)\n",
    "time_limit_exceeded": "while True:\n    pass\n",
    "memory_limit_exceeded": "x = []\nwhile True:\n    x.append(bytearray(1 << 20))\n",
    "runtime_error": "raise ValueError('boom')\n",
    "output_limit_exceeded": "while True:\n    print('y' * 100)\n",
}

# Times are the program's own CPU and wall clock: in the v2 VM (TCG, TESTS_TIME_SCALE) the same
# work takes many times both, and a memory hog must fill its 64 MiB before its CPU runs out
# (at 1 s it did not, on a slow day: time_limit_exceeded).
LIMITS = {"cpu_time": 1 * TIME_SCALE, "wall_time": 3 * TIME_SCALE, "memory": 64 * 1024 * 1024, "output": 64 * 1024}


def judge(stack: Stack, language: str, source: str, **extra: Any) -> dict[str, Any]:
    body = {"language": language, "source": source, "tests": ADD_TESTS, "limits": LIMITS, **extra}
    return stack.submit(body)


@pytest.mark.parametrize("verdict", sorted(C_PROGRAMS))
def test_c_verdicts(stack: Stack, verdict: str) -> None:
    view = judge(stack, "c", C_PROGRAMS[verdict])
    assert view["verdict"] == verdict, view
    if verdict == "compilation_error":
        assert "error" in view["compile_output"] and view["tests"] == []
    else:
        assert view["tests"][0]["verdict"] == verdict
    if verdict == "runtime_error":
        assert view["tests"][0]["signal"] == "SIGSEGV"


@pytest.mark.parametrize("verdict", sorted(PY_PROGRAMS))
def test_python_verdicts(stack: Stack, verdict: str) -> None:
    view = judge(stack, "python3", PY_PROGRAMS[verdict])
    assert view["verdict"] == verdict, view
    assert view["tests"][0]["verdict"] == verdict
    if verdict == "runtime_error":
        assert view["tests"][0]["exit_code"] == 1 and "ValueError: boom" in view["tests"][0]["stderr"]
    if verdict == "accepted":
        assert [t["verdict"] for t in view["tests"]] == ["accepted", "accepted"]
        assert all(t["cpu_time"] > 0 and t["peak_memory"] > 0 for t in view["tests"])


def test_python_syntax_error_is_runtime_error(stack: Stack) -> None:
    view = judge(stack, "python3", "def (:\n")
    assert view["verdict"] == "runtime_error" and "SyntaxError" in view["tests"][0]["stderr"]


def test_an_executable_that_is_no_program_is_its_own_runtime_error(stack: Stack) -> None:
    # The sandbox is fine: the submission's own file cannot be executed. Not an internal error.
    view = stack.submit({"language": "executable", "source": "bm90IGFuIEVMRiBmaWxl", "encoding": "base64"})
    assert view["verdict"] == "runtime_error" and view["attempts"] == 1, view
    assert view["tests"][0]["status"] == "exec_failed" and "Exec format error" in view["tests"][0]["message"]


def test_all_tests_run_unless_stop_on_first_failure(stack: Stack) -> None:
    wrong_first = [{"input": "1 1\n", "expected_output": "3\n"}, *ADD_TESTS]
    view = stack.submit({"language": "python3", "source": PY_PROGRAMS["accepted"], "tests": wrong_first})
    assert [t["verdict"] for t in view["tests"]] == ["wrong_answer", "accepted", "accepted"]
    assert view["verdict"] == "wrong_answer"
    view = stack.submit(
        {"language": "python3", "source": PY_PROGRAMS["accepted"], "tests": wrong_first, "stop_on_first_failure": True}
    )
    assert [t["verdict"] for t in view["tests"]] == ["wrong_answer"]


def test_tokens_and_float_checkers(stack: Stack) -> None:
    src = "print('  3.0000001 \\n\\n  x ')\n"
    tests = [{"input": "", "expected_output": "3 x"}]
    assert stack.submit({"language": "python3", "source": src, "tests": tests})["verdict"] == "wrong_answer"
    assert (
        stack.submit({"language": "python3", "source": src, "tests": tests, "checker": "tokens"})["verdict"]
        == "wrong_answer"
    )
    assert (
        stack.submit(
            {"language": "python3", "source": src, "tests": tests, "checker": {"type": "float", "tolerance": 1e-6}}
        )["verdict"]
        == "accepted"
    )
    assert (
        stack.submit(
            {"language": "python3", "source": src, "tests": tests, "checker": {"type": "float", "tolerance": 1e-9}}
        )["verdict"]
        == "wrong_answer"
    )


CHECKER = """import sys
inp, out, ans = (open(p).read() for p in sys.argv[1:4])
# accept any output whose number has the same parity as the expected one
ok = int(out.split()[0]) % 2 == int(ans.split()[0]) % 2
print("parity ok" if ok else "parity differs")
sys.exit(0 if ok else 1)
"""


def test_custom_checker_runs_in_the_jail(stack: Stack) -> None:
    tests = [{"input": "", "expected_output": "4"}, {"input": "", "expected_output": "3"}]
    view = stack.submit(
        {
            "language": "c",
            "source": '#include <stdio.h>\nint main(){puts("10");}',
            "tests": tests,
            "checker": {"type": "custom", "language": "python3", "source": CHECKER},
        }
    )
    assert [t["verdict"] for t in view["tests"]] == ["accepted", "wrong_answer"], view
    assert view["tests"][0]["message"] == "parity ok"


@pytest.mark.parametrize(
    ("language", "source", "message"),
    [
        ("python3", "import sys\nsys.exit(3)  # testlib's FAIL\n", "exit code 3"),
        ("python3", "import os, sys\nprint('checker bug', file=sys.stderr, flush=True)\nos.abort()\n", "checker bug"),
        ("c", "int main( {", "did not compile"),
    ],
)
def test_a_broken_custom_checker_is_checker_error_at_once(
    stack: Stack, language: str, source: str, message: str
) -> None:
    """The checker's own failure is its author's: verdict checker_error, first attempt, no retry
    (it used to be retried three times as a sandbox fault, then called internal_error)."""
    tests = [{"input": "", "expected_output": "1"}, {"input": "", "expected_output": "2"}]
    view = stack.submit(
        {
            "language": "python3",
            "source": "print(1)",
            "tests": tests,
            "checker": {"type": "custom", "language": language, "source": source},
        }
    )
    assert view["verdict"] == "checker_error" and view["attempts"] == 1, view
    assert message in view["message"] + "".join(t["message"] for t in view["tests"]), view
    assert len(view["tests"]) <= 1  # judging stops at the checker's first failure


def test_run_mode_returns_output_and_exit_code(stack: Stack) -> None:
    view = stack.submit(
        {
            "language": "c",
            "source": "#include <stdio.h>\nint main(int c,char**v){"
            'fprintf(stderr,"err\\n");printf("%s %d\\n",v[1],c);return 7;}',
            "args": ["arg"],
        }
    )
    assert view["verdict"] == "runtime_error" and view["exit_code"] == 7
    assert view["stdout"] == "arg 2\n" and view["stderr"] == "err\n"


def test_a_result_keeps_at_most_max_result_bytes_of_output(stack: Stack) -> None:
    """Six tests printing 1.5 MiB each to stderr (9 MiB) under CELLBLOCK_MAX_RESULT (4M): every
    output is checked whole, the result keeps 4 MiB and flags what it cut. Before, tests x output
    limit was stored whole: a 927-byte request stored 128 MiB."""
    source = "import sys\nsys.stderr.write('e' * (3 << 19))\n"
    tests = [{"input": "", "expected_output": ""}] * 6
    view = stack.submit({"language": "python3", "source": source, "tests": tests, "limits": {"output": 2 << 20}})
    assert view["verdict"] == "accepted", view["message"]
    kept = [len(t["stderr"]) for t in view["tests"]]
    assert sum(kept) == 4 << 20 and kept[:2] == [3 << 19, 3 << 19] and kept[-1] == 0, kept
    assert [t["stderr_truncated"] for t in view["tests"]] == [False, False, True, True, True, True]
