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
from core.models import CheckerKind, Result, State, Submission, encode_output


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


async def read_view(r: Any, keys: Keys, sid: str, with_request: bool = False) -> dict[str, Any] | None:
    """The public view of submission `sid`, read from Redis (`with_request`: and, as `request`,
    what was asked: request_view); None when unknown or expired."""
    fields = await r.hgetall(keys.submission(sid))
    if not fields or b"spec" not in fields:
        return None
    view = submission_view(fields)
    if with_request:
        view["request"] = request_view(Submission.from_json(json.loads(fields[b"spec"])))
    return view


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


def request_view(sub: Submission) -> dict[str, Any]:
    """The submission as it was asked, in the shape POST /v1/submissions takes (texts in its
    `encoding`) — or, for an interactive session, the shape of its first message on
    /v1/sessions (with `idle_timeout`): what `GET /v1/submissions/{id}?include=request` adds,
    so that a shared link shows the code it ran and a client can run it again."""
    enc = sub.encoding

    def texts(files: dict[str, bytes]) -> dict[str, str]:
        return {name: encode_output(data, enc) for name, data in files.items()}

    out: dict[str, Any] = {
        "language": sub.language,
        "files": texts(sub.files),
        "args": sub.args,
        "compile_options": sub.compile_options,
        "limits": sub.limits,
        "encoding": enc,
    }
    if sub.interactive:
        out["idle_timeout"] = sub.idle_timeout
        return out
    out["stop_on_first_failure"] = sub.stop_on_first_failure
    if sub.judge_mode:
        out["tests"] = [
            {
                "input": encode_output(t.input, enc),
                "expected_output": None if t.expected_output is None else encode_output(t.expected_output, enc),
            }
            for t in sub.tests
        ]
    else:
        out["stdin"] = encode_output(sub.tests[0].input if sub.tests else b"", enc)
    if sub.interactor is None:  # an interactor is the checker: a submission names one or the other
        checker: dict[str, Any] = {"type": str(sub.checker.kind)}
        if sub.checker.kind is CheckerKind.FLOAT:
            checker["tolerance"] = sub.checker.tolerance
        if sub.checker.kind is CheckerKind.CUSTOM:
            checker["language"] = sub.checker.language
            checker["source"] = next(iter(texts(sub.checker.files).values()), "")
        out["checker"] = checker
    if sub.collect:
        out["collect"] = sub.collect
    if sub.stream_output:
        out["stream_output"] = True
    if sub.interactor is not None:
        out["interactor"] = {
            "language": sub.interactor.language,
            "source": next(iter(texts(sub.interactor.files).values()), ""),
        }
    return out
