"""Live runs (jail.start): stdin written as the program runs, output handed over as it is read,
a paused sink that stops the program, a stop from another thread."""

from __future__ import annotations

import os
import select
import threading
import time

import pytest

from jail import PIPE, JailError, Limits, RunSpec, Status, start

SH = "/bin/sh"


class Sink:
    """An OutputSink that records what it is given; with `room`, it pauses after that many bytes
    and resumes `pause` seconds later."""

    def __init__(self, keeps: tuple[str, ...] = (), capped: bool = True, room: int | None = None) -> None:
        self.keeps, self.capped, self.room = keeps, capped, room
        self.pause = 1.0
        self.got: list[tuple[str, bytes, float]] = []
        self.taken = 0
        self._r, self._w = os.pipe()

    def write(self, stream: str, data: bytes) -> bool:
        self.got.append((stream, data, time.monotonic()))
        self.taken += len(data)
        if self.room is not None and self.taken >= self.room:
            threading.Timer(self.pause, self.resume).start()
            self.room = None
            return False
        return True

    def waker(self) -> tuple[int, int]:
        return self._r, select.POLLIN

    def ready(self) -> bool:
        os.read(self._r, 1)
        return True

    def resume(self) -> None:
        os.write(self._w, b"x")

    def text(self, stream: str = "stdout") -> bytes:
        return b"".join(d for s, d, _ in self.got if s == stream)


def test_stdin_written_as_the_program_runs_and_its_close_is_eof() -> None:
    spec = RunSpec(argv=[SH, "-c", 'while read line; do echo "got $line"; done; echo end'], stdin=PIPE)
    sink = Sink(keeps=("stdout",))
    with start(spec) as running:
        fd = running.take_stdin()

        def type_in() -> None:
            for word in (b"a", b"b"):
                os.write(fd, word + b"\n")
                time.sleep(0.1)
            os.close(fd)

        typist = threading.Thread(target=type_in)
        typist.start()
        result = running.finish(sink)
        typist.join()
    assert result.status is Status.OK, result
    assert result.stdout == b"got a\ngot b\nend\n" == sink.text()
    assert len(sink.got) >= 3  # handed over line by line, not at the end
    with pytest.raises(JailError):
        running.take_stdin()


def test_a_live_stdin_nobody_takes_is_eof_at_once() -> None:
    with start(RunSpec(argv=["/bin/cat"], stdin=PIPE, limits=Limits(wall_time=5))) as running:
        result = running.finish()
    assert result.status is Status.OK and result.wall_time < 2


def test_take_stdin_needs_a_pipe() -> None:
    with start(RunSpec(argv=["/bin/true"])) as running, pytest.raises(JailError):
        running.take_stdin()


def test_output_is_handed_over_before_the_end() -> None:
    sink = Sink(keeps=("stdout", "stderr"))
    with start(RunSpec(argv=[SH, "-c", "echo one; sleep 0.5; echo two >&2"])) as running:
        result = running.finish(sink)
        ended = time.monotonic()
    assert (result.stdout, result.stderr) == (b"one\n", b"two\n")
    (first, *_), last = sink.got, sink.got[-1]
    assert first[:2] == ("stdout", b"one\n") and last[:2] == ("stderr", b"two\n")
    assert last[2] - first[2] > 0.3 and ended - first[2] > 0.3  # the first line came before the sleep ended


def test_a_paused_sink_blocks_the_program_not_memory() -> None:
    """A sink that takes no more stops the reading: the program blocks on its full pipe
    (its output stays at the pipe's size), and goes on when the sink resumes."""
    sink = Sink(room=1)
    # 5 MB: more than the pipe holds (1 MiB), little enough for the (TCG) test VM's CPU.
    spec = RunSpec(argv=[SH, "-c", "yes | head -c 5000000; echo done >&2"],
                   limits=Limits(output=1 << 30, cpu_time=20, wall_time=60))  # fmt: skip
    with start(spec) as running:
        result = running.finish(sink)
    paused = [t for _, _, t in sink.got]
    assert result.status is Status.OK and result.stdout == b""  # not kept
    assert sink.taken == 5000000 + len("done\n")
    assert paused[1] - paused[0] > 0.8, "read on while the sink was paused"


def test_what_goes_through_a_capped_sink_counts_against_the_output_limit() -> None:
    sink = Sink()
    with start(RunSpec(argv=[SH, "-c", "yes"], limits=Limits(output=100_000))) as running:
        result = running.finish(sink)
    assert result.status is Status.OUTPUT_LIMIT and sink.taken == 100_000


def test_an_uncapped_sink_lets_output_through() -> None:
    sink = Sink(keeps=("stderr",), capped=False)
    spec = RunSpec(argv=[SH, "-c", "head -c 3000000 /dev/zero; echo err >&2"], limits=Limits(output=1000))
    with start(spec) as running:
        result = running.finish(sink)
    assert result.status is Status.OK and sink.text() == bytes(3000000) and result.stderr == b"err\n"


def test_stop_from_another_thread_ends_the_run_with_its_reason() -> None:
    with start(RunSpec(argv=["/bin/sleep", "30"], stdin=PIPE)) as running:
        threading.Timer(0.3, running.stop, (Status.WALL_TIME_LIMIT,)).start()
        result = running.finish()
    assert result.status is Status.WALL_TIME_LIMIT and 0.3 <= result.wall_time < 2
    running.stop()  # once it is over: nothing
    with start(RunSpec(argv=["/bin/sleep", "30"])) as running:
        threading.Timer(0.2, running.stop).start()
        result = running.finish()
    assert (result.status, result.signal) == (Status.SIGNALED, "SIGKILL")


def test_leaving_without_finish_kills_the_program() -> None:
    def sleepers() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == b"/bin/sleep\x0031.4159\x00":
                        found.append(pid)
            except OSError:
                pass
        return found

    with start(RunSpec(argv=["/bin/sleep", "31.4159"])):
        assert sleepers(), "the program is not running"
    end = time.monotonic() + 2  # SIGKILLed on the way out; the kernel takes a moment to end it
    while sleepers() and time.monotonic() < end:
        time.sleep(0.01)
    assert sleepers() == []


def test_a_run_left_cannot_be_finished() -> None:
    """Its container is torn down, and its cgroup's name is its slot's next run's: finishing it
    then would read another run's counters."""
    with start(RunSpec(argv=["/bin/true"])) as running:
        pass
    with pytest.raises(JailError, match="this run is over"):
        running.finish()
