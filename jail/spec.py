"""What a caller hands the jail (RunSpec, Limits) and what it gets back (RunResult, Status).

These are the only types a caller needs: everything above the jail builds a RunSpec and
reads a RunResult. Field names match the JSON printed by `python -m jail run --json`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class Status(enum.StrEnum):
    """How one run ended. run() never returns INTERNAL_ERROR (a sandbox fault raises
    JailError); it is what `python -m jail run --json` prints for one."""

    OK = "ok"
    NONZERO_EXIT = "nonzero_exit"
    SIGNALED = "signaled"
    TIME_LIMIT = "time_limit"
    WALL_TIME_LIMIT = "wall_time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    FILE_SIZE_LIMIT = "file_size_limit"
    SECURITY_VIOLATION = "security_violation"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource caps of one run. Sizes in bytes, times in seconds."""

    cpu_time: float = 2.0  # user+sys of every process and thread of the run
    wall_time: float = 5.0  # real time from exec to exit
    memory: int = 256 * MiB  # cgroup memory cap, swap off
    pids: int = 64  # processes + threads alive at once
    output: int = 1 * MiB  # cap for stdout and, separately, for stderr
    file_size: int = 16 * MiB  # largest single file the program may write (RLIMIT_FSIZE)
    disk: int = 64 * MiB  # size of the tmpfs behind /box and /tmp together
    open_files: int = 256  # RLIMIT_NOFILE
    stack: int = 64 * MiB  # RLIMIT_STACK
    cpus: float = 1.0  # CPU bandwidth: how many CPUs' worth the run may use at once


@dataclass(frozen=True, slots=True)
class Bind:
    """A host path made visible inside the sandbox (read-only unless writable)."""

    source: str
    target: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One command to run isolated.

    `files` are copied into the sandbox before the run (sandbox path -> content);
    `collect` names files under /box to read back after the run (e.g. a compiled
    binary); they come back in RunResult.files.
    """

    argv: list[str]
    limits: Limits = field(default_factory=Limits)
    stdin: bytes | str | None = None  # bytes, or a host file path (str)
    files: dict[str, bytes] = field(default_factory=dict)
    collect: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None  # None: a minimal default PATH/HOME/LANG
    cwd: str = "/box"
    binds: list[Bind] = field(default_factory=list)
    profile: str = "default"  # seccomp profile under policies/seccomp/
    loopback: bool = False  # bring `lo` up inside the network namespace
    cpu: int | None = None  # pin the run to this CPU


@dataclass(slots=True)
class RunResult:
    """What happened. `status` says why the run ended; the rest is accounting."""

    status: Status
    exit_code: int | None = None
    signal: str | None = None
    cpu_time: float = 0.0
    wall_time: float = 0.0
    peak_memory: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    syscall: str | None = None  # for security_violation, when it can be known
    files: dict[str, bytes] = field(default_factory=dict)
