"""Unit tests of the plain parts: checkers, config, wire types, request validation."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import ApiError
from api.validation import SUBMISSION_FIELDS, parse_submission
from core import models
from core.keys import Keys
from core.limits import job_timeout
from core.models import Checker, CheckerKind, Result, Submission, Verdict
from core.settings import SETTINGS, describe, load
from tests.conftest import ROOT
from worker import checkers


@pytest.mark.parametrize(
    "out,exp,ok",
    [
        (b"3\n", b"3", True),
        (b"3", b"3\n\n", True),
        (b"3 \n", b"3\n", True),
        (b" 3\n", b"3\n", False),
        (b"1\n2\n", b"1 2\n", False),
    ],
)
def test_exact(out: bytes, exp: bytes, ok: bool) -> None:
    assert checkers.exact(out, exp) is ok


@pytest.mark.parametrize(
    "out,exp,ok",
    [
        (b"a  b \nc\t\n\n\n", b"a  b\nc", True),  # trailing blanks of each line, trailing blank lines
        (b"a b\n", b"a  b\n", False),  # blanks between words count
        (b" a\n", b"a\n", False),  # leading blanks count
        (b"a\n\nb\n", b"a\nb\n", False),  # a blank line inside counts
        (b"a \r\n", b"a\n", True),  # \r is whitespace at the end of a line
    ],
)
def test_lines_is_judge0s_rule(out: bytes, exp: bytes, ok: bool) -> None:
    assert checkers.lines(out, exp) is ok
    assert checkers.builtin(CheckerKind.LINES, out, exp) is ok


def test_tokens() -> None:
    assert checkers.tokens(b"1\n 2\t3 ", b"1 2 3")
    assert not checkers.tokens(b"1 2", b"1 2 3")


@pytest.mark.parametrize(
    "out,exp,tol,ok",
    [
        (b"3.0000001", b"3", 1e-6, True),
        (b"3.01", b"3", 1e-6, False),
        (b"1e6", b"1000000.5", 1e-6, True),
        (b"nan", b"nan", 1e-6, True),
        (b"nan", b"1", 1e-6, False),
        (b"x 1.0", b"x 1", 0, True),
        (b"y", b"x", 1, False),
        (b"1 2", b"1", 1, False),
        # infinities are equal only to themselves: before, any number (and -inf) matched inf
        (b"5", b"inf", 1e-6, False),
        (b"-inf", b"inf", 1e-6, False),
        (b"1e999", b"1e999", 1e-6, True),
        (b"1e999", b"2e999", 1e-6, True),  # both overflow to +inf
        (b"-1e999", b"1e999", 1e-6, False),
        (b"1e999", b"1", 1e9, False),
        (b"inf", b"inf", 1e-6, True),  # the same word
        # only decimal numbers are numbers: Python's float() also reads 1_0 as 10
        (b"1_0", b"10", 1e-6, False),
        (b"0x10", b"16", 1e-6, False),
        (b"-.5", b"-0.5", 0, True),
        (b"+2.", b"2", 0, True),
    ],
)
def test_floats(out: bytes, exp: bytes, tol: float, ok: bool) -> None:
    assert checkers.floats(out, exp, tol) is ok


# The rules as they read, on whole splits (the checkers split the output only as far as needed).
def reference_lines(output: bytes, expected: bytes) -> bool:
    def trimmed(text: bytes) -> bytes:
        return b"\n".join(line.rstrip() for line in text.split(b"\n")).rstrip()

    return trimmed(output) == trimmed(expected)


def reference_floats(output: bytes, expected: bytes, tolerance: float) -> bool:
    def number(token: bytes) -> float | None:  # digits, a point, an exponent: what float() reads of them
        if token.strip(b"0123456789.eE+-"):
            return None
        try:
            return float(token)
        except ValueError:
            return None

    def equal(g: bytes, w: bytes) -> bool:
        gv, wv = number(g), number(w)
        if g == w or gv is None or wv is None:
            return g == w
        if not (math.isfinite(gv) and math.isfinite(wv)):
            return gv == wv
        return abs(gv - wv) <= tolerance * max(1.0, abs(wv))

    got, want = output.split(), expected.split()
    return len(got) == len(want) and all(equal(g, w) for g, w in zip(got, want, strict=True))


SYMBOLS = [b"a", b"1", b"1.5", b"e", b"-", b"_", b"x", b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c", b"\x1c", b"\x85"]
TEXT = st.lists(st.sampled_from(SYMBOLS), max_size=12)


@settings(max_examples=3000, deadline=None)
@given(TEXT, TEXT)
def test_the_checkers_keep_their_rules(out: list[bytes], exp: list[bytes]) -> None:
    output, expected = b"".join(out), b"".join(exp)
    for a, b in ((output, expected), (output, output + b" \n\t"), (expected + b"\n \n", expected)):
        assert checkers.lines(a, b) is reference_lines(a, b), (a, b)
        assert checkers.tokens(a, b) is (a.split() == b.split()), (a, b)
        assert checkers.floats(a, b, 0.1) is reference_floats(a, b, 0.1), (a, b)


def test_a_huge_output_is_checked_without_a_copy_per_line() -> None:
    import tracemalloc

    # 16 MiB of output, 5.6 million lines (as lists, ~400 MB of objects) against an expected
    # output that CELLBLOCK_MAX_INPUT keeps small
    output = b"ab\n" * ((16 << 20) // 3)
    blank_beyond = b"ab\n" + b" \n" * (8 << 20)
    tracemalloc.start()
    try:
        for kind in (CheckerKind.EXACT, CheckerKind.LINES, CheckerKind.TOKENS, CheckerKind.FLOAT):
            assert not checkers.builtin(kind, output, b"x\n")
            assert not checkers.builtin(kind, output, b"ab\n" * 1000)  # a match as far as expected goes
            assert checkers.builtin(kind, blank_beyond, b"ab")  # only blanks beyond the expected
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(output), peak  # exact's two rstrip copies at most, never a list of lines


def test_custom_is_not_builtin() -> None:
    with pytest.raises(ValueError):
        checkers.builtin(CheckerKind.CUSTOM, b"", b"")


def test_config_defaults_and_errors() -> None:
    cfg = load({})
    assert cfg.port == 8080 and cfg.host == "127.0.0.1" and cfg.redis_url == ""
    assert cfg.own_redis_url().startswith("unix://") and cfg.worker_count() >= 1
    assert load({"CELLBLOCK_REDIS_PORT": "6400"}).own_redis_url() == "redis://127.0.0.1:6400/0"
    with pytest.raises(ValueError, match="CELLBLOCK_PORT"):
        load({"CELLBLOCK_PORT": "eighty"})
    table = describe()
    assert all(s.name in table for s in SETTINGS)
    assert table in (ROOT / "README.md").read_text(), "README's settings table is not `cellblock config`'s"
    assert load({"CELLBLOCK_MAX_BODY": "1.5M", "CELLBLOCK_COMPILE_CACHE_MAX": "2G"}).max_body == 3 << 19
    with pytest.raises(ValueError, match="CELLBLOCK_MAX_INPUT"):
        load({"CELLBLOCK_MAX_INPUT": "lots"})
    with pytest.raises(ValueError, match="CELLBLOCK_SESSIONS_PER_WORKER"):
        load({"CELLBLOCK_SESSIONS_PER_WORKER": "0"})
    with pytest.raises(ValueError, match="CELLBLOCK_SESSION_IDLE_TIMEOUT"):
        load({"CELLBLOCK_SESSION_IDLE_TIMEOUT": "0"})


def test_keys_share_a_prefix() -> None:
    k = Keys("p")
    assert k.submission("x") == "p:sub:x" and k.events("x") == "p:sub:x:events" and k.callbacks().startswith("p:")


def test_wire_types_round_trip() -> None:
    sub = Submission(
        id="i",
        language="c",
        files={"main.c": b"\x00\xff"},
        tests=[models.TestCase(b"in", b"out"), models.TestCase(b"", None)],
        args=["a"],
        compile_options=["-O2"],
        limits={"cpu_time": 1.0},
        checker=Checker(CheckerKind.CUSTOM, 0.5, "python3", {"main.py": b"x"}),
        encoding="base64",
        callback_url="http://h/",
        stop_on_first_failure=True,
        created_at=1.5,
        stream_output=True,
        interactor=models.Interactor("python3", {"main.py": b"\xfe"}, {"cpu_time": 2.0}),
        interactive=True,
        idle_timeout=7.5,
        collect=["out/*.png"],
    )
    assert Submission.from_json(sub.to_json()) == sub
    res = Result(
        "i",
        Verdict.WRONG_ANSWER,
        [
            models.TestResult(
                1,
                Verdict.WRONG_ANSWER,
                stdout=b"\x01",
                stderr=b"e",
                interactor={"exit_code": 1},
                files={"a": b"\x00"},
                files_truncated=True,
            )
        ],
        compile_output=b"warn",
        timings={"jail": 0.1},
    )
    assert Result.from_json(res.to_json()) == res


def _languages() -> dict[str, Any]:
    from policies.languages import available_languages

    return available_languages()


def test_job_timeout_covers_every_test() -> None:
    langs = _languages()
    cfg = load({})
    body = {
        "language": "python3",
        "source": "1",
        "limits": {"wall_time": 3},
        "tests": [{"input": "", "expected_output": ""}] * 4,
    }
    acc = parse_submission(body, cfg, langs)
    assert acc.job_timeout >= 4 * 3 + cfg.job_grace
    assert acc.job_timeout == job_timeout(acc.submission, langs["python3"], cfg.job_grace)


def test_file_names_may_not_make_a_file_a_directory() -> None:
    import dataclasses

    from core.inputs import InputError, normalize_files

    python = _languages()["python3"]
    assert sorted(normalize_files(python, {"main.py": b"", "a/b/c.py": b"", "a/x.py": b""})) == [
        "a/b/c.py",
        "a/x.py",
        "main.py",
    ]
    # the language's own files (TypeScript's node-globals.d.ts) go beside them: theirs count too
    typed = dataclasses.replace(python, extra_files=(("globals.d.ts", b""),))
    for files in ({"a": b"", "a/b/c.py": b""}, {"a/b": b"", "a/b/c.py": b""}, {"globals.d.ts/x.py": b""}):
        with pytest.raises(InputError, match="is a file and the directory of another file"):
            normalize_files(typed, {"main.py": b"", **files})


# Empty containers are leaves: an `extend` that may draw nothing from `inner` makes hypothesis
# warn, now and then, that it "doesn't use its argument" (an error under pytest).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.just([]) | st.just({}),
    lambda inner: st.lists(inner, min_size=1, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                             min_size=1, max_size=4),
    max_leaves=20,
)  # fmt: skip
FIELDS = st.sampled_from(sorted(SUBMISSION_FIELDS))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(FIELDS, JSON, max_size=8), st.sampled_from(["c", "python3", "nope"]))
def test_validation_refuses_with_api_error_never_crashes(body: dict[str, Any], lang: str) -> None:
    body = {"language": lang, **body} if "language" not in body else body
    try:
        acc = parse_submission(body, load({}), _languages())
    except ApiError as exc:
        assert 400 <= exc.status < 500 and exc.reason
    else:
        assert acc.submission.language in ("c", "python3")
