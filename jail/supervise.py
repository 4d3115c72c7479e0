"""The parent's watch over a running program: output, wall clock, CPU time, exit.

One poll loop waits on the child's pidfd and its two output pipes at once, so the
parent wakes the moment the program exits (no polling timer) and drains output as it
comes, with a hard cap per stream (the program is killed at the first byte over).
CPU time is read from the cgroup (threads and children included) at the earliest
instant the limit could have been reached at full speed on every CPU, so checks are
few while the program is far from its limit and dense as it nears it.

A live run (jail.Running) also hands each chunk of output, as it is read, to an
OutputSink (a session's client, an interactor's stdin). A sink that cannot take more
pauses the reading: the program then blocks on a full pipe and nothing grows anywhere,
until the sink's waker says it may go on. The loop also wakes on a stop request from
another thread (`stop`).
"""

from __future__ import annotations

import os
import select
import signal
import struct
import time

from . import libc
from .record import field, record
from .spec import Limits, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from typing import Protocol

    from .cgroup import RunCgroup
    from .sink import OutputSink

    class Stop(Protocol):
        """A request from another thread to end the run: `fd` turns readable, `reason` says why."""

        fd: int
        reason: Status


MIN_CPU_CHECK = 0.005  # seconds between CPU reads near the limit
DRAIN_TIMEOUT = 1.0  # after exit, how long to wait for pipe EOF
READ_CHUNK = 1 << 16


@record
class Stream:
    """One output pipe and what came through it, capped."""

    fd: int
    cap: int
    name: str = "stdout"
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    open: bool = True
    keep: bool = True  # hold what is read for the result (else only count it)
    capped: bool = True  # past `cap` bytes read, the run is over its output limit (kept output always is)
    seen: int = 0  # bytes read so far

    def read(self) -> bytes | None:
        """Read what is there: the bytes within the cap (maybe none), None at EOF.
        Sets `truncated` past the cap."""
        try:
            chunk = os.read(self.fd, READ_CHUNK)
        except BlockingIOError:
            return b""
        if not chunk:
            self.open = False
            return None
        self.seen += len(chunk)
        if self.capped and self.seen > self.cap:
            chunk = chunk[: max(self.cap - (self.seen - len(chunk)), 0)]
            self.truncated = True
        if self.keep:
            self.data += chunk
        return chunk


@record
class Watched:
    """What the watch saw: how the child ended and what it wrote."""

    wait_status: int
    reported: bool  # the init wrote the wait status (else it died first: killed by us, the OOM killer, ...)
    syscall: int | None  # the denied syscall that ended the run, if one did
    killed_for: Status | None
    wall_time: float
    stdout: Stream
    stderr: Stream


def max_cpu_rate() -> int:
    """How many CPU-seconds per second a run could burn at most (CPUs we may run on)."""
    return max(1, len(os.sched_getaffinity(0)))


def watch(
    pidfd: int,
    out: Stream,
    err: Stream,
    cg: RunCgroup,
    limits: Limits,
    started: float,
    setup_cpu: float,
    status_fd: int,
    sink: OutputSink | None = None,
    stop: Stop | None = None,
) -> Watched:
    """Supervise until the program has ended (or was killed at a limit, or stopped).

    The run is over when the sandbox's init reports the program's wait status on
    `status_fd` (it has killed and reaped everything else by then, so the output pipes
    are at EOF), or when the init itself dies (`pidfd`, which may be another process's
    child: it is reaped by whoever built the container) — e.g. killed by us at a limit.
    `setup_cpu` is what the cgroup had counted before execve, not the program's.
    Output goes to `sink` as it is read, if there is one; `stop` ends the run early.
    """
    poller = select.poll()
    streams = {out.fd: out, err.fd: err}
    for fd in streams:  # non-blocking since sandbox.prepare
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    poller.register(status_fd, select.POLLIN)
    if stop is not None:
        poller.register(stop.fd, select.POLLIN)
    waker = sink.waker() if sink is not None else (-1, 0)
    paused = False
    rate = max_cpu_rate()
    deadline = started + limits.wall_time
    next_cpu_check = started + limits.cpu_time / rate
    killed_for: Status | None = None
    exited = False

    def kill(reason: Status) -> None:
        nonlocal killed_for
        if killed_for is None:
            killed_for = reason
            # The child is pid 1 of its namespace: its death takes every process
            # of the run with it (pid_namespaces(7)).
            libc.pidfd_send_signal(pidfd, signal.SIGKILL)

    while not exited:
        now = time.monotonic()
        if now >= deadline:
            kill(Status.WALL_TIME_LIMIT)
        if now >= next_cpu_check and killed_for is None:
            used = cg.cpu_usage() - setup_cpu
            if used >= limits.cpu_time:
                kill(Status.TIME_LIMIT)
            else:
                next_cpu_check = now + max((limits.cpu_time - used) / rate, MIN_CPU_CHECK)
        if killed_for is not None:
            next_cpu_check = deadline = float("inf")
        timeout = min(deadline, next_cpu_check) - time.monotonic()
        wait_ms = None if timeout == float("inf") else max(0, int(timeout * 1000) + 1)
        for fd, _ in poller.poll(wait_ms):
            if fd in (pidfd, status_fd):
                exited = True
            elif stop is not None and fd == stop.fd:
                poller.unregister(fd)
                if not exited:  # a stop that comes with the end changes nothing
                    kill(stop.reason)
            elif fd == waker[0]:
                assert sink is not None
                if paused and sink.ready():
                    paused = False
                    poller.unregister(fd)
                    for s in streams.values():
                        if s.open:
                            poller.register(s.fd, select.POLLIN)
            elif fd in streams and not paused:
                stream = streams[fd]
                chunk = stream.read()
                if chunk is None:
                    poller.unregister(fd)
                elif stream.truncated:
                    kill(Status.OUTPUT_LIMIT)
                if chunk and sink is not None and not sink.write(stream.name, chunk):
                    paused = True
                    for s in streams.values():
                        if s.open:
                            poller.unregister(s.fd)
                    poller.register(*waker)
    wall = time.monotonic() - started
    if killed_for is not None:  # the init may not have seen the end: wait until it is gone
        gone = select.poll()  # poll, not select: a busy process's fds may be above FD_SETSIZE
        gone.register(pidfd, select.POLLIN)
        gone.poll()
    report = os.read(status_fd, 8)
    status, syscall = struct.unpack("ii", report) if len(report) == 8 else (signal.SIGKILL, -1)
    drain(sink, out, err)
    return Watched(status, len(report) == 8, None if syscall < 0 else syscall, killed_for, wall, out, err)


def drain(sink: OutputSink | None, *streams: Stream) -> None:
    """Read the pipes to EOF (into the sink too, paused or not); every writer is dead, so
    EOF comes at once."""
    end = time.monotonic() + DRAIN_TIMEOUT
    for s in streams:
        readable = select.poll()
        readable.register(s.fd, select.POLLIN)
        while s.open and time.monotonic() < end:
            chunk = s.read()
            if chunk is None:
                break
            if chunk and sink is not None:
                sink.write(s.name, chunk)
            if s.truncated:
                return
            readable.poll(max(0, int((end - time.monotonic()) * 1000)))
