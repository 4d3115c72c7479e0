"""One container's life: built (possibly ahead of demand), started once, torn down.

`prepare` does everything that does not depend on the job: the tmpfs root, the
cgroup, the pipes, the container's init (jail/init.c, launched by a posix_spawn'd
launcher or the builder's fork server; it is cloned into every namespace and the
cgroup), and, in `Building.finish` once the init exists, the id maps; the init then
mounts, pivots, drops every privilege and waits for the job. `start` applies the job's
limits, copies its files and stdin in, sends the Launch and waits until execve happened.
`Sandbox.release` undoes everything, in reverse, whatever state it got to (each undo
registered the moment its resource existed). A container is used for exactly one run.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import struct
import time
from collections.abc import Callable
from contextlib import ExitStack

from . import cgroup, libc, rlimits, rootfs, supervise, userns
from .accounting import account
from .errors import ChildSetupError, CommandNotFound, JailError, Step
from .launch import Launch, encode_launch, encode_plan
from .record import record
from .spec import DEFAULT_ENV, Bind, Limits, Pipe, RunResult, RunSpec

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from typing import Protocol

    from .sink import OutputSink

    class Launcher(Protocol):
        """Starts a container's init (jail/init.c): `stdio` become the program's 0, 1, 2;
        `control` are sync, report, status, the cgroup directory fd or -1, then any `tasks`
        fds. Its answer's `pid()` is the init's pid (a child of this process), or raises what
        the init's launcher reported on `report_r` if it failed. The caller closes its copies
        of all of them once the Launcher returns."""

        def __call__(self, stdio: list[int], control: list[int], report_r: int) -> LaunchedInit: ...


SETUP_TIMEOUT = 10.0
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # <linux/fcntl.h>
INITIAL_DISK = Limits().disk  # the root's size until `start` sets the job's: a default job without files keeps it
REPORT = struct.Struct("=ii")  # init.c's struct report: step, errno; then the detail
STARTED = struct.Struct("=iiQQ")  # init.c's struct started: 0, 0, monotonic ns, setup CPU ns


@record(frozen=True)
class Shape:
    """What a container is built with before its job is known: binds, loopback, seccomp profile,
    and whether its stdin is a file or a pipe."""

    binds: tuple[Bind, ...] = ()
    loopback: bool = False
    profile: str = "default"
    live_stdin: bool = False  # stdin is a pipe the caller writes while the program runs (else a memfd)

    @classmethod
    def of(cls, spec: RunSpec) -> Shape:
        return cls(tuple(spec.binds), spec.loopback, spec.profile, isinstance(spec.stdin, Pipe))


class FdSet:
    """The fds one container opened; each is closed exactly once, whatever path it takes.

    Closing an fd number twice could close another thread's fd that reused the number.
    """

    def __init__(self) -> None:
        self._open: set[int] = set()

    def add(self, fd: int) -> int:
        self._open.add(fd)
        return fd

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self._open):
            self.close(fd)


@record
class Sandbox:
    """A built container waiting for (or done with) its one job.

    The fds are this process's: the init's pidfd, the parent ends of the pipes and the
    stdin memfd (or, for a live stdin, its pipe's write end). `release` throws the
    container away (in this process, or by telling the builder process that made it).
    """

    slot: int
    root: str
    host_uid: int
    shape: Shape
    cg: cgroup.RunCgroup
    pidfd: int
    sync_w: int
    report_r: int
    status_r: int
    out_r: int
    err_r: int
    stdin: int
    release: Callable[[], None]
    used: bool = False
    id: int = 0  # the builder's number for it

    def fds(self) -> list[int]:
        return [self.pidfd, self.sync_w, self.report_r, self.status_r, self.out_r, self.err_r, self.stdin]

    def kill(self) -> None:
        """SIGKILL the container's init, and with it everything in the container."""
        _kill(self.pidfd)


def prepare(
    backend: cgroup.CgroupBackend,
    slot: int,
    cgroup_name: str,
    root: str,
    host_uid: int,
    etc_dir: str,
    launch: Launcher,
    bpf: bytes,
    shape: Shape,
    on_release: Callable[[], None],
) -> Building:
    """Build a container up to the point where only the job is missing (`launch` starts
    its init, `bpf` is its seccomp program, compiled; `cgroup_name` is the slot's run
    cgroup, cgroup.run_name): everything up to the init's launch now, the rest in the
    returned Building's `finish`, once the init exists.

    The Sandbox's `release` kills the container's processes, reaps its init (a child of
    this process), removes its cgroup and unmounts its root, then calls `on_release`.
    """
    undo = ExitStack()
    undo.callback(on_release)
    fds = FdSet()
    try:
        plans = rootfs.plan_binds(root, etc_dir, list(shape.binds))
        rootfs.mount_root(root, INITIAL_DISK, list(shape.binds), host_uid, etc_dir)
        undo.callback(rootfs.unmount_root, root)
        cg = backend.create(cgroup_name)
        undo.callback(cg.remove)
        undo.callback(cg.kill)
        undo.callback(fds.close_all)

        def pipe() -> tuple[int, int]:
            r, w = os.pipe2(os.O_CLOEXEC)
            return fds.add(r), fds.add(w)

        sync_r, sync_w = pipe()
        report_r, report_w = pipe()
        status_r, status_w = pipe()
        out_r, out_w = pipe()
        err_r, err_w = pipe()
        for fd in (out_w, err_w):
            _grow_pipe(fd)
        for fd in (out_r, err_r):  # supervise.watch drains them as poll says, never blocking
            os.set_blocking(fd, False)
        if shape.live_stdin:  # the program reads what the caller writes, as it comes
            stdin_r, stdin = pipe()
        else:  # one open file for both: the parent fills it, the program reads it
            stdin = stdin_r = fds.add(os.memfd_create("stdin", os.MFD_CLOEXEC))
        plan = encode_plan(root, plans, shape.loopback, libc.cap_last_cap(), bpf)
        entry = [cg.clone_fd()]
        try:
            entry += cg.join_fds()
            launched = launch([stdin_r, out_w, err_w], [sync_r, report_w, status_w, *entry], report_r)
            undo.callback(launched.abandon)
        finally:
            for fd in entry:
                if fd >= 0:
                    os.close(fd)
        for fd in (sync_r, report_w, status_w, out_w, err_w):
            fds.close(fd)
        if stdin_r != stdin:
            fds.close(stdin_r)
    except BaseException:
        undo.close()
        raise
    sb = Sandbox(
        slot=slot,
        root=root,
        host_uid=host_uid,
        shape=shape,
        cg=cg,
        pidfd=-1,
        sync_w=sync_w,
        report_r=report_r,
        status_r=status_r,
        out_r=out_r,
        err_r=err_r,
        stdin=stdin,
        release=undo.close,
    )
    return Building(sb, launched, plan, fds, undo)


class Building:
    """A container whose init is being launched: `ready` turns readable once the launcher
    answered. A builder does other work meanwhile (the fork server's clone3 makes the
    init's namespaces: the longest step of a build), then calls `finish` (or `cancel`);
    anyone else calls `finish` at once."""

    def __init__(self, sb: Sandbox, launched: LaunchedInit, plan: bytes, fds: FdSet, undo: ExitStack) -> None:
        self.ready = launched.ready
        self._sb, self._launched, self._plan, self._fds, self._undo = sb, launched, plan, fds, undo

    def finish(self) -> Sandbox:
        """The built container: the init's pid taken, its id maps written, its plan sent.
        Whatever fails, everything the build took is given back, and the failure is a
        JailError (an init that died before its plan is a sandbox fault, not a lost pipe)."""
        sb = self._sb
        try:
            pid = self._launched.pid()
            sb.pidfd = self._fds.add(os.pidfd_open(pid))
            self._undo.callback(_reap, pid, sb.pidfd)
            userns.write_maps(pid, sb.host_uid)
            libc.write_all(sb.sync_w, self._plan)
        except OSError as e:
            self._undo.close()
            raise JailError(f"setting up the container's init failed: {e}") from e
        except BaseException:
            self._undo.close()
            raise
        return sb

    def cancel(self) -> None:
        """Give back everything the build took, its init included."""
        self._undo.close()


def start(sb: Sandbox, spec: RunSpec) -> tuple[float, float]:
    """Hand the job to the container; returns (start time, CPU the setup used) at the
    program's execve, as the container read them then."""
    if sb.used:
        raise JailError("a container runs exactly one job")
    sb.used = True
    limits = spec.limits
    sb.cg.set_limits(limits)
    # `disk` is what the program may write: the files it is given come on top, or a limit
    # below their size would fail the copy, a sandbox fault for the caller's own input.
    size = limits.disk + rootfs.footprint(spec.files)
    if size != INITIAL_DISK:
        libc.mount(None, sb.root, None, libc.MS_REMOUNT | libc.MS_NOSUID, f"size={size}")
    rootfs.copy_in(sb.root, spec.files, sb.host_uid)
    if not isinstance(spec.stdin, Pipe):
        fill_stdin(sb.stdin, spec.stdin)
    launch = Launch(
        argv=list(spec.argv),
        env=dict(DEFAULT_ENV) if spec.env is None else dict(spec.env),
        cwd=spec.cwd,
        rlimits=rlimits.plan(limits),
        cpu=spec.cpu,
    )
    sb.cg.reset_peak()
    try:
        libc.write_all(sb.sync_w, encode_launch(launch))
    except BrokenPipeError:
        # The init failed a setup step (a bind that would not mount, say) and is gone.
        check_exec(sb.report_r, spec.argv[0])
        raise JailError("the container's init died before its job came") from None
    clocks = check_exec(sb.report_r, spec.argv[0])
    if clocks is None:  # the init was killed before it could send them: the nearest reading is now
        return time.monotonic(), sb.cg.cpu_usage()
    return clocks


def finish(
    sb: Sandbox,
    spec: RunSpec,
    started: float,
    setup_cpu: float,
    sink: OutputSink | None = None,
    stop: supervise.Stop | None = None,
) -> RunResult:
    """Watch the started program to its end (its output also to `sink`; `stop` may end it
    early) and account for it."""
    limits = spec.limits

    def stream(fd: int, name: str) -> supervise.Stream:
        keep = sink is None or name in sink.keeps
        return supervise.Stream(fd, limits.output, name, keep=keep, capped=keep or sink is None or sink.capped)

    seen = supervise.watch(
        sb.pidfd,
        stream(sb.out_r, "stdout"),
        stream(sb.err_r, "stderr"),
        sb.cg,
        limits,
        started,
        setup_cpu,
        sb.status_r,
        sink,
        stop,
    )
    result = account(seen, sb.cg, limits, setup_cpu)
    if spec.collect:  # read back before teardown: the tmpfs goes with the container
        max_bytes = limits.disk if spec.collect_bytes is None else spec.collect_bytes
        got = rootfs.collect(sb.root, spec.collect, spec.collect_files, max_bytes)
        result.files, result.files_truncated = got.files, got.truncated
    return result


class LaunchedInit:
    """An init on its way: `ready` turns readable once its launcher answered (its pid, or
    that it failed); `pid()` reads that answer, once. `abandon` is for a launch whose init
    nobody will use: it reads the answer if no one did and kills and reaps that init."""

    def __init__(self, ready: int, answer: Callable[[], int]) -> None:
        self.ready = ready
        self._answer = answer
        self._answered = False

    def pid(self) -> int:
        if self._answered:
            raise JailError("this launch was answered already")
        self._answered = True
        return self._answer()

    def abandon(self) -> None:
        if self._answered:
            return  # whoever took the pid reaps the init
        try:
            pid = self.pid()
        except JailError:
            return  # no init
        os.kill(pid, signal.SIGKILL)  # our child, not yet reaped: the pid is still its
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # reaped by someone else


def launch_by_spawn(init: str, stdio: list[int], control: list[int], report_r: int) -> LaunchedInit:
    """A Launcher with a launcher of its own, posix_spawn'd: what a process
    with no fork server uses (jail/forkserver.py). The launcher writes the init's pid on
    `report_r`."""
    launcher = spawn_init(init, stdio, control)
    return LaunchedInit(report_r, lambda: init_pid(launcher, report_r))


def spawn_init(init: str, stdio: list[int], control: list[int]) -> int:
    """posix_spawn the init's launcher with `stdio` as its 0, 1, 2; returns the launcher's pid.

    The launcher (init.c) clones the init into the namespaces (and, on v2, the run's
    cgroup) with CLONE_PARENT, so the init is our child; it writes the init's pid on the
    report pipe and exits. `control` (sync, report, status, the cgroup directory fd or -1,
    then any `tasks` fds, which the init writes to join the run's v1 cgroups) keep their
    numbers, which go in argv.
    """
    actions = [(os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(stdio)]
    actions += [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in control if fd >= 0]  # clears close-on-exec
    try:
        return os.posix_spawn(init, ["cellblock-init", *map(str, control)], {}, file_actions=actions)
    except OSError as e:
        raise JailError(f"starting the container init {init} failed: {e}") from e


def init_pid(launcher: int, report_r: int) -> int:
    """Reap the launcher and read the pid of the init it cloned."""
    _, status = os.waitpid(launcher, 0)
    if status != 0:
        check_exec(report_r, "")  # raises with the step the launcher reported
        raise JailError(f"the container init's launcher failed (wait status {status})")
    raw = os.read(report_r, 4)
    if len(raw) != 4:
        raise JailError("the container init's launcher did not report the init's pid")
    return int.from_bytes(raw, "little")


def fill_stdin(fd: int, stdin: bytes | str | None) -> None:
    """Put the program's stdin into its memfd: bytes, a host file's content, or nothing."""
    if isinstance(stdin, str):
        try:
            src = os.open(stdin, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise JailError(f"cannot open stdin file {stdin!r}: {e.strerror}") from e
        try:
            while os.sendfile(fd, src, None, 1 << 30):
                pass
        finally:
            os.close(src)
    elif stdin:
        libc.write_all(fd, stdin)
    os.lseek(fd, 0, os.SEEK_SET)


def check_exec(report_fd: int, command: str) -> tuple[float, float] | None:
    """Block until the program exec'd or a setup step reported failure (raised). Returns the
    program's start on CLOCK_MONOTONIC and the CPU the container's setup used, both in
    seconds, as the init read them at execve; None if it closed the pipe without them (or
    with a start that is not in the past)."""
    poller = select.poll()  # not select: a process running many containers has fds above FD_SETSIZE
    poller.register(report_fd, select.POLLIN)
    if not poller.poll(int(SETUP_TIMEOUT * 1000)):
        raise JailError(f"the sandbox did not reach execve within {SETUP_TIMEOUT} s")
    report = os.read(report_fd, 4096)
    if not report:
        return None
    if report[: REPORT.size] == bytes(REPORT.size):  # step 0: no step failed, the program started
        if len(report) != STARTED.size:
            raise JailError(f"the container's init sent a malformed start: {report!r}")
        _, _, monotonic_ns, setup_cpu_ns = STARTED.unpack(report)
        # Then EOF, once the program's execve has closed its copy of the pipe too (the init
        # wakes, and sends the above, earlier in the execve): from there the program runs.
        if not poller.poll(int(SETUP_TIMEOUT * 1000)):
            raise JailError(f"the program's execve did not finish within {SETUP_TIMEOUT} s")
        if os.read(report_fd, 1):
            raise JailError("the container's init wrote more after the program's start")
        started = monotonic_ns / 1e9
        return (started, setup_cpu_ns / 1e9) if 0 < started <= time.monotonic() else None
    if len(report) < REPORT.size:
        raise JailError(f"the container's init sent a truncated report: {report!r}")
    number, code = REPORT.unpack_from(report)
    step = Step(number)
    if step is Step.EXECVE and code in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR):
        raise CommandNotFound(f"cannot execute {command!r} in the sandbox: {os.strerror(code)}")
    raise ChildSetupError(step, code, report[REPORT.size :].decode(errors="replace"))


def close_in_place(fd: int) -> None:
    """Close the file `fd` refers to (a pipe's write end: its reader sees EOF once no other
    copy is open) but keep the number, now /dev/null, until whoever owns it closes it:
    closing the number itself could close another thread's reuse of it."""
    null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)


def _grow_pipe(fd: int) -> None:
    import fcntl

    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size: the default size still works


def _kill(pidfd: int) -> None:
    try:
        libc.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass  # already gone


def _reap(pid: int, pidfd: int) -> None:
    """Kill the container's init (and so everything in it) and reap it."""
    _kill(pidfd)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
