"""The one place that decides a run's limits.

Four sources, in this order: the language's defaults, the request's overrides, the API key's
ceilings, and the jail's own bounds (`jail.spec.BOUNDS`). `overrides()` turns a request's
`limits` object into the overrides stored with the submission, refusing (InputError, which
the API answers 422 naming the field and the bound) anything the jail could not honour or the
language or the key does not allow, and capping a default that is above the key's ceiling;
`run_limits()` is what the worker runs with. `ceiling()` checks an operator's key ceiling by
the same bounds, so a key can never make a default the jail refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.inputs import InputError
from core.models import CheckerKind, Submission
from jail.record import replace
from jail.spec import BOUNDS, Limits, MiB, parse_size
from policies.languages import Language

LIMIT_NAMES = tuple(BOUNDS)
SIZE_LIMITS = tuple(name for name, bound in BOUNDS.items() if bound.unit == "bytes")

_UNIT_WORDS = {"s": "seconds", "bytes": "bytes", "": "items"}
# What each limit's number counts, in words (GET /v1/languages says it to clients).
LIMIT_UNITS = {name: _UNIT_WORDS[bound.unit] for name, bound in BOUNDS.items()}

# A custom checker is the task author's program, not the submission's: these are its limits
# per test. An API key's ceilings bound them too (`checker_overrides`).
CHECKER_LIMITS = Limits(cpu_time=5.0, wall_time=10.0)
# Seconds a job may take beyond its tests' wall times: compiling a custom checker (or interactor).
CHECKER_COMPILE_S = 60.0
# An interactor's limits per test, like a checker's; its wall time is at least the program's
# plus INTERACTOR_WALL_MARGIN, so a program that stops answering runs out of time first.
INTERACTOR_LIMITS = CHECKER_LIMITS
INTERACTOR_WALL_MARGIN = 2.0
# What a test's `collect` may bring back: at most this many files and bytes (base64 adds a
# third on the wire). Reaching either stops the collect with `files_truncated`, not an error;
# the result's CELLBLOCK_MAX_RESULT budget (shared with the outputs) may keep less.
COLLECT_FILES = 64
COLLECT_BYTES = 4 * MiB


def _typed(name: str, value: float) -> Any:
    """An int for a whole-number limit, a float for the others (the type of Limits' field)."""
    return int(value) if BOUNDS[name].integer else float(value)


def overrides(
    raw: object, language: Language, ceilings: Mapping[str, float] | None = None, field: str = "limits"
) -> dict[str, float]:
    """A request's `limits` object -> the overrides to store; InputError names what is refused."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(field, "must be an object")
    maximum = language.run_limits.maximum
    out: dict[str, float] = {}
    for name, value in raw.items():
        where = f"{field}.{name}"
        bound = BOUNDS.get(name)
        if bound is None:
            raise InputError(where, f"unknown limit; known: {', '.join(LIMIT_NAMES)}", "unknown_field")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(where, f"must be a number of {_UNIT_WORDS[bound.unit]}, got {type(value).__name__}")
        why = bound.refuses(value)
        if why is not None:
            raise InputError(where, why, "out_of_range")
        if value > getattr(maximum, name):
            raise InputError(
                where,
                f"{bound.show(value)} is above the ceiling {bound.show(getattr(maximum, name))} for {language.id}",
                "above_ceiling",
            )
        if ceilings and name in ceilings and value > ceilings[name]:
            raise InputError(
                where,
                f"{bound.show(value)} is above this API key's ceiling {bound.show(ceilings[name])}",
                "above_key_ceiling",
            )
        out[name] = _typed(name, value)
    default = language.run_limits.default
    for name, top in (ceilings or {}).items():
        if name not in out and getattr(default, name) > top:
            out[name] = _typed(name, top)
    return out


def run_limits(language: Language, stored: Mapping[str, float]) -> Limits:
    """The limits a test runs with: the language's defaults with the stored overrides."""
    return replace(language.run_limits.default, **{name: _typed(name, value) for name, value in stored.items()})


def checker_overrides(ceilings: Mapping[str, float] | None = None) -> dict[str, float]:
    """What a custom checker's limits must give up to stay within the key's ceilings."""
    return {name: _typed(name, top) for name, top in (ceilings or {}).items() if getattr(CHECKER_LIMITS, name) > top}


def checker_limits(stored: Mapping[str, float]) -> Limits:
    """A custom checker's limits per test: CHECKER_LIMITS with the stored overrides."""
    return replace(CHECKER_LIMITS, **{name: _typed(name, value) for name, value in stored.items()})


def interactor_limits(stored: Mapping[str, float], program: Limits) -> Limits:
    """An interactor's limits for one test: INTERACTOR_LIMITS with the stored overrides, its wall
    time stretched to outlast the program's."""
    own = replace(INTERACTOR_LIMITS, **{name: _typed(name, value) for name, value in stored.items()})
    return replace(own, wall_time=max(own.wall_time, program.wall_time + INTERACTOR_WALL_MARGIN))


def ceiling(text: str) -> tuple[str, float]:
    """'memory=256M' -> ('memory', 268435456): an API key's ceiling for one limit (sizes in the
    one size grammar, times in seconds), within what the jail can honour. ValueError says why."""
    name, sep, value = text.partition("=")
    name = name.strip()
    bound = BOUNDS.get(name)
    if not sep or bound is None:
        raise ValueError(f"{text!r}: give NAME=VALUE with NAME one of {', '.join(LIMIT_NAMES)}")
    try:
        number: float = parse_size(value) if name in SIZE_LIMITS else float(value)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    why = bound.refuses(number)
    if why is not None:
        raise ValueError(f"{text!r}: {name} {why}")
    return name, _typed(name, number)


def job_timeout(sub: Submission, language: Language, grace: int) -> int:
    """Upper bound of a job's duration in seconds, for RQ's job timeout and the abandoned-job check."""
    total = float(grace)
    if language.compiled:
        total += language.compile_limits.default.wall_time
    per_test = run_limits(language, sub.limits).wall_time + 1.0
    if sub.checker.kind is CheckerKind.CUSTOM:
        per_test += checker_limits(sub.checker.limits).wall_time
        total += CHECKER_COMPILE_S
    if sub.interactor is not None:  # runs beside the program: its wall time is the test's
        per_test = interactor_limits(sub.interactor.limits, run_limits(language, sub.limits)).wall_time + 1.0
        total += CHECKER_COMPILE_S
    total += per_test * max(1, len(sub.tests))
    return int(total) + 1
