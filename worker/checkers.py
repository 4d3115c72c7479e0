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

Plain functions on bytes, no I/O: the judge calls them, tests call them directly.
"""

from __future__ import annotations

import math
import re

from core.models import CheckerKind


def exact(output: bytes, expected: bytes) -> bool:
    return output.rstrip() == expected.rstrip()


def _trimmed_lines(text: bytes) -> bytes:
    return b"\n".join(line.rstrip() for line in text.split(b"\n")).rstrip()


def lines(output: bytes, expected: bytes) -> bool:
    return _trimmed_lines(output) == _trimmed_lines(expected)


def tokens(output: bytes, expected: bytes) -> bool:
    return output.split() == expected.split()


# A decimal number, as judges print them: no `1_0`, no hex, no `inf` or `nan` (those are
# words, compared as they are written).
_NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(token: bytes) -> float | None:
    return float(token) if _NUMBER.fullmatch(token) else None


def floats(output: bytes, expected: bytes, tolerance: float) -> bool:
    got, want = output.split(), expected.split()
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
