"""Render stored submissions and results as the JSON the API returns.

Outputs are stored as bytes; they go out as UTF-8 text (undecodable bytes replaced) or
base64, following the submission's `encoding`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from worker.keys import Keys
from worker.models import Result


def _out(data: bytes, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    return data.decode("utf-8", errors="replace")


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
    tests = [
        {
            "index": t.index,
            "verdict": str(t.verdict),
            "status": t.status,
            "exit_code": t.exit_code,
            "signal": t.signal,
            "cpu_time": t.cpu_time,
            "wall_time": t.wall_time,
            "peak_memory": t.peak_memory,
            "stdout": _out(t.stdout, enc),
            "stderr": _out(t.stderr, enc),
            "stdout_truncated": t.stdout_truncated,
            "stderr_truncated": t.stderr_truncated,
            "message": t.message,
        }
        for t in result.tests
    ]
    view.update(
        verdict=str(result.verdict),
        compile_output=_out(result.compile_output, enc),
        compile_time=result.compile_time,
        message=result.message,
        attempts=result.attempts,
        timings=result.timings,
        tests=tests,
    )
    judge_mode = any(t.get("expected_output") is not None for t in spec["tests"])  # Submission.judge_mode
    if not judge_mode and tests:
        # Run mode: one run; lift its output to the top for convenience.
        first = tests[0]
        view.update(stdout=first["stdout"], stderr=first["stderr"], exit_code=first["exit_code"],
                    signal=first["signal"])
    return view
