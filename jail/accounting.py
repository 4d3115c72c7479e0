"""From what the watch saw and the cgroup counted to a RunResult with one status."""

from __future__ import annotations

import os
import signal

from .errors import JailError
from .spec import Limits, RunResult, Status
from .supervise import Watched

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from .cgroup import RunCgroup


def account(seen: Watched, cg: RunCgroup, limits: Limits, setup_cpu: float) -> RunResult:
    """Turn what the watch saw and the cgroup's counters into a RunResult."""
    cpu = max(0.0, cg.cpu_usage() - setup_cpu)
    oom_killed, hit_limit = cg.memory_exhausted()
    if not seen.reported and seen.killed_for is None and not oom_killed:
        # Nobody the run answers for ended it: the builder died (the init's parent-death
        # signal), or the init failed. Not the program's fault, so not a verdict.
        raise JailError("the sandbox's init ended without reporting the program's end")
    wait_status = seen.wait_status
    exit_code = os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else None
    sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
    result = RunResult(
        status=Status.OK,
        exit_code=exit_code,
        signal=signal.Signals(sig).name if sig else None,
        cpu_time=cpu,
        wall_time=seen.wall_time,
        peak_memory=cg.peak_memory(),
        stdout=bytes(seen.stdout.data),
        stderr=bytes(seen.stderr.data),
        stdout_truncated=seen.stdout.truncated,
        stderr_truncated=seen.stderr.truncated,
    )
    result.status = verdict(
        seen.killed_for,
        exit_code,
        sig,
        cpu,
        limits,
        oom_killed,
        hit_limit,
        seen.stdout.truncated or seen.stderr.truncated,
    )
    if result.status is Status.SECURITY_VIOLATION and seen.syscall is not None:
        from .seccomp import syscall_name  # libseccomp, loaded only to name a denied call

        result.syscall = syscall_name(seen.syscall)
    return result


def verdict(
    killed_for: Status | None,
    exit_code: int | None,
    sig: int | None,
    cpu: float,
    limits: Limits,
    oom_killed: bool,
    hit_limit: bool,
    truncated: bool,
) -> Status:
    """Why the run ended, the most specific reason first."""
    if killed_for is not None:
        return killed_for
    if sig == signal.SIGSYS:  # a call seccomp denies (reported by the init), or another ABI
        return Status.SECURITY_VIOLATION
    if truncated:
        return Status.OUTPUT_LIMIT
    if oom_killed:
        return Status.MEMORY_LIMIT
    if cpu > limits.cpu_time:  # a real SIGXCPU (the per-process backstop) comes a second above it
        return Status.TIME_LIMIT
    if sig == signal.SIGXFSZ:
        return Status.FILE_SIZE_LIMIT
    if sig is not None:
        return Status.SIGNALED
    if exit_code:
        return Status.MEMORY_LIMIT if hit_limit else Status.NONZERO_EXIT
    return Status.OK
