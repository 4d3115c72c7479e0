"""The one exception family of the jail: a sandbox fault, never the program's outcome.

A program that crashes, loops or hogs memory gets a RunResult with a status; only a
failure of the jail itself (a mount that would not go, a cgroup that would not take
a limit) raises. Callers retry those and never blame the program for them.
"""

from __future__ import annotations

import enum
import os
from errno import errorcode


class JailError(Exception):
    """The sandbox could not be set up, supervised or torn down."""


class Step(enum.Enum):
    """A setup step of the container's init (jail/init.c), named after the call that failed.

    The one list of them: init.c gets each number as a -DSTEP_<NAME> define
    (jail/init_binary.py) and reports a failed step by it.
    """

    CLONE3 = enum.auto()
    WRITE = enum.auto()
    PRCTL = enum.auto()
    READ_MESSAGE = enum.auto()
    PARSE_MESSAGE = enum.auto()
    UNSHARE = enum.auto()
    MOUNT = enum.auto()
    CHDIR = enum.auto()
    PIVOT_ROOT = enum.auto()
    UMOUNT2 = enum.auto()
    SETHOSTNAME = enum.auto()
    SOCKET = enum.auto()
    IOCTL = enum.auto()
    SETGROUPS = enum.auto()
    SETRESGID = enum.auto()
    SETRESUID = enum.auto()
    CAPSET = enum.auto()
    SECCOMP = enum.auto()
    SCHED_SETAFFINITY = enum.auto()
    CLOSE_RANGE = enum.auto()
    CLONE = enum.auto()
    PRLIMIT64 = enum.auto()
    EXECVE = enum.auto()
    DUP2 = enum.auto()

    def __str__(self) -> str:
        return self.name.lower()


class ChildSetupError(JailError):
    """The container's init failed a setup step before execve: the step, the errno, and
    `detail`, what the call was made on (a mount's source, target and flags, a path)."""

    def __init__(self, step: Step, err: int, detail: str) -> None:
        self.step = step
        self.errno = err
        self.detail = detail
        super().__init__(
            f"sandbox setup failed at {step}({detail}): {errorcode.get(err, f'errno {err}')} ({os.strerror(err)})"
        )


class CommandNotFound(JailError):
    """execve of the requested command failed (no such file, not executable)."""
