"""Wire and storage types of a submission: what is asked (Submission) and what came out (Result).

Stored in Redis as JSON; bytes are base64 in storage. The API validates requests into
these types and renders them back; the worker reads and writes them.
"""

from __future__ import annotations

import base64
import enum
import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from jail.spec import RunResult

# A submission's id: uuid4().hex, as the API makes them. Anything else names no submission (and
# must not reach a Redis key built from it, e.g. "<id>:events").
SUBMISSION_ID = "[0-9a-f]{32}"


class State(enum.StrEnum):
    """Lifecycle of a submission."""

    QUEUED = "queued"
    COMPILING = "compiling"
    RUNNING = "running"
    FINISHED = "finished"


class Verdict(enum.StrEnum):
    """Outcome of one test and of a whole submission. Only INTERNAL_ERROR is our fault;
    CHECKER_ERROR is the custom checker's (it did not compile, crashed or ran out of its
    limits), neither the program's nor the sandbox's."""

    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    RUNTIME_ERROR = "runtime_error"
    COMPILATION_ERROR = "compilation_error"
    SECURITY_VIOLATION = "security_violation"
    CHECKER_ERROR = "checker_error"
    INTERNAL_ERROR = "internal_error"


class CheckerKind(enum.StrEnum):
    """How a test's output is compared with the expected output."""

    EXACT = "exact"
    LINES = "lines"
    TOKENS = "tokens"
    FLOAT = "float"
    CUSTOM = "custom"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def signal_number(name: str | None) -> int | None:
    """A signal's number from its name as results carry it ("SIGSEGV" -> 11); None if unknown."""
    try:
        return int(signal.Signals[name]) if name else None
    except KeyError:
        return None


def encode_output(data: bytes, encoding: str) -> str:
    """A program's output as clients get it: UTF-8 text (undecodable bytes replaced) or base64."""
    return b64(data) if encoding == "base64" else data.decode("utf-8", errors="replace")


@dataclass(slots=True)
class TestCase:
    """One input and, in judge mode, the output it should produce (None: run mode, no check)."""

    input: bytes = b""
    expected_output: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "input": b64(self.input),
            "expected_output": None if self.expected_output is None else b64(self.expected_output),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TestCase:
        exp = d.get("expected_output")
        return cls(input=unb64(d["input"]), expected_output=None if exp is None else unb64(exp))


@dataclass(slots=True)
class Checker:
    """Comparison rule. CUSTOM runs `files` (in `language`) in the jail: see worker/checkers.py."""

    kind: CheckerKind = CheckerKind.EXACT
    tolerance: float = 1e-6
    language: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)  # overrides of core.limits.CHECKER_LIMITS

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "tolerance": self.tolerance,
            "language": self.language,
            "files": {k: b64(v) for k, v in self.files.items()},
            "limits": self.limits,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Checker:
        return cls(
            kind=CheckerKind(d["kind"]),
            tolerance=float(d["tolerance"]),
            language=d.get("language"),
            files={k: unb64(v) for k, v in d.get("files", {}).items()},
            limits=dict(d.get("limits", {})),
        )


@dataclass(slots=True)
class Interactor:
    """A judge that talks with the program turn by turn (worker/interactor.py), in a jail of
    its own, testlib-style: `interactor input.txt output.txt answer.txt`, its stdin the
    program's stdout and back; its exit code is the test's verdict."""

    language: str
    files: dict[str, bytes]
    limits: dict[str, float] = field(default_factory=dict)  # overrides of core.limits.INTERACTOR_LIMITS

    def to_json(self) -> dict[str, Any]:
        return {"language": self.language, "files": {k: b64(v) for k, v in self.files.items()}, "limits": self.limits}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Interactor:
        return cls(d["language"], {k: unb64(v) for k, v in d["files"].items()}, dict(d.get("limits", {})))


