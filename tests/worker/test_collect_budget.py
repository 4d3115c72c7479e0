"""`collect` in the worker's plain parts: the result budget, and the files in storage and view."""

from __future__ import annotations

import base64

from core import models
from core.models import Submission, Verdict
from worker.judge import OutputBudget


def test_budget_keeps_whole_files_in_order_and_stops_at_the_first_that_does_not_fit() -> None:
    budget = OutputBudget(10)
    kept, cut = budget.keep_files({"a": b"12345", "b": b"123456", "c": b"1"})
    assert kept == {"a": b"12345"} and cut  # b does not fit; c comes after it: not kept
    assert budget.left == 5
    kept, cut = OutputBudget(100).keep_files({"a": b"1", "b\udcff": b"2", "c": b"3"})
    assert kept == {"a": b"1", "c": b"3"} and cut  # a name that is not UTF-8 cannot be a JSON key
    assert OutputBudget(2).keep_files({"a": b"1", "b": b"2"}) == ({"a": b"1", "b": b"2"}, False)


def test_files_round_trip_and_are_base64_whatever_the_encoding() -> None:
    tr = models.TestResult(1, Verdict.ACCEPTED, stdout=b"hi", files={"out/a.png": b"\x89PNG\xff"}, files_truncated=True)
    assert models.TestResult.from_json(tr.to_json()) == tr
    shown = tr.public("utf-8")
    assert shown["stdout"] == "hi"
    assert shown["files"] == {"out/a.png": base64.b64encode(b"\x89PNG\xff").decode()}
    assert shown["files_truncated"] is True


def test_results_and_submissions_stored_before_collect_still_load() -> None:
    old = models.TestResult(1, Verdict.ACCEPTED).to_json()
    del old["files"], old["files_truncated"]
    assert models.TestResult.from_json(old) == models.TestResult(1, Verdict.ACCEPTED)
    sub = Submission("0" * 32, "python3", {"main.py": b"print(1)"}, [models.TestCase()], collect=["*.json"])
    assert Submission.from_json(sub.to_json()).collect == ["*.json"]
    stored = sub.to_json()
    del stored["collect"]
    assert Submission.from_json(stored).collect == []
