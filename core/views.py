"""The one public view of a submission: what GET answers, callbacks POST and `wait` returns;
and the stored record itself (read_stored), which the compatibility layers render their way.

Outputs are stored as bytes; they go out as UTF-8 text (undecodable bytes replaced) or
base64, following the submission's `encoding` (core.models.encode_output).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.keys import Keys
from core.models import Result, State, Submission, encode_output


@dataclass(slots=True)
class Stored:
    """A submission as Redis holds it: what was asked, where it is, and its result once finished."""

    submission: Submission
    state: State
    result: Result | None


async def read_stored(r: Any, keys: Keys, sid: str) -> Stored | None:
    """Submission `sid` with its sources and tests decoded; None when unknown or expired."""
    fields = await r.hgetall(keys.submission(sid))
    if not fields or b"spec" not in fields:
        return None
    return stored(fields)


def stored(fields: dict[bytes, bytes]) -> Stored:
    """A submission hash (HGETALL result) decoded."""
    raw = fields.get(b"result")
    return Stored(
        submission=Submission.from_json(json.loads(fields[b"spec"])),
        state=State(fields[b"state"].decode()),
        result=None if raw is None else Result.from_json(json.loads(raw)),
    )


async def read_view(r: Any, keys: Keys, sid: str) -> dict[str, Any] | None:
    """The public view of submission `sid`, read from Redis; None when unknown or expired."""
    fields = await r.hgetall(keys.submission(sid))
    if not fields or b"spec" not in fields:
        return None
    return submission_view(fields)


def submission_view(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The public view of a submission hash (HGETALL result)."""
    # The stored spec (Submission.to_json) is read as JSON, not decoded: its sources and
    # tests (megabytes of base64) are not part of the view.
    spec = json.loads(fields[b"spec"])
    view: dict[str, Any] = {
        "id": spec["id"],
        "state": fields[b"state"].decode(),
        "language": spec["language"],
        "encoding": spec["encoding"],
        "created_at": float(spec["created_at"]),
        "verdict": None,
    }
    raw = fields.get(b"result")
    if raw is None:
        if view["state"] == "running" and b"progress" in fields:
            view["progress"] = json.loads(fields[b"progress"])  # {"test": k, "of": n}
        return view
    result = Result.from_json(json.loads(raw))
    enc = spec["encoding"]
    tests = [t.public(enc) for t in result.tests]
    view.update(
        verdict=str(result.verdict),
        compile_output=encode_output(result.compile_output, enc),
        compile_time=result.compile_time,
        message=result.message,
        attempts=result.attempts,
        timings=result.timings,
        tests=tests,
    )
    judge_mode = any(t.get("expected_output") is not None for t in spec["tests"])  # Submission.judge_mode
    if not judge_mode and tests:
        # Run mode: one run; lift its output (and the files it left, if `collect` asked) to the top.
        lifted = ("stdout", "stderr", "exit_code", "signal", "files", "files_truncated")
        view.update({name: tests[0][name] for name in lifted})
    return view
