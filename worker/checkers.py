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
bounded by CELLBLOCK_MAX_INPUT: so no checker splits the output into a list (22 million lines
of "ab" took the worker 3 GB and 3.6 s); each walks both sides in step, in the interpreter only
as far as the expected output goes, and checks what the output has beyond it with one scan.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator

from core.models import CheckerKind

_BLANK = re.compile(rb"[ \t\n\r\x0b\x0c]*")  # what bytes.split() and rstrip() take for whitespace
_TOKEN = re.compile(rb"[^ \t\n\r\x0b\x0c]+")


def exact(output: bytes, expected: bytes) -> bool:
    return output.rstrip() == expected.rstrip()


def _blank_from(text: bytes, pos: int) -> bool:
    return _BLANK.fullmatch(text, pos) is not None


def _lines(text: bytes) -> Iterator[tuple[bytes, int]]:
    """Each line without its trailing whitespace, and where the next one starts."""
    start = 0
    while start <= len(text):
        end = text.find(b"\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end].rstrip(), end + 1
        start = end + 1


def lines(output: bytes, expected: bytes) -> bool:
    """Judge0's rule: line by line, each line's trailing whitespace ignored, and the blank
    lines at the end."""
    got = _lines(output)
    after = 0  # where the output's next line starts
    for want, want_next in _lines(expected):
        line = next(got, None)
        if line is None:  # the output ended: the rest expected must be blank
            return not want and _blank_from(expected, want_next)
        if line[0] != want:
            return False
        after = line[1]
    return _blank_from(output, after)  # the expected lines ended: the rest of the output must be blank


def _tokens(text: bytes) -> Iterator[re.Match[bytes]]:
    return _TOKEN.finditer(text)


def _same_tokens(output: bytes, expected: bytes, equal: Callable[[bytes, bytes], bool]) -> bool:
    got = _tokens(output)
    end = 0
    for w in _tokens(expected):
        g = next(got, None)
        if g is None or not equal(g.group(), w.group()):
            return False
        end = g.end()
    return _TOKEN.search(output, end) is None  # nothing more in the output


def tokens(output: bytes, expected: bytes) -> bool:
    return _same_tokens(output, expected, bytes.__eq__)


# A decimal number, as judges print them: no `1_0`, no hex, no `inf` or `nan` (those are
# words, compared as they are written).
_NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(token: bytes) -> float | None:
    return float(token) if _NUMBER.fullmatch(token) else None


def floats(output: bytes, expected: bytes, tolerance: float) -> bool:
    def equal(g: bytes, w: bytes) -> bool:
        if g == w:
            return True
        gv, wv = _number(g), _number(w)
        if gv is None or wv is None:
            return False
        if not (math.isfinite(gv) and math.isfinite(wv)):  # 1e999 overflows: equal only to itself
            return gv == wv
        return abs(gv - wv) <= tolerance * max(1.0, abs(wv))

    return _same_tokens(output, expected, equal)


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
