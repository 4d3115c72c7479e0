"""cellblock's languages as Piston runtimes: canonical names, aliases, `X.Y.Z` versions, and
Piston's version selectors (semver: `3.11.2`, `3.x`, `3`, `*`, `^3.10.0`, `>=3.8`)."""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from api.versions import semver
from policies.languages import Language

# cellblock language -> Piston's name, its aliases (Piston's packages', then cellblock's own id
# when it differs), and the package that provides several languages.
_PISTON = {
    "bash": ("bash", ("sh",), None),
    "c": ("c", ("gcc",), "gcc"),
    "cpp": ("c++", ("cpp", "g++"), "gcc"),
    "executable": ("file", ("executable", "elf", "binary"), None),
    "go": ("go", ("golang",), None),
    "java": ("java", (), None),
    "javascript": ("javascript", ("node-javascript", "node-js", "js"), "node"),
    "kotlin": ("kotlin", ("kt",), None),
    "lua": ("lua", (), None),
    "php": ("php", ("php8",), None),
    "python3": ("python", ("py", "py3", "python3"), None),
    "ruby": ("ruby", ("ruby3", "rb"), None),
    "rust": ("rust", ("rs",), None),
    "typescript": ("typescript", ("ts", "node-ts", "tsc"), None),
}


@dataclass(frozen=True, slots=True)
class Runtime:
    language: str
    version: str
    aliases: tuple[str, ...]
    runtime: str | None
    cellblock: Language

    def json(self) -> dict[str, object]:
        out: dict[str, object] = {"language": self.language, "version": self.version, "aliases": list(self.aliases)}
        if self.runtime is not None:
            out["runtime"] = self.runtime
        return out

    def answers_to(self, name: str) -> bool:
        return name == self.language or name in self.aliases


def runtimes(available: dict[str, Language]) -> list[Runtime]:
    out = []
    for lid, (name, aliases, package) in _PISTON.items():
        lang = available.get(lid)
        if lang is None:
            continue
        version = semver(lang.version)
        extra = (f"python3.{version.split('.')[1]}",) if lid == "python3" else ()
        own = (lid,) if lid not in (name, *aliases) else ()
        out.append(Runtime(name, version, aliases + extra + own, package, lang))
    return out


_COMPARE: dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}  # fmt: skip
_SELECTOR = re.compile(r"(\^|~|>=|<=|>|<|=)?v?((?:\d{1,9}|[xX*])(?:\.(?:\d{1,9}|[xX*])){0,2})")


def satisfies(version: str, selector: str) -> bool:
    """Whether `version` (X.Y.Z) matches a Piston version selector (one semver comparator)."""
    selector = selector.strip()
    if selector in ("", "*", "x", "X"):
        return True
    m = _SELECTOR.fullmatch(selector)
    if m is None:
        return False
    op, spec = m.group(1) or "", m.group(2).split(".")
    have = tuple(int(p) for p in version.split("."))
    fixed = tuple(int(p) for p in itertools.takewhile(str.isdigit, spec))  # up to the first wildcard
    if op in _COMPARE:
        return _COMPARE[op](have[: len(fixed)], fixed)
    if op == "^":  # same major (same minor below 1.0), not older
        keep = 1 if fixed and fixed[0] > 0 else 2
        return have[:keep] == fixed[:keep] and have >= fixed
    if op == "~":  # same major.minor, not older
        return have[:2] == fixed[:2] and have >= fixed
    return have[: len(fixed)] == fixed  # "3", "3.11", "3.x", "3.11.2": a prefix


def find(available: dict[str, Language], name: str, selector: str) -> Runtime | None:
    """The newest runtime answering to `name` whose version satisfies `selector`."""
    found = [r for r in runtimes(available) if r.answers_to(name) and satisfies(r.version, selector)]
    return max(found, key=lambda r: tuple(int(p) for p in r.version.split(".")), default=None)
