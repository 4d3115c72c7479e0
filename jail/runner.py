"""The jail's front door: Jail.run(spec) -> RunResult.

With CELLBLOCK_JAIL_WARM > 0 (the default) containers come from a builder process
(jail/zygote.py) that keeps them built ahead of demand, so a job pays only for
starting its program; with 0 each run builds its container in this process, which
suits single-threaded callers such as the command line. Either way a container
serves exactly one job and is torn down after it.

`Jail.start` is the live form of `run`: it returns at the program's execve with a
Running, whose stdin the caller may write as the program runs (RunSpec.stdin = PIPE)
and whose output may go to an OutputSink as it is read (jail/supervise.py).
"""

from __future__ import annotations

import os
import threading

from . import sandbox
from .config import JailConfig
from .errors import JailError
from .host import Host
from .rootfs import sandbox_path
from .sandbox import Sandbox, Shape
from .spec import RunResult, RunSpec, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from .sink import OutputSink
    from .zygote import Builder


class Jail:
    """Runs RunSpecs. One per process is enough; it is safe to call from several threads."""

    def __init__(self, config: JailConfig | None = None) -> None:
        self.config = config or JailConfig.from_env()
        self._host: Host | None = None
        self._builder: Builder | None = None
        self._pid = os.getpid()
        if self.config.warm > 0:
            self._builder = _start_builder(self.config)
        else:
            self._host = Host(self.config)

    def run(self, spec: RunSpec) -> RunResult:
        """Run spec.argv isolated. Raises JailError for sandbox faults only."""
        with self.start(spec) as running:
            return running.finish()

    def start(self, spec: RunSpec) -> Running:
        """Start spec.argv isolated and return at its execve: a live run (see Running), to be
        used as a context manager. Raises JailError for sandbox faults only."""
        validate(spec)
        sb = self._take(spec)
        try:
            stop = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except BaseException:
            sb.release()
            raise
        try:
            started, setup_cpu = sandbox.start(sb, spec)
            return Running(sb, spec, started, setup_cpu, stop)
        except BaseException:
            os.close(stop)
            sb.kill()  # it may have started: nothing watches it
            sb.release()
            raise

    def _take(self, spec: RunSpec) -> Sandbox:
        shape = Shape.of(spec)
        if self._builder is not None:
            if os.getpid() != self._pid:
                # A forked copy of the process that owns the builder: the containers it
                # knows of are the parent's to use. Get a builder of our own.
                self._pid = os.getpid()
                self._builder = _start_builder(self.config)
            elif not self._builder.alive():
                # Killed (its containers died with it): the next Host sweeps their slots.
                self._builder.close()
                self._builder = _start_builder(self.config)
            return self._builder.take(shape)
        assert self._host is not None
        return self._host.build(shape)

    def close(self) -> None:
        """Stop the builder process, which tears down every container it holds."""
        if self._builder is not None:
            self._builder.close()
            self._builder = None


class Running:
    """A started program: its live stdin, a stop from any thread, its end.

    `finish` watches it to its end (its output also to an OutputSink, as it is read) and
    accounts for it; leaving the `with` block tears the container down, killing the program
    if it still runs. It is also the watch's `Stop`: `fd` turns readable on `stop`.
    """

    def __init__(self, sb: Sandbox, spec: RunSpec, started: float, setup_cpu: float, stop: int) -> None:
        self._sb, self._spec, self._started, self._setup_cpu = sb, spec, started, setup_cpu
        self._lock = threading.Lock()
        self._closed = False
        self._stdin_taken = False
        self.fd = stop  # an eventfd, ours: the watch polls it
        self.reason = Status.SIGNALED

    def take_stdin(self) -> int:
        """The write end of the program's stdin pipe (RunSpec.stdin = PIPE), once, before
        `finish`: the caller's to write and to close, and its close is the program's EOF."""
        if not self._sb.shape.live_stdin:
            raise JailError("this run's stdin is not a pipe (RunSpec.stdin = PIPE)")
        if self._stdin_taken:
            raise JailError("this run's stdin was taken already")
        self._stdin_taken = True
        fd = os.dup(self._sb.stdin)
        sandbox.close_in_place(self._sb.stdin)
        return fd

    def stop(self, reason: Status = Status.SIGNALED) -> None:
        """End the run now, from any thread; it then reports `reason`. Nothing once it is over."""
        with self._lock:
            if not self._closed:
                self.reason = reason
                os.eventfd_write(self.fd, 1)

    def finish(self, sink: OutputSink | None = None) -> RunResult:
        """Watch the program to its end and account for it. A live stdin nobody took is
        closed first: the program reads EOF."""
        if self._closed:  # its container is gone, and its cgroup's name is its slot's next run's
            raise JailError("this run is over: finish it inside its with block")
        if self._sb.shape.live_stdin and not self._stdin_taken:
            self._stdin_taken = True
            sandbox.close_in_place(self._sb.stdin)
        return sandbox.finish(self._sb, self._spec, self._started, self._setup_cpu, sink, self)

    def close(self) -> None:
        """Kill what still runs (if `finish` was never called) and tear the container down."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self.fd)
        self._sb.kill()
        self._sb.release()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_builder(config: JailConfig) -> Builder:
    # Imported here: a process that builds its own containers (the command line) never
    # loads what the builder's protocol needs (sockets, pickle, subprocess).
    from .zygote import Builder

    return Builder(config)


def validate(spec: RunSpec) -> None:
    """Refuse specs the jail cannot honour, before touching the host."""
    if not spec.argv or not all(isinstance(a, str) and "\0" not in a for a in spec.argv):
        raise JailError("argv must be a non-empty list of strings without NUL bytes")
    problems = spec.limits.problems()
    if problems:
        raise JailError("limits out of range: " + "; ".join(f"{name} {why}" for name, why in problems))
    if not os.path.isabs(spec.cwd):
        raise JailError(f"cwd {spec.cwd!r} must be absolute")
    for path in spec.files:
        sandbox_path("", path)


_default: Jail | None = None
_default_lock = threading.Lock()


def default_jail() -> Jail:
    """The process-wide Jail, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Jail()
        return _default


def run(spec: RunSpec) -> RunResult:
    """Run one command isolated with the process-wide Jail (see Jail.run)."""
    return default_jail().run(spec)


def start(spec: RunSpec) -> Running:
    """Start one command isolated with the process-wide Jail (see Jail.start)."""
    return default_jail().start(spec)
