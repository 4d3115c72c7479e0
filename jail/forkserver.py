"""The builder's fork server: one launcher process for all its containers.

A container's init is cloned into its namespaces by a launcher running in the host's
(jail/init.c). Started per container with posix_spawn, the launcher costs an exec, an exit
and, in Python, twenty getrlimit calls glibc makes checking the fds to pass: 0.1 ms of CPU
each time, on the builder's path. The builder process (jail/zygote.py) instead starts
the same binary once as a server (`cellblock-init serve FD`) and sends it each
container's fds over a socket; it clones the init and answers its pid. The init is still
the builder's child (CLONE_PARENT), so whoever dies first takes the runs with it as
before. Only a process whose building thread lives as long as it may use this (the
builder's one thread): an init's parent-death signal follows the thread that started the
server.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from .errors import JailError
from .sandbox import LaunchedInit, check_exec

ANSWER = struct.Struct("=i")  # the init's pid; -errno: clone3 failed (reported); 0: not a launch


class ForkServer:
    """A running `cellblock-init serve`, used by one thread (the builder's), one launch at a
    time. A server that died (killed by someone) is replaced at the next launch."""

    def __init__(self, init: str) -> None:
        self._init = init
        self._in_flight = False  # a launch sent, its answer not read yet
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Above 2, whatever this process has open there: 0, 1, 2 become /dev/null first.
        fd = fcntl.fcntl(theirs.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
        theirs.close()
        devnull = [(os.POSIX_SPAWN_OPEN, n, os.devnull, os.O_RDWR, 0) for n in range(3)]
        try:
            self._pid = os.posix_spawn(
                self._init,
                ["cellblock-init", "serve", str(fd)],
                {},
                file_actions=[*devnull, (os.POSIX_SPAWN_DUP2, fd, fd)],
            )
        except OSError as e:
            ours.close()
            raise JailError(f"starting the container fork server {self._init} failed: {e}") from e
        finally:
            os.close(fd)
        self._sock = ours

    def launch(self, stdio: list[int], control: list[int], report_r: int) -> LaunchedInit:
        """jail.sandbox.Launcher: sends the launch; the server clones the init meanwhile, and
        the answer's `pid()` reads its pid (`ready`: the server's socket). A failed clone
        raises, there, what the server reported on the report pipe. One launch at a time:
        the next may come once this one's answer was read (`pid()` or `abandon()`)."""
        if self._in_flight:
            raise JailError("the fork server's last launch was not answered yet")
        sync, report, status, cgroup_fd, *tasks = control
        fds = [*stdio, sync, report, status, *([cgroup_fd] if cgroup_fd >= 0 else []), *tasks]
        request = struct.pack("=ii", len(fds), cgroup_fd >= 0)
        if self._sock is None:  # a replacement that failed to start: try again
            self._start()
        assert self._sock is not None
        try:
            socket.send_fds(self._sock, [request], fds)
        except OSError:  # gone before this launch: a new one takes it
            self._replace()
            assert self._sock is not None
            try:
                socket.send_fds(self._sock, [request], fds)
            except OSError as e:
                raise JailError(f"the container fork server refused a launch: {e}") from e
        self._in_flight = True
        sock = self._sock

        def answer() -> int:
            if sock is not self._sock:
                raise JailError("the fork server of this launch was stopped")
            self._in_flight = False
            try:
                raw = sock.recv(ANSWER.size)
            except OSError:
                raw = b""
            if len(raw) != ANSWER.size:  # gone during the launch: the next one gets a new server
                self._replace()
                raise JailError("the container fork server died during a launch")
            pid: int = ANSWER.unpack(raw)[0]
            if pid == 0:
                raise JailError("the container fork server refused the launch message")
            if pid < 0:
                check_exec(report_r, "")  # raises with the step reported
                raise JailError(f"the container fork server could not clone the init: {os.strerror(-pid)}")
            return pid

        return LaunchedInit(sock.fileno(), answer)

    def _replace(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        """Stop the server (its socket's EOF) and reap it; again, nothing. A launch in flight
        is dropped: its pid() raises."""
        self._in_flight = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pid is not None:
            pid, self._pid = self._pid, None
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass  # reaped by someone else
