"""Output checkers: does a test's output match the expected output?

- exact:  byte-equal, except that trailing whitespace at the very end is ignored (a
          missing final newline is the commonest non-bug in judged programs).
- lines:  Judge0's rule: each line's trailing whitespace and the trailing blank lines are
          ignored; leading blanks and blanks between words count.
- tokens: equal sequences of whitespace-separated tokens.
- float:  like tokens, but two tokens that both parse as numbers are equal when within
          `tolerance`, absolute or relative (the usual |a-b| <= tol * max(1, |b|)).
- custom: a checker program run in the jail (see worker/judge.py: it gets the test's
          input, expected output and the program's output as files and answers with its
          exit code: 0 accepted, 1 wrong answer, anything else = checker failure).

Plain functions on bytes, no I/O: the judge calls them, tests call them directly. A program's
output may be as large as its `output` limit (64 MiB and more) while the expected output is
bounded by CELLBLOCK_MAX_INPUT: so no checker splits the whole output into a list (22 million
lines of "ab" took the worker 3 GB and 3.6 s). Each splits the expected output, then the
program's only that many times (`maxsplit`): what is beyond stays one piece, checked blank (or
empty of tokens) in one scan.
"""

from __future__ import annotations

import math
import re

from core.models import CheckerKind

_BLANK = re.compile(rb"[ \t\n\r\x0b\x0c]*")  # what bytes.split() and rstrip() take for whitespace


def exact(output: bytes, expected: bytes) -> bool:
    return output.rstrip() == expected.rstrip()


def lines(output: bytes, expected: bytes) -> bool:
    """Judge0's rule: line by line, each line's trailing whitespace ignored, and the blank
    lines at the end."""
    want = [line.rstrip() for line in expected.split(b"\n")]
    while want and not want[-1]:
        want.pop()
    got = output.split(b"\n", len(want))  # the first len(want) lines, then the rest in one piece
    beyond = got[len(want) :]
    return [line.rstrip() for line in got[: len(want)]] == want and all(_BLANK.fullmatch(b) for b in beyond)


def _tokens(output: bytes, expected: bytes) -> tuple[list[bytes], list[bytes]]:
    """The expected tokens, and the output's as far as they go: one more (the rest, whole) if the
    output has more."""
    want = expected.split()
    return output.split(maxsplit=len(want)), want


def tokens(output: bytes, expected: bytes) -> bool:
    got, want = _tokens(output, expected)
    return got == want


# A decimal number, as judges print them: no `1_0`, no hex, no `inf` or `nan` (those are
# words, compared as they are written).
_NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(token: bytes) -> float | None:
    return float(token) if _NUMBER.fullmatch(token) else None


def floats(output: bytes, expected: bytes, tolerance: float) -> bool:
    got, want = _tokens(output, expected)
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if g == w:
            continue
        gv, wv = _number(g), _number(w)
        if gv is None or wv is None:
            return False
        if not (math.isfinite(gv) and math.isfinite(wv)):  # 1e999 overflows: equal only to itself
            if gv != wv:
                return False
        elif abs(gv - wv) > tolerance * max(1.0, abs(wv)):
            return False
    return True


def builtin(kind: CheckerKind, output: bytes, expected: bytes, tolerance: float = 1e-6) -> bool:
    """Compare with one of the built-in checkers (not CUSTOM, which needs the jail)."""
    if kind is CheckerKind.EXACT:
        return exact(output, expected)
    if kind is CheckerKind.LINES:
        return lines(output, expected)
    if kind is CheckerKind.TOKENS:
        return tokens(output, expected)
    if kind is CheckerKind.FLOAT:
        return floats(output, expected, tolerance)
    raise ValueError(f"checker {kind} is not a built-in checker")
