"""What happens inside the sandbox, as flat lists of steps.

The clone3 child is pid 1 of the new pid namespace: it waits for the parent (id maps
written, cgroup joined), enters a new cgroup namespace, builds and pivots into the
read-only root, sets the hostname (and brings `lo` up if the container's shape asks),
then drops to the sandbox uid, loses every capability, sets no_new_privs and loads
the seccomp filter — all before the job is known, so containers can be built ahead
of demand (the filter is part of the container's shape). When its Launch arrives
(argv, env, cwd, rlimits, CPU pin) it applies the rlimits and spawns the program with
posix_spawn (vfork-style: no copy of this Python process, and no teardown of one at
execve), then stays on as a minimal init.

The program is pid 2, not pid 1, because the kernel drops signals to pid 1 that have
no handler: abort() and kill(getpid(), ...) must work as programs expect. The init
keeps nothing the program could use: same uid, no capabilities, the same seccomp
filter, and the kernel shields a namespace's init from signals sent inside it.
When the program ends, the init kills every process left (kill(-1)), reaps them,
reports the program's wait status to the parent and exits, so the parent has the
whole result before the namespaces are torn down. The garbage collector is off: each
page Python touches in a process cloned from the builder is a copy-on-write fault.

A setup failure is written as "step\\0errno\\0message" to the report pipe and the
process exits 127; the init closes the pipe once the program is spawned, so the
parent reads EOF exactly when the program started.
"""

from __future__ import annotations

import gc
import marshal
import os
import select
import signal
import struct
from dataclasses import dataclass

from . import caps, libc, net, rlimits, rootfs
from .libc import SeccompProgram
from .rootfs import SANDBOX_GID, SANDBOX_UID


@dataclass
class Launch:
    """What the program's process needs once the job is known; sent as one message."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    rlimits: list[tuple[int, int]]
    cpu: int | None


@dataclass
class ChildPlan:
    """What the container needs before the job is known, precomputed by the parent."""

    root: str
    binds: list[rootfs.BindPlan]
    loopback: bool  # bring `lo` up (a container shape, like the binds)
    seccomp: SeccompProgram
    sync_fd: int  # "G" when the id maps are written, then the length-prefixed Launch
    report_fd: int  # close-on-exec; setup failures are reported here
    status_fd: int  # the init writes the program's wait status here
    stdin_fd: int
    stdout_fd: int
    stderr_fd: int


def _fail(fd: int, step: str, e: BaseException) -> None:
    err = getattr(e, "errno", 0) or 0
    try:
        os.write(fd, f"{step}\0{err}\0{e}".encode(errors="replace")[:4000])
    finally:
        os._exit(127)


def main(plan: ChildPlan) -> None:
    """pid 1: build the container, wait for the job, spawn it, act as init. Never returns."""
    gc.disable()
    step = "start"
    try:
        step = "close inherited fds"
        # We are a clone of the builder: its control socket and other containers'
        # pipes are in our fd table too. Keep only our own, first thing.
        keep_only([plan.sync_fd, plan.report_fd, plan.status_fd, plan.stdin_fd, plan.stdout_fd, plan.stderr_fd])
        step = "wipe cmdline"
        # The program can read /proc/1/cmdline: it must not learn the builder's host paths.
        libc.wipe_cmdline_and_environ(b"cellblock-init")
        step = "prctl(PR_SET_PDEATHSIG)"
        # If the thread that made us dies (the worker was killed), so does the run.
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
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
        step = "setgroups/setresgid/setresuid"
        os.setgroups([])
        os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        step = "drop capabilities"
        caps.drop_all()
        step = "no_new_privs"
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        step = "seccomp"
        listener = plan.seccomp.load()
        step = "wait for launch"
        launch = read_launch(plan.sync_fd)
        if launch is None:
            os._exit(126)  # the container was thrown away unused
        step = f"chdir({launch.cwd})"
        os.chdir(launch.cwd)
        if launch.cpu is not None:
            step = "sched_setaffinity"
            os.sched_setaffinity(0, {launch.cpu})
        step = "setrlimit"
        rlimits.apply(launch.rlimits)
        step = "close-on-exec"
        # posix_spawn passes every fd not marked close-on-exec: only 0, 1, 2 may go.
        libc.close_range_cloexec(3)
        step = f"execve({launch.argv[0]})"
        # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
        # across execve: the program gets the defaults and an empty signal mask.
        pid = os.posix_spawnp(
            launch.argv[0], launch.argv, launch.env,
            file_actions=[(os.POSIX_SPAWN_DUP2, plan.stdin_fd, 0), (os.POSIX_SPAWN_DUP2, plan.stdout_fd, 1),
                          (os.POSIX_SPAWN_DUP2, plan.stderr_fd, 2)],
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ), setsigmask=(),
        )
    except BaseException as e:
        _fail(plan.report_fd, step, e)
    init(plan, pid, listener)


def keep_only(fds: list[int]) -> None:
    """Close every fd from 3 up except `fds`."""
    low = 3
    for fd in sorted(set(fds)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, 1 << 20)


def read_launch(fd: int) -> Launch | None:
    """Read one length-prefixed Launch from the parent; None at EOF."""
    header = os.read(fd, 4)
    if len(header) < 4:
        return None
    size = struct.unpack("I", header)[0]
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return Launch(*marshal.loads(b"".join(chunks)))


def encode_launch(launch: Launch) -> bytes:
    """The message read_launch reads (marshal: plain values, fast to read back)."""
    body = marshal.dumps((launch.argv, launch.env, launch.cwd, launch.rlimits, launch.cpu))
    return struct.pack("I", len(body)) + body


def init(plan: ChildPlan, program_pid: int, listener: int) -> None:
    """pid 1 once the program runs: wait, clean up, report, exit. Never returns.

    It waits for the program to end or for a seccomp notification (a call the
    profile denies: the caller is blocked in it until we act). Then every other
    process is killed and reaped, and the report is written: the program's wait
    status (for a denied call, "killed by SIGSYS") and the denied syscall's number.
    """
    try:
        # Keep only the status pipe and the listener: the program has what it needs.
        keep_only([plan.status_fd, listener])
        program = os.pidfd_open(program_pid)
        poller = select.poll()
        poller.register(program, select.POLLIN)
        poller.register(listener, select.POLLIN)
        status: int | None = None
        syscall: int | None = None
        while status is None:
            ready = {fd for fd, _ in poller.poll()}
            if listener in ready:
                syscall = libc.seccomp_notification(listener)
                status = int(signal.SIGSYS)  # the wait status of a process killed by SIGSYS
            elif program in ready:
                _, wait_status = os.waitpid(program_pid, 0)
                status = wait_status
        # Whatever is left running dies now, and is reaped, so that every output pipe
        # is at EOF when the parent reads the report.
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
                os.waitpid(-1, 0)
            except (ChildProcessError, ProcessLookupError):
                break
        os.write(plan.status_fd, struct.pack("ii", status, -1 if syscall is None else syscall))
        os._exit(0)
    except BaseException:  # an init that cannot wait ends the run
        os._exit(125)
