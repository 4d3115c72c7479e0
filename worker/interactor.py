"""Interactor problems: per test, the program and the interactor in two jails, talking.

The interactor runs testlib-style as `interactor input.txt output.txt answer.txt` in its own
/box (the test's input and expected output as files; output.txt is its own to write). Its
stdin is the program's stdout and its stdout the program's stdin: each run's watch loop
writes what its program prints into the other's stdin pipe (Forward, never blocking: a full
pipe pauses the reading, so a side that stops reading stalls the other, never memory).
When a side ends, the other's stdin is closed (it reads EOF).

The verdict, as contest judges give it (exit codes of testlib):
- the interactor ended first with anything but 0: its verdict, and the program is stopped
  (its end is a consequence);
- else the program's own end, if it was not clean (time, memory, output, runtime error...),
  except when it ran out of wall time waiting for an interactor that ran out of its own: the
  judge hung, checker_error;
- else the interactor's exit code: 0 accepted; 1 wrong answer; 2 presentation error, 4
  ("dirt") and 8 (unexpected EOF) wrong answer too, named in the message; 3 (testlib's
  fail) or any other end (a crash, a signal, its own limits) checker_error: the problem's
  judge failed, which is neither the submission's fault nor the sandbox's.
Both runs are accounted: the program's in the test's own fields, the interactor's under
`interactor`.
"""

from __future__ import annotations

import os
import select
import threading
import time
from dataclasses import dataclass

from core.models import TestCase, Verdict
from jail import PIPE, start
from jail.spec import Limits, RunResult, Status
from policies.languages import Language
from worker.toolchain import program_spec, settled

# testlib's exit codes that blame the participant, and how the message names them.
WRONG = {1: "wrong answer", 2: "presentation error", 4: "wrong answer (unexpected output)", 8: "unexpected EOF"}
FAIL = 3
NOTE_BYTES = 4096  # of the interactor's stderr, its comment, in the test's message


class Forward:
    """The OutputSink that writes a run's stdout into another run's stdin; its stderr is kept."""

    keeps: tuple[str, ...] = ("stderr",)
    capped = False  # bounded by the pipes: what it cannot write pauses the program

    def __init__(self, fd: int) -> None:
        self.fd = fd  # the other run's stdin (Running.take_stdin): ours to write and close
        os.set_blocking(fd, False)
        self.pending = bytearray()
        self.broken = False  # the other side is gone: what comes now is dropped
        self.unread = False  # it went with output it had not read

    def write(self, stream: str, data: bytes) -> bool:
        if stream == "stdout" and not self.broken:
            self.pending += data
            self._flush()
        return not self.pending

    def waker(self) -> tuple[int, int]:
        return self.fd, select.POLLOUT

    def ready(self) -> bool:
        self._flush()
        return not self.pending

    def _flush(self) -> None:
        try:
            while self.pending:
                del self.pending[: os.write(self.fd, self.pending)]
        except BlockingIOError:
            pass
        except BrokenPipeError:
            self.broken, self.unread = True, bool(self.pending)
            self.pending.clear()

    def close(self) -> None:
        """After the writing run ended: hand over what is left, then EOF. The reader's own
        limits bound the wait (when it dies the write fails)."""
        if self.pending:
            os.set_blocking(self.fd, True)
            self._flush()
        os.close(self.fd)


@dataclass
class Ended:
    """One side's run and when it ended."""

    result: RunResult | None = None
    at: float = float("inf")
    error: BaseException | None = None


def run_test(
    program: Language,
    artifact: dict[str, bytes],
    args: list[str],
    limits: Limits,
    interactor: Language,
    interactor_artifact: dict[str, bytes],
    interactor_limits: Limits,
    test: TestCase,
    collect: list[str],
    collect_budget: int,
) -> tuple[RunResult, RunResult, float]:
    """Run one test with the interactor: (program's result, interactor's, when the interactor
    ended minus when the program did); the program's files as `collect` asks. Raises JailError
    on sandbox faults."""
    files = {**interactor_artifact, "input.txt": test.input, "answer.txt": test.expected_output or b""}
    i_spec = program_spec(interactor, files, PIPE, ["input.txt", "output.txt", "answer.txt"], interactor_limits)
    p_spec = program_spec(program, artifact, PIPE, args, limits, collect, collect_budget)
    with start(i_spec) as judge_run, start(p_spec) as program_run:
        to_program = Forward(program_run.take_stdin())
        try:
            to_judge = Forward(judge_run.take_stdin())
        except BaseException:
            to_program.close()
            raise
        side = Ended()

        def interact() -> None:
            try:
                side.result = judge_run.finish(to_program)
                side.at = time.monotonic()
                if side.result.status is not Status.OK:
                    program_run.stop()  # the verdict is in: the program's end would only follow from it
            except BaseException as exc:  # re-raised in the caller's thread
                side.error = exc
                program_run.stop()
            finally:
                to_program.close()

        thread = threading.Thread(target=interact, name="interactor", daemon=True)
        try:
            thread.start()
        except BaseException:
            to_program.close()
            to_judge.close()
            raise
        try:
            ran = program_run.finish(to_judge)
            ended = time.monotonic()
            if ran.status is not Status.OK and (to_program.pending or to_program.unread):
                # It ended while not reading what the interactor had written: its own fault,
                # and the interactor, unanswered, has nothing more to say.
                judge_run.stop()
        finally:
            to_judge.close()
            thread.join()
    if side.error is not None:
        raise side.error
    assert side.result is not None
    return settled(program, ran, limits), settled(interactor, side.result, interactor_limits), side.at - ended


def verdict(ran: RunResult, judged: RunResult, judge_first: bool) -> tuple[Verdict, str] | None:
    """The interactor's say on a test, or None when the program's own end decides it."""
    hung = judged.status in (Status.TIME_LIMIT, Status.WALL_TIME_LIMIT)
    if ran.status is Status.WALL_TIME_LIMIT and hung:  # each waited for the other: the judge did not answer
        return Verdict.CHECKER_ERROR, _joined(f"the interactor failed ({judged.status})", _note(judged))
    if ran.status is not Status.OK and not (judge_first and judged.status is not Status.OK):
        return None
    if judged.status is Status.OK:
        return Verdict.ACCEPTED, _note(judged)
    if judged.status is Status.NONZERO_EXIT and judged.exit_code in WRONG:
        return Verdict.WRONG_ANSWER, _joined(WRONG[judged.exit_code], _note(judged))
    how = "testlib's fail" if judged.exit_code == FAIL else _how(judged)
    return Verdict.CHECKER_ERROR, _joined(f"the interactor failed ({how})", _note(judged))


def _how(run: RunResult) -> str:
    if run.status is Status.NONZERO_EXIT:
        return f"exit code {run.exit_code}"
    if run.status is Status.SIGNALED:
        return f"killed by {run.signal}"
    return str(run.status)


def _note(run: RunResult) -> str:
    return run.stderr[:NOTE_BYTES].decode(errors="replace").strip()


def _joined(head: str, note: str) -> str:
    return f"{head}: {note}" if note else head


def accounting(run: RunResult) -> dict[str, object]:
    """The interactor's run as a test result carries it."""
    return {
        "status": str(run.status),
        "exit_code": run.exit_code,
        "signal": run.signal,
        "cpu_time": run.cpu_time,
        "wall_time": run.wall_time,
        "peak_memory": run.peak_memory,
    }
