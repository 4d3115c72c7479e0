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

import os
import socket
import struct
import threading

from .errors import JailError
from .sandbox import check_exec

ANSWER = struct.Struct("=i")  # the init's pid, or -errno


class ForkServer:
    """A running `cellblock-init serve`, and the lock that keeps its launches one at a time.
    A server that died (killed by someone) is replaced at the next launch."""

    def __init__(self, init: str) -> None:
        self._init = init
        self._lock = threading.Lock()
        self._start()

    def _start(self) -> None:
        init = self._init
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        devnull = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in range(3)]
        try:
            self._pid = os.posix_spawn(
                init,
                ["cellblock-init", "serve", str(theirs.fileno())],
                {},
                file_actions=[*devnull, (os.POSIX_SPAWN_DUP2, theirs.fileno(), theirs.fileno())],
            )
        except OSError as e:
            ours.close()
            raise JailError(f"starting the container fork server {init} failed: {e}") from e
        finally:
            theirs.close()

    def launch(self, stdio: list[int], control: list[int], report_r: int) -> int:
        """jail.sandbox.Launcher: the server clones the init; its pid. A failed clone raises
        what the server reported on the report pipe."""
        sync, report, status, cgroup_fd, *tasks = control
        fds = [*stdio, sync, report, status, *([cgroup_fd] if cgroup_fd >= 0 else []), *tasks]
        request = struct.pack("=ii", len(fds), cgroup_fd >= 0)
        with self._lock:
            try:
                socket.send_fds(self._sock, [request], fds)
            except OSError:  # gone before this launch: a new one takes it
                self._replace()
                try:
                    socket.send_fds(self._sock, [request], fds)
                except OSError as e:
                    raise JailError(f"the container fork server refused a launch: {e}") from e
            try:
                answer = self._sock.recv(ANSWER.size)
            except OSError:
                answer = b""
            if len(answer) != ANSWER.size:  # gone during the launch: the next one gets a new server
                self._replace()
                raise JailError("the container fork server died during a launch")
        pid: int = ANSWER.unpack(answer)[0]
        if pid <= 0:
            check_exec(report_r, "")  # raises with the step reported
            raise JailError(f"the container fork server refused a launch: {os.strerror(-pid)}")
        return pid

    def _replace(self) -> None:
        self.close()
        self._start()

    def close(self) -> None:
        """Stop the server (its socket's EOF) and reap it."""
        self._sock.close()
        os.waitpid(self._pid, 0)
