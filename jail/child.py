"""What happens inside the sandbox between clone3 and execve, as flat lists of steps.

The clone3 child is pid 1 of the new pid namespace: it waits for the parent (id maps
written, cgroup joined), enters a new cgroup namespace, builds and pivots into the
read-only root, sets the hostname, then forks the program's process and stays on as
a minimal init. The program's process (pid 2) waits for its Launch (argv, env,
limits, seccomp program) — the container can be built before the job that uses it
is known — then sets rlimits, drops to the sandbox uid, loses every capability, sets
no_new_privs, loads seccomp last and execs. The program is not pid 1 because the
kernel ignores signals to pid 1 that it has no handler for: abort() and
kill(getpid(), ...) would not work as programs expect.

The init reaps everything reparented to it and, when the program ends, reports the
program's wait status to the parent and exits — which makes the kernel kill whatever
else is left in the namespace (pid_namespaces(7)). A setup failure is written as
"step\\0errno\\0message" to the report pipe and the process exits 127; a successful
execve closes the program's copy of that pipe (close-on-exec), and the init closes
its copy after the fork, so the parent reads EOF exactly when the program started.
"""

from __future__ import annotations

import os
import pickle
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
    seccomp_bpf: bytes
    loopback: bool
    cpu: int | None


@dataclass
class ChildPlan:
    """What the container needs before the job is known, precomputed by the parent."""

    root: str
    binds: list[rootfs.BindPlan]
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
    """pid 1: namespace-wide setup, then fork the program and act as init. Never returns."""
    step = "start"
    try:
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
        step = "clone3"
        # Not os.fork: glibc's fork takes every malloc arena lock first, and one may
        # have been held by another thread of the process we were cloned from.
        pid, _ = libc.clone3(0)
    except BaseException as e:  # noqa: BLE001 - the child must report, whatever it was
        _fail(plan.report_fd, step, e)
    if pid == 0:
        program(plan)
    init(plan, pid)


def program(plan: ChildPlan) -> None:
    """pid 2: wait for the Launch, drop everything and execve the program. Never returns."""
    step = "start"
    try:
        step = "wait for launch"
        launch = read_launch(plan.sync_fd)
        if launch is None:
            os._exit(126)  # the container was thrown away unused
        if launch.loopback:
            step = "loopback up"
            net.loopback_up()
        step = "signals"
        # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
        # across execve: give the program the defaults it expects.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            libc.default_signal(sig)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        step = "setrlimit"
        rlimits.apply(launch.rlimits)
        step = "setgroups/setresgid/setresuid"
        os.setgroups([])
        os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        step = "drop capabilities"
        caps.drop_all()
        step = "no_new_privs"
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        if launch.cpu is not None:
            step = "sched_setaffinity"
            os.sched_setaffinity(0, {launch.cpu})
        step = f"chdir({launch.cwd})"
        os.chdir(launch.cwd)
        step = "stdio"
        os.dup2(plan.stdin_fd, 0)
        os.dup2(plan.stdout_fd, 1)
        os.dup2(plan.stderr_fd, 2)
        libc.close_range_cloexec(3)
        step = "seccomp"
        SeccompProgram(launch.seccomp_bpf).load()
        step = f"execve({launch.argv[0]})"
        os.execvpe(launch.argv[0], launch.argv, launch.env)
    except BaseException as e:  # noqa: BLE001
        _fail(plan.report_fd, step, e)


def read_launch(fd: int) -> Launch | None:
    """Read one length-prefixed pickled Launch from the parent; None at EOF."""
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
    launch = pickle.loads(b"".join(chunks))
    assert isinstance(launch, Launch)
    return launch


def encode_launch(launch: Launch) -> bytes:
    """The message read_launch reads."""
    body = pickle.dumps(launch, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("I", len(body)) + body


def init(plan: ChildPlan, program_pid: int) -> None:
    """pid 1 after the fork: reap, report the program's wait status, exit. Never returns."""
    try:
        # Keep only the status pipe: the fds of our own run, and those of runs that other
        # threads of the parent had open at clone time, must not stay open here.
        os.closerange(3, plan.status_fd)
        os.closerange(plan.status_fd + 1, 1 << 20)
        libc.capset_zero()  # the init needs no privilege to wait
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == program_pid:
                os.write(plan.status_fd, struct.pack("i", status))
                os._exit(0)
    except BaseException:  # noqa: BLE001 - an init that cannot wait ends the run
        os._exit(125)
