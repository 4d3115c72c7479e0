"""What the child does between clone3 and execve, as one flat list of steps.

Reading `main` is reading the isolation argument, in the order of design.md: wait for
the parent (id maps written, cgroup joined), new cgroup namespace, read-only root and
pivot, hostname, rlimits, drop to the sandbox uid, no capabilities, no_new_privs,
seccomp last, execve. Any failure is written as "step\\0errno\\0message" to the error
pipe (close-on-exec, so a successful execve closes it empty) and the child exits 127.
Everything the child needs is computed by the parent beforehand (ChildPlan).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import caps, libc, net, rlimits, rootfs
from .libc import SeccompProgram
from .rootfs import SANDBOX_GID, SANDBOX_UID


@dataclass
class ChildPlan:
    """Everything the child needs, precomputed by the parent."""

    root: str
    binds: list[rootfs.BindPlan]
    argv: list[str]
    env: dict[str, str]
    cwd: str
    rlimits: list[tuple[int, int]]
    seccomp: SeccompProgram
    loopback: bool
    cpu: int | None
    sync_fd: int  # the parent writes one byte when the child may go on
    error_fd: int  # close-on-exec; setup failures are reported here
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int


def main(plan: ChildPlan) -> None:
    """Run the steps and execve; never returns."""
    step = "start"
    try:
        step = "wait for parent"
        if os.read(plan.sync_fd, 1) != b"G":
            os._exit(126)  # the parent gave up on us
        step = "unshare(CLONE_NEWCGROUP)"
        libc.unshare(libc.CLONE_NEWCGROUP)
        step = "mounts"
        rootfs.child_mount(plan.binds, plan.root)
        step = "sethostname"
        libc.sethostname("cellblock")
        if plan.loopback:
            step = "loopback up"
            net.loopback_up()
        step = "setrlimit"
        rlimits.apply(plan.rlimits)
        step = "setgroups/setresgid/setresuid"
        os.setgroups([])
        os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        step = "drop capabilities"
        caps.drop_all()
        step = "no_new_privs"
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        if plan.cpu is not None:
            step = "sched_setaffinity"
            os.sched_setaffinity(0, {plan.cpu})
        step = f"chdir({plan.cwd})"
        os.chdir(plan.cwd)
        step = "stdio"
        os.dup2(plan.stdin_fd, 0)
        os.dup2(plan.stdout_fd, 1)
        os.dup2(plan.stderr_fd, 2)
        libc.close_range_cloexec(3)
        step = "seccomp"
        plan.seccomp.load()
        step = f"execve({plan.argv[0]})"
        os.execvpe(plan.argv[0], plan.argv, plan.env)
    except BaseException as e:  # noqa: BLE001 - the child must report, whatever it was
        err = getattr(e, "errno", 0) or 0
        try:
            os.write(plan.error_fd, f"{step}\0{err}\0{e}".encode(errors="replace")[:4000])
        finally:
            os._exit(127)