@dataclass(slots=True)
class Submission:
    """A validated request. `tests` holds one case without expected output in run mode."""

    id: str
    language: str
    files: dict[str, bytes]
    tests: list[TestCase]
    args: list[str] = field(default_factory=list)
    compile_options: list[str] = field(default_factory=list)
    limits: dict[str, float] = field(default_factory=dict)  # overrides of the language's defaults
    checker: Checker = field(default_factory=Checker)
    encoding: str = "utf-8"
    callback_url: str | None = None
    stop_on_first_failure: bool = False
    # Files to return from each test's run: patterns relative to /box (core.inputs.check_collect).
    collect: list[str] = field(default_factory=list)
    created_at: float = 0.0
    # What a compatibility layer (api/judge0, api/piston) was asked in its own terms and renders
    # back; {"api": name, ...}. Opaque to the core and the worker: it never changes a run.
    compat: dict[str, Any] = field(default_factory=dict)
    stream_output: bool = False  # `output` events while each test runs (GET .../events)
    interactor: Interactor | None = None
    # An interactive session (/v1/sessions): one run whose stdin comes from the client as it
    # types, ended after `idle_timeout` seconds with neither input nor output.
    interactive: bool = False
    idle_timeout: float = 0.0

    @property
    def judge_mode(self) -> bool:
        return self.interactor is not None or any(t.expected_output is not None for t in self.tests)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "language": self.language,
            "files": {k: b64(v) for k, v in self.files.items()},
            "tests": [t.to_json() for t in self.tests],
            "args": self.args,
            "compile_options": self.compile_options,
            "limits": self.limits,
            "checker": self.checker.to_json(),
            "encoding": self.encoding,
            "callback_url": self.callback_url,
            "stop_on_first_failure": self.stop_on_first_failure,
            "collect": self.collect,
            "created_at": self.created_at,
            "compat": self.compat,
            "stream_output": self.stream_output,
            "interactor": None if self.interactor is None else self.interactor.to_json(),
            "interactive": self.interactive,
            "idle_timeout": self.idle_timeout,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Submission:
        return cls(
            id=d["id"],
            language=d["language"],
            files={k: unb64(v) for k, v in d["files"].items()},
            tests=[TestCase.from_json(t) for t in d["tests"]],
            args=list(d["args"]),
            compile_options=list(d["compile_options"]),
            limits=dict(d["limits"]),
            checker=Checker.from_json(d["checker"]),
            encoding=d["encoding"],
            callback_url=d.get("callback_url"),
            stop_on_first_failure=bool(d["stop_on_first_failure"]),
            collect=list(d.get("collect") or []),
            created_at=float(d["created_at"]),
            compat=dict(d.get("compat") or {}),
            stream_output=bool(d.get("stream_output", False)),
            interactor=None if d.get("interactor") is None else Interactor.from_json(d["interactor"]),
            interactive=bool(d.get("interactive", False)),
            idle_timeout=float(d.get("idle_timeout", 0.0)),
        )


# A test's status when the submission's own program could not be started (not an executable,
# e.g. an `executable` submission that is no ELF binary): the program's fault, a runtime error.
EXEC_FAILED = "exec_failed"


