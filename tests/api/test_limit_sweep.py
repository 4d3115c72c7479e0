"""Every limit, every kind of bad value, through POST /v1/submissions (single and batch), against
the real stack: a value the jail cannot honour is a 422 naming the field and the bound, and a
value the API accepts runs to a verdict that is never internal_error — including each limit at
the very edge of what the jail accepts (which checks jail.spec.BOUNDS against the real jail)."""

from __future__ import annotations

from typing import Any

import pytest

from jail.spec import BOUNDS, format_size
from tests.conftest import Stack, error_of

PROGRAM = {"language": "python3", "source": "print(1)\n"}


def _refused_values(name: str) -> list[Any]:
    """Values of `name` that the jail cannot honour (or that are not numbers at all)."""
    bound = BOUNDS[name]
    values: list[Any] = [-1, -0.5, 10**30, 10**400, -(10**400), 1e300, 2**64, "1", True, None, [], {}]
    if bound.low > 0:
        values += [0, bound.low / 2]
    if bound.integer:
        values += [bound.low + 0.5, 1e-9]
    return values


def _show(value: float, name: str) -> str:
    return format_size(value) if BOUNDS[name].unit == "bytes" else f"{value:g}"


CASES = [(name, value) for name in BOUNDS for value in _refused_values(name)]


def _check_refusal(resp: Any, field: str, name: str, value: Any) -> None:
    assert resp.status == 422, (field, value, resp.body)
    err = error_of(resp)
    assert err["field"] == field, err
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # a number out of range: the reason names the bound that refused it
        assert err["code"] in ("out_of_range", "above_ceiling"), err
        bound = BOUNDS[name]
        assert (
            _show(bound.low, name) in err["reason"] or "ceiling" in err["reason"] or "whole number" in err["reason"]
        ), err
    else:
        assert err["code"] == "invalid" and "must be a number" in err["reason"], err


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_a_limit_the_jail_cannot_honour_is_422_single_and_batch(stack: Stack, name: str, value: Any) -> None:
    body = {**PROGRAM, "limits": {name: value}}
    _check_refusal(stack.request("POST", "/v1/submissions", body), f"limits.{name}", name, value)
    batch = {"submissions": [PROGRAM, body]}
    _check_refusal(stack.request("POST", "/v1/submissions/batch", batch), f"submissions[1].limits.{name}", name, value)


@pytest.mark.parametrize("name", list(BOUNDS))
def test_each_limit_at_the_jails_lowest_runs_to_a_verdict(stack: Stack, name: str) -> None:
    """The lowest value the API accepts reaches the jail and ends in a verdict of the program's:
    a run that is too small for the program is its fault (memory, time, runtime error), never a
    sandbox fault."""
    low = BOUNDS[name].low
    view = stack.submit({**PROGRAM, "limits": {name: low}})
    assert view["state"] == "finished" and view["verdict"] != "internal_error", (name, low, view)
    assert view["attempts"] == 1, view  # no retry: the jail took it the first time


def test_a_disk_limit_below_the_programs_own_files_is_not_a_sandbox_fault(stack: Stack) -> None:
    """200 KB of source under the lowest disk limit: the files come on top of `disk` (it used to
    be internal_error after every retry, the copy-in failing with ENOSPC)."""
    source = "# " + "x" * 200_000 + "\nprint(1)\n"
    view = stack.submit({"language": "python3", "source": source, "limits": {"disk": BOUNDS["disk"].low}})
    assert view["verdict"] == "accepted" and view["stdout"] == "1\n", view
