"""A finished submission as Piston's `/execute` answers it: `language`, `version`, the `run`
stage and, for compiled languages, the `compile` stage (times in ms, memory in bytes, signal
names, Piston's two-letter statuses). `output` is stdout then stderr: cellblock keeps the two
streams apart, so it cannot interleave them in arrival order as Piston does."""

from __future__ import annotations

from typing import Any

from core.models import EXEC_FAILED, Result, TestResult, Verdict, encode_output, signal_number
from core.views import Stored

_KILLED = "SIGKILL"


def _text(data: bytes) -> str:
    return encode_output(data, "utf-8")


def _stage(stdout: bytes, stderr: bytes, **rest: Any) -> dict[str, Any]:
    return {"stdout": _text(stdout), "stderr": _text(stderr), "output": _text(stdout + stderr), **rest}


def _outcome(result: Result, test: TestResult) -> tuple[int | None, str | None, str | None, str | None]:
    """(code, signal, status, message) of a run, Piston's way."""
    v = result.verdict
    if v is Verdict.ACCEPTED:
        return test.exit_code or 0, None, None, None
    if v is Verdict.RUNTIME_ERROR:
        if test.status == EXEC_FAILED:
            return 126, None, "RE", test.message
        if test.signal:
            return None, test.signal, "SG", f"Caught fatal signal {signal_number(test.signal) or test.signal}"
        return test.exit_code, None, "RE", f"Exited with error status {test.exit_code}"
    if v is Verdict.TIME_LIMIT_EXCEEDED:
        return None, _KILLED, "TO", "Time limit exceeded"
    if v is Verdict.MEMORY_LIMIT_EXCEEDED:
        return None, _KILLED, "SG", "Memory limit exceeded"
    if v is Verdict.OUTPUT_LIMIT_EXCEEDED:
        if test.stderr_truncated and not test.stdout_truncated:
            return None, _KILLED, "EL", "stderr length exceeded"
        return None, _KILLED, "OL", "stdout length exceeded" if test.stdout_truncated else "File size limit exceeded"
    if v is Verdict.SECURITY_VIOLATION:
        return None, test.signal or "SIGSYS", "SG", test.message or "forbidden system call"
    return None, None, "XX", result.message or test.message or "internal error"


def _run(result: Result) -> dict[str, Any]:
    if not result.tests:  # the sandbox failed before the program ran
        return _stage(b"", b"", code=None, signal=None, message=result.message or "internal error", status="XX",
                      cpu_time=0, wall_time=0, memory=0)  # fmt: skip
    test = result.tests[0]
    code, sig, status, message = _outcome(result, test)
    return _stage(
        test.stdout,
        test.stderr,
        code=code,
        signal=sig,
        message=message,
        status=status,
        cpu_time=round(test.cpu_time * 1000),
        wall_time=round(test.wall_time * 1000),
        memory=test.peak_memory,
    )


def _compile(result: Result) -> dict[str, Any]:
    failed = result.verdict is Verdict.COMPILATION_ERROR
    code = result.compile_exit_code if result.compile_exit_code is not None else int(failed)
    return _stage(
        b"",
        result.compile_output,  # the compiler's stdout and stderr, merged
        code=code if failed or code == 0 else 0,
        signal=None,
        message=f"Exited with error status {code}" if failed else None,
        status="RE" if failed else None,
        cpu_time=round(result.compile_cpu_time * 1000),
        wall_time=round(result.compile_time * 1000),
        memory=result.compile_memory,
    )


def render(stored: Stored, compiled: bool) -> dict[str, Any]:
    """The answer to `/execute` for a finished submission."""
    result = stored.result
    assert result is not None
    out: dict[str, Any] = {
        "language": stored.submission.compat["language"],
        "version": stored.submission.compat["version"],
    }
    if compiled:
        out["compile"] = _compile(result)
        if result.verdict is Verdict.COMPILATION_ERROR:
            out["run"] = out["compile"]  # as Piston: clients read run.output unconditionally
            return out
    out["run"] = _run(result)
    return out
