"""A submission's life as a plain function: compile once, run each test, check, give verdicts.

No Redis and no RQ here: `judge()` reports progress through a callback and returns a
Result. A sandbox fault (jail.JailError) raises SandboxFault: it is never the program's
fault, the RQ glue retries the job. A custom checker that fails itself is the verdict
checker_error, final.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from core.limits import checker_limits, interactor_limits, run_limits
from core.models import EXEC_FAILED, CheckerKind, Result, State, Submission, TestCase, TestResult, Verdict
from jail.errors import CommandNotFound, JailError
from jail.sink import OutputSink
from jail.spec import Limits, RunResult, Status
from policies.languages import Language, available_languages
from worker import checkers, interactor
from worker.toolchain import CompileOutcome, compile_source, run_program


class EventSink(Protocol):
    """Where the judge reports progress. Events are held until `flush`, which the judge calls
    before work that may take long (a real compile, a test's run): SSE readers see every
    event before the wait it announces, and quick steps share one Redis transaction."""

    def emit(self, kind: str, data: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...

    def live(self, test: int) -> LiveSink | None:
        """Where test `test`'s output goes as it is produced (`stream_output`), or None."""
        ...


class LiveSink(OutputSink, Protocol):
    """An OutputSink to close once its run is over (it sends what it holds)."""

    def close(self) -> None: ...


# jail Status -> verdict, for every status that ends a test without checking its output.
_STATUS_VERDICT: dict[Status, Verdict] = {
    Status.NONZERO_EXIT: Verdict.RUNTIME_ERROR,
    Status.SIGNALED: Verdict.RUNTIME_ERROR,
    Status.TIME_LIMIT: Verdict.TIME_LIMIT_EXCEEDED,
    Status.WALL_TIME_LIMIT: Verdict.TIME_LIMIT_EXCEEDED,
    Status.MEMORY_LIMIT: Verdict.MEMORY_LIMIT_EXCEEDED,
    Status.OUTPUT_LIMIT: Verdict.OUTPUT_LIMIT_EXCEEDED,
    Status.FILE_SIZE_LIMIT: Verdict.OUTPUT_LIMIT_EXCEEDED,
    Status.SECURITY_VIOLATION: Verdict.SECURITY_VIOLATION,
}


class SandboxFault(Exception):
    """The jail failed (not the program): retry the job, never blame the submission."""


def _runs_own_file(language: Language) -> bool:
    """Whether a test's command is the submission's own file as sent (the `executable`
    language's ./main): then a failed exec is the program's fault, not the sandbox's."""
    return not language.compiled and language.run[0].startswith("./")


def _custom_check(
    checker_lang: Language,
    artifact: dict[str, bytes],
    limits: Limits,
    test_input: bytes,
    expected: bytes,
    output: bytes,
) -> tuple[Verdict, str]:
    """Run the custom checker in the jail, testlib-style: `checker input.txt output.txt
    answer.txt` in /box (the test's input, the program's output, the expected output);
    exit 0 = accepted, 1 (or testlib's 2, presentation error) = wrong answer, anything else
    = checker_error: the checker's fault, final (a retry would fail again)."""
    files = {**artifact, "input.txt": test_input, "output.txt": output, "answer.txt": expected}
    res = run_program(checker_lang, files, b"", ["input.txt", "output.txt", "answer.txt"], limits)
    note = (res.stdout + res.stderr)[:4096].decode(errors="replace").strip()
    if res.status is Status.OK:
        return Verdict.ACCEPTED, note
    if res.status is Status.NONZERO_EXIT and res.exit_code in (1, 2):
        return Verdict.WRONG_ANSWER, note
    how = f"exit code {res.exit_code}" if res.status is Status.NONZERO_EXIT else str(res.status)
    return Verdict.CHECKER_ERROR, f"the custom checker failed ({how}): {res.stderr[-2000:].decode(errors='replace')}"


def _verdict(
    sub: Submission,
    run: RunResult,
    test: TestCase,
    checker_lang: Language | None,
    checker_artifact: dict[str, bytes],
) -> tuple[Verdict, str]:
    """A test's verdict and message: how the run ended, else its output checked."""
    if run.status is not Status.OK or test.expected_output is None:
        return run_verdict(run)
    if checker_lang is not None:
        return _custom_check(
            checker_lang,
            checker_artifact,
            checker_limits(sub.checker.limits),
            test.input,
            test.expected_output,
            run.stdout,
        )
    if not checkers.builtin(sub.checker.kind, run.stdout, test.expected_output, sub.checker.tolerance):
        return Verdict.WRONG_ANSWER, ""
    return Verdict.ACCEPTED, ""


def run_verdict(run: RunResult) -> tuple[Verdict, str]:
    """A run's verdict and message by how it ended alone (run mode: no output to check)."""
    if run.status is Status.OK:
        return Verdict.ACCEPTED, ""
    if run.status is Status.SECURITY_VIOLATION and run.syscall:
        message = f"forbidden system call: {run.syscall}"
    elif run.signal:
        message = f"killed by {run.signal}"
    elif run.exit_code:
        message = f"exit code {run.exit_code}"
    else:
        message = ""
    return _STATUS_VERDICT[run.status], message


def record_compile(result: Result, outcome: CompileOutcome, spent: float) -> None:
    """The compile stage's part of a result: its output, time and accounting; a failed
    compile is the result's verdict."""
    result.compile_time = spent
    result.compile_output = outcome.output.encode()
    result.compile_cached = outcome.cached
    result.compile_ran = outcome.result is not None  # the compiler ran: a compile cache miss
    if outcome.result is not None:
        result.compile_exit_code = outcome.result.exit_code
        result.compile_cpu_time = outcome.result.cpu_time
        result.compile_memory = outcome.result.peak_memory
    if not outcome.ok:
        result.verdict = Verdict.COMPILATION_ERROR


def _judging_program(
    what: str, language_id: str, files: dict[str, bytes], events: EventSink
) -> tuple[Language, dict[str, bytes]] | str:
    """A custom checker or an interactor compiled: its language and artifact, or why it failed
    (the submission's checker_error). A language this worker lacks is a sandbox fault."""
    language = available_languages().get(language_id)
    if language is None:
        raise SandboxFault(f"{what}'s language {language_id!r} not available")
    outcome = compile_source(language, files, [], before_compiling=events.flush)
    if not outcome.ok:
        return f"{what} did not compile: " + outcome.output[:4000]
    return language, outcome.artifact


class OutputBudget:
    """How much program output a result may still keep (CELLBLOCK_MAX_RESULT). Outputs are
    checked whole, then cut to what is left, so a worker never holds more than the budget and
    one test's output, whatever tests x output limit a request asks for."""

    def __init__(self, total: int) -> None:
        self.left = total

    def keep(self, data: bytes) -> tuple[bytes, bool]:
        """`data` cut to the budget, and whether anything was cut."""
        kept = data[: self.left]
        self.left -= len(kept)
        return kept, len(kept) < len(data)

    def keep_files(self, files: dict[str, bytes]) -> tuple[dict[str, bytes], bool]:
        """The collected `files` that fit, whole and in order (a cut file is a corrupt one), and
        whether any was left out: the first that does not fit ends them. A name that is not
        UTF-8 (a glob matched the program's own bytes) cannot be a JSON key: left out too."""
        kept: dict[str, bytes] = {}
        cut = False
        for name, data in files.items():
            if len(data) > self.left:
                return kept, True
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                cut = True
                continue
            kept[name] = data
            self.left -= len(data)
        return kept, cut


def judge(sub: Submission, events: EventSink, keep_output: int) -> Result:
    """Compile once, run every test, check each output; keep at most `keep_output` bytes of
    the programs' outputs in the result. Raises SandboxFault on jail faults."""
    language = available_languages().get(sub.language)
    if language is None:
        return Result(sub.id, Verdict.INTERNAL_ERROR, message=f"language {sub.language!r} not on this worker")
    jail_time = 0.0
    result = Result(sub.id, Verdict.ACCEPTED)

    try:
        events.emit("state", {"state": str(State.COMPILING)})
        t0 = time.monotonic()
        outcome = compile_source(language, sub.files, sub.compile_options, before_compiling=events.flush)
        record_compile(result, outcome, time.monotonic() - t0)
        jail_time += result.compile_time
        if not outcome.ok:
            result.timings["jail"] = jail_time
            return result

        checker_lang: Language | None = None
        checker_artifact: dict[str, bytes] = {}
        if sub.checker.kind is CheckerKind.CUSTOM:
            judging = _judging_program("the custom checker", sub.checker.language or "", sub.checker.files, events)
            if isinstance(judging, str):
                result.verdict, result.message = Verdict.CHECKER_ERROR, judging
                return result
            checker_lang, checker_artifact = judging

        interactor_lang: Language | None = None
        interactor_artifact: dict[str, bytes] = {}
        if sub.interactor is not None:
            judging = _judging_program("the interactor", sub.interactor.language, sub.interactor.files, events)
            if isinstance(judging, str):
                result.verdict, result.message = Verdict.CHECKER_ERROR, judging
                return result
            interactor_lang, interactor_artifact = judging

        budget = OutputBudget(keep_output)
        limits = run_limits(language, sub.limits)
        n = len(sub.tests)
        for k, test in enumerate(sub.tests, start=1):
            events.emit("state", {"state": str(State.RUNNING), "test": k, "of": n})
            events.flush()
            t0 = time.monotonic()
            sink = events.live(k)
            try:
                if interactor_lang is not None and sub.interactor is not None:
                    i_limits = interactor_limits(sub.interactor.limits, limits)
                    run, judged, gap = interactor.run_test(
                        language, outcome.artifact, sub.args, limits,
                        interactor_lang, interactor_artifact, i_limits, test, sub.collect, budget.left,
                    )  # fmt: skip
                    said = interactor.verdict(run, judged, judge_first=gap < 0)
                else:
                    judged, said = None, None
                    run = run_program(
                        language,
                        outcome.artifact,
                        test.input,
                        sub.args,
                        limits,
                        sink,
                        collect=sub.collect,
                        collect_budget=budget.left,
                    )
            except CommandNotFound as exc:
                if not _runs_own_file(language):
                    raise
                spent = time.monotonic() - t0
                tr = TestResult(k, Verdict.RUNTIME_ERROR, status=EXEC_FAILED, message=str(exc), jail_time=spent)
            else:
                spent = time.monotonic() - t0
                tr = TestResult.of_run(k, run, spent)
                if judged is not None:
                    tr.interactor = interactor.accounting(judged)
                tr.verdict, tr.message = said or _verdict(sub, run, test, checker_lang, checker_artifact)
            finally:
                if sink is not None:
                    sink.close()
            jail_time += spent
            tr.stdout, cut = budget.keep(tr.stdout)
            tr.stdout_truncated |= cut
            tr.stderr, cut = budget.keep(tr.stderr)
            tr.stderr_truncated |= cut
            tr.files, cut = budget.keep_files(tr.files)  # after the outputs: they are the verdict's
            tr.files_truncated |= cut
            result.tests.append(tr)
            events.emit(
                "test",
                {
                    "index": k,
                    "of": n,
                    "verdict": str(tr.verdict),
                    "cpu_time": tr.cpu_time,
                    "wall_time": tr.wall_time,
                    "peak_memory": tr.peak_memory,
                },
            )
            if tr.verdict is not Verdict.ACCEPTED and result.verdict is Verdict.ACCEPTED:
                result.verdict = tr.verdict
            if tr.verdict is Verdict.CHECKER_ERROR or (
                tr.verdict is not Verdict.ACCEPTED and sub.stop_on_first_failure
            ):
                break  # a broken checker would fail every test the same way
    except JailError as exc:
        raise SandboxFault(f"{type(exc).__name__}: {exc}") from exc
    result.timings["jail"] = jail_time
    return result
