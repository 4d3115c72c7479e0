"""A stored submission as Judge0 renders one: its fields (`fields` picks them), units (seconds
as decimal strings, memory in KB), `null` for empty output, its date format, base64 or text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from api.judge0.catalog import IN_QUEUE, PROCESSING, STATUSES, status_of
from core.models import State, TestResult, Verdict, b64, signal_number
from core.views import Stored

# Rendered as base64 when `base64_encoded=true` (`additional_files` always is).
ENCODED = frozenset(
    {"source_code", "stdin", "expected_output", "stdout", "stderr", "compile_output", "message"}
)  # fmt: skip
NOT_UTF8 = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter"
NOT_UTF8_BATCH = (
    "some attributes for one or more submissions cannot be converted to UTF-8, use base64_encoded=true query parameter"
)


class NotUtf8(Exception):
    """A text field holds bytes that are not UTF-8 and base64 was not asked for."""


def token(sid: str) -> str:
    """A submission id (uuid4 hex) as Judge0's token (the UUID with dashes)."""
    return str(uuid.UUID(hex=sid))


def submission_id(text: str) -> str | None:
    """A Judge0 token (with or without dashes) -> the submission id; None when it is no UUID."""
    try:
        return uuid.UUID(text.strip()).hex
    except ValueError:
        return None


def date(t: float) -> str:
    """`2024-04-18T12:34:56.789Z`: the one format the official SDK parses."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def _shown(tests: list[TestResult]) -> TestResult | None:
    """The run whose output is shown: the first that was not accepted, else the last."""
    return next((t for t in tests if t.verdict is not Verdict.ACCEPTED), tests[-1] if tests else None)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def attributes(stored: Stored) -> dict[str, Any]:
    """Every field of ALL_FIELDS, texts still as bytes."""
    sub, result = stored.submission, stored.result
    compat = sub.compat
    test = sub.tests[0]
    out: dict[str, Any] = {
        "token": token(sub.id),
        "source_code": sub.files.get(compat.get("source_file", ""), b""),
        "language_id": compat.get("language_id"),
        "language": {"id": compat.get("language_id"), "name": compat.get("language_name")},
        "stdin": test.input,
        "expected_output": test.expected_output,
        "created_at": date(sub.created_at),
        "finished_at": None,
        "number_of_runs": compat.get("number_of_runs", 1),
        "cpu_extra_time": compat.get("cpu_extra_time", 0.0),
        **compat.get("limits", {}),
        "enable_per_process_and_thread_time_limit": False,
        "enable_per_process_and_thread_memory_limit": False,
        "compiler_options": compat.get("compiler_options"),
        "command_line_arguments": compat.get("command_line_arguments"),
        "redirect_stderr_to_stdout": compat.get("redirect_stderr_to_stdout", False),
        "callback_url": sub.callback_url,
        "additional_files": compat.get("additional_files"),
        "enable_network": False,
        "stdout": None, "stderr": None, "compile_output": None, "message": None,
        "time": None, "wall_time": None, "memory": None, "exit_code": None, "exit_signal": None,
    }  # fmt: skip
    if result is None or stored.state is not State.FINISHED:
        status = IN_QUEUE if stored.state is State.QUEUED else PROCESSING
        out.update(status_id=status, status={"id": status, "description": STATUSES[status]})
        return out
    shown = _shown(result.tests)
    status, message = status_of(result, shown)
    out.update(
        status_id=status,
        status={"id": status, "description": STATUSES[status]},
        message=message.encode() if message else None,
        compile_output=result.compile_output or None,
        finished_at=date(result.timings["finished_at"]) if "finished_at" in result.timings else None,
    )
    if shown is None:  # a compile error, or a fault before any run
        return out
    stdout, stderr = shown.stdout, shown.stderr
    if compat.get("redirect_stderr_to_stdout"):  # cellblock keeps the two apart: appended, not interleaved
        stdout, stderr = stdout + stderr, b""
    out.update(
        stdout=stdout or None,
        stderr=stderr or None,
        time=_seconds(_mean([t.cpu_time for t in result.tests])),
        wall_time=_seconds(_mean([t.wall_time for t in result.tests])),
        memory=int(_mean([t.peak_memory for t in result.tests])) // 1024,
        exit_code=shown.exit_code if shown.exit_code is not None else 0,
        exit_signal=signal_number(shown.signal),
    )
    return out


def render(stored: Stored, fields: tuple[str, ...], encoded: bool) -> dict[str, Any]:
    """The fields asked for, texts as base64 or UTF-8 (NotUtf8 when a text is not UTF-8)."""
    every = attributes(stored)
    out: dict[str, Any] = {}
    for name in fields:
        value = every[name]
        if name in ENCODED and isinstance(value, bytes):
            if encoded:
                value = b64(value)
            else:
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise NotUtf8(name) from None
        out[name] = value
    return out