@dataclass(slots=True)
class TestResult:
    """What one test did. stdout/stderr are raw bytes; the API encodes them on the way out.
    `files` are what the submission's `collect` brought back (path under /box -> content),
    `files_truncated` whether a cap (core.limits.COLLECT_*, CELLBLOCK_MAX_RESULT) left some out."""

    index: int
    verdict: Verdict
    status: str = ""  # the jail's Status, or EXEC_FAILED
    exit_code: int | None = None
    signal: str | None = None
    cpu_time: float = 0.0
    wall_time: float = 0.0
    peak_memory: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    files: dict[str, bytes] = field(default_factory=dict)
    files_truncated: bool = False
    message: str = ""
    jail_time: float = 0.0  # wall seconds spent in jail.run (for the latency breakdown)
    # With an interactor: how its run ended and what it used (status, exit_code, signal,
    # cpu_time, wall_time, peak_memory).
    interactor: dict[str, Any] | None = None

    @classmethod
    def of_run(cls, index: int, run: RunResult, jail_time: float) -> TestResult:
        """A test's result from the jail's, before checking: verdict accepted until judged."""
        carried = {name: getattr(run, name) for name in _FROM_THE_JAIL}
        return cls(index=index, verdict=Verdict.ACCEPTED, status=str(run.status), jail_time=jail_time, **carried)

    def public(self, encoding: str) -> dict[str, Any]:
        """What clients see of a test (every field but the internal `jail_time`); outputs
        as text or base64 by the submission's `encoding`; `files` always base64 (they are
        rarely text)."""
        d = self.to_json()
        del d["jail_time"]
        d["stdout"] = encode_output(self.stdout, encoding)
        d["stderr"] = encode_output(self.stderr, encoding)
        return d

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = str(self.verdict)
        d["stdout"] = b64(self.stdout)
        d["stderr"] = b64(self.stderr)
        d["files"] = {name: b64(data) for name, data in self.files.items()}
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TestResult:
        d = dict(d)
        d["verdict"] = Verdict(d["verdict"])
        d["stdout"] = unb64(d["stdout"])
        d["stderr"] = unb64(d["stderr"])
        d["files"] = {name: unb64(data) for name, data in d.get("files", {}).items()}
        return cls(**d)


# The fields a test's result takes as they are from the jail's RunResult (the accounting and
# the outputs), named once: the rest (index, verdict, message, jail_time) are the judge's.
_FROM_THE_JAIL = (
    "exit_code", "signal", "cpu_time", "wall_time", "peak_memory",
    "stdout", "stderr", "stdout_truncated", "stderr_truncated", "files", "files_truncated",
)  # fmt: skip


@dataclass(slots=True)
class Result:
    """A finished submission. `verdict` is the first non-accepted test's verdict, else accepted."""

    id: str
    verdict: Verdict
    tests: list[TestResult] = field(default_factory=list)
    compile_output: bytes = b""
    compile_time: float = 0.0  # wall seconds of the compile stage
    compile_exit_code: int | None = None  # None: nothing was compiled (interpreted, or cached)
    compile_cpu_time: float = 0.0
    compile_memory: int = 0  # peak bytes
    # The compile cache (counted by core/metrics.py, not shown to clients): the program came
    # from it, or the compiler ran (a miss). Both False: nothing to compile (interpreted) or
    # a source refused before compiling.
    compile_cached: bool = False
    compile_ran: bool = False
    message: str = ""
    attempts: int = 1
    timings: dict[str, float] = field(default_factory=dict)  # queued/started/finished, jail seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "verdict": str(self.verdict),
            "tests": [t.to_json() for t in self.tests],
            "compile_output": b64(self.compile_output),
            "compile_time": self.compile_time,
            "compile_exit_code": self.compile_exit_code,
            "compile_cpu_time": self.compile_cpu_time,
            "compile_memory": self.compile_memory,
            "compile_cached": self.compile_cached,
            "compile_ran": self.compile_ran,
            "message": self.message,
            "attempts": self.attempts,
            "timings": self.timings,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        return cls(
            id=d["id"],
            verdict=Verdict(d["verdict"]),
            tests=[TestResult.from_json(t) for t in d["tests"]],
            compile_output=unb64(d["compile_output"]),
            compile_time=float(d["compile_time"]),
            compile_exit_code=d.get("compile_exit_code"),
            compile_cpu_time=float(d.get("compile_cpu_time", 0.0)),
            compile_memory=int(d.get("compile_memory", 0)),
            compile_cached=bool(d.get("compile_cached", False)),  # results stored before it: False
            compile_ran=bool(d.get("compile_ran", False)),
            message=d["message"],
            attempts=int(d["attempts"]),
            timings=dict(d["timings"]),
        )
