"""The orchestrator: one run, from a RunSpec to a RunResult, in the order of design.md.

Parent side: take a slot, build the root, make the cgroup, clone3 the child into all
the new namespaces (and, on v2, straight into its cgroup), write its id maps, join it
to the cgroup (v1), let it go, learn whether execve worked, watch it, read the
accounting, collect files, then undo everything in reverse (one ExitStack per run,
each undo registered the moment its resource exists).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import threading
import time
from contextlib import ExitStack

from . import cgroup, libc, rlimits, rootfs, seccomp, supervise, userns
from .child import ChildPlan
from .child import main as child_main
from .config import JailConfig
from .errors import ChildSetupError, CommandNotFound, JailError
from .slots import SlotPool
from .spec import Limits, RunResult, RunSpec, Status

NAMESPACES = (
    libc.CLONE_NEWUSER | libc.CLONE_NEWNS | libc.CLONE_NEWPID | libc.CLONE_NEWNET
    | libc.CLONE_NEWIPC | libc.CLONE_NEWUTS | libc.CLONE_NEWTIME
)
DEFAULT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/box",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
}
SETUP_TIMEOUT = 10.0
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031  # <linux/fcntl.h>
ETC_VERSION = "etc-1"


class Jail:
    """Host-wide state of the jail: cgroup backend, slots, staged /etc. One per process."""

    def __init__(self, config: JailConfig | None = None) -> None:
        self.config = config or JailConfig.from_env()
        if os.geteuid() != 0:
            raise JailError("the jail needs root (or run `python -m jail doctor` to see what is missing)")
        os.makedirs(self.config.state_dir, mode=0o711, exist_ok=True)
        self.etc_dir = f"{self.config.state_dir}/{ETC_VERSION}"
        rootfs.stage_etc(self.etc_dir)
        self.backend = cgroup.open_backend(parent=self.config.cgroup_parent, version=self.config.cgroup_version)
        self.slots = SlotPool(self.config.state_dir, self.config.slots, self.config.uid_base)

    def run(self, spec: RunSpec) -> RunResult:
        """Run spec.argv isolated. Raises JailError for sandbox faults only."""
        validate(spec)
        program = seccomp.compiled(spec.profile)
        slot, fresh = self.slots.acquire()
        try:
            if fresh:
                self._clean_slot(slot)
            return self._run(slot, spec, program)
        finally:
            self.slots.release(slot)

    def _clean_slot(self, slot: int) -> None:
        """Undo what a process that died holding this slot left behind."""
        root = self.slots.root(slot)
        if os.path.ismount(root):
            rootfs.unmount_root(root)
        self.backend.sweep(f"-{slot}-")

    def _run(self, slot: int, spec: RunSpec, program: libc.SeccompProgram) -> RunResult:
        limits = spec.limits
        host_uid = self.slots.host_uid(slot)
        root = self.slots.root(slot)
        binds = rootfs.plan_binds(root, self.etc_dir, spec.binds)
        with ExitStack() as undo:
            rootfs.mount_root(root, limits.disk, spec.binds, host_uid)
            undo.callback(rootfs.unmount_root, root)
            rootfs.copy_in(root, spec.files, host_uid)
            cg = self.backend.create(cgroup.run_name(slot), limits)
            undo.callback(cg.remove)
            undo.callback(cg.kill)

            fds = FdSet()
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
            stdin_fd = fds.add(open_stdin(spec.stdin))
            plan = ChildPlan(
                root=root,
                binds=binds,
                argv=spec.argv,
                env=dict(DEFAULT_ENV) if spec.env is None else dict(spec.env),
                cwd=spec.cwd,
                rlimits=rlimits.plan(limits),
                seccomp=program,
                loopback=spec.loopback,
                cpu=spec.cpu,
                sync_fd=sync_r,
                report_fd=report_w,
                status_fd=status_w,
                stdin_fd=stdin_fd,
                stdout_fd=out_w,
                stderr_fd=err_w,
            )
            cg_fd = cg.clone_fd()
            try:
                pid, pidfd = libc.clone3(NAMESPACES, cg_fd)
            except OSError as e:
                raise JailError(f"{e}; are user namespaces enabled (sysctl user.max_user_namespaces)?") from e
            finally:
                if cg_fd >= 0:
                    os.close(cg_fd)
            if pid == 0:
                child_main(plan)  # never returns
            undo.callback(_reap, pid, pidfd)
            for fd in (sync_r, report_w, status_w, out_w, err_w, stdin_fd):
                fds.close(fd)
            userns.write_maps(pid, host_uid)
            if cg_fd < 0:
                cg.join(pid)
            os.write(sync_w, b"G")
            check_exec(report_r, spec.argv[0])
            started = time.monotonic()
            setup_cpu = cg.cpu_usage()  # the child's own setup is not the program's time
            seen = supervise.watch(
                pid, pidfd,
                supervise.Stream(out_r, limits.output),
                supervise.Stream(err_r, limits.output),
                cg, limits, started, setup_cpu, status_r,
            )
            result = account(seen, cg, limits, setup_cpu)
            if spec.collect:
                result.files = rootfs.collect(root, spec.collect, limits.disk)
            return result


def validate(spec: RunSpec) -> None:
    """Refuse specs the jail cannot honour, before touching the host."""
    if not spec.argv or not all(isinstance(a, str) and "\0" not in a for a in spec.argv):
        raise JailError("argv must be a non-empty list of strings without NUL bytes")
    lim = spec.limits
    if lim.cpu_time <= 0 or lim.wall_time <= 0 or lim.memory < 1 << 20 or lim.pids < 1 or lim.cpus <= 0:
        raise JailError(f"limits out of range: {lim}")
    if lim.output < 0 or lim.file_size < 0 or lim.disk < 1 << 16 or lim.open_files < 4 or lim.stack < 1 << 16:
        raise JailError(f"limits out of range: {lim}")
    if not os.path.isabs(spec.cwd):
        raise JailError(f"cwd {spec.cwd!r} must be absolute")


def open_stdin(stdin: bytes | str | None) -> int:
    """An fd for the program's stdin: a memfd holding the bytes, a host file, or empty."""
    if isinstance(stdin, str):
        try:
            return os.open(stdin, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise JailError(f"cannot open stdin file {stdin!r}: {e.strerror}") from e
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
    if stdin:
        view = memoryview(stdin)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def check_exec(report_fd: int, command: str) -> None:
    """Block until the child exec'd (pipe closes empty) or reported a failed step."""
    ready, _, _ = select.select([report_fd], [], [], SETUP_TIMEOUT)
    if not ready:
        raise JailError(f"the sandbox child did not reach execve within {SETUP_TIMEOUT} s")
    report = os.read(report_fd, 4096)
    if not report:
        return
    step, err, detail = (report.decode(errors="replace").split("\0") + ["", ""])[:3]
    code = int(err) if err.isdigit() else 0
    if step.startswith("execve") and code in (errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR):
        raise CommandNotFound(f"cannot execute {command!r} in the sandbox: {os.strerror(code)}")
    raise ChildSetupError(step, code, detail)


def account(seen: supervise.Watched, cg: cgroup.RunCgroup, limits: Limits, setup_cpu: float) -> RunResult:
    """Turn what the watch saw and the cgroup's counters into a RunResult."""
    cpu = max(0.0, cg.cpu_usage() - setup_cpu)
    oom_killed, hit_limit = cg.memory_exhausted()
    status_code = seen.wait_status
    exit_code = os.WEXITSTATUS(status_code) if os.WIFEXITED(status_code) else None
    sig = os.WTERMSIG(status_code) if os.WIFSIGNALED(status_code) else None
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
    result.status = verdict(seen.killed_for, exit_code, sig, cpu, limits, oom_killed, hit_limit,
                            seen.stdout.truncated or seen.stderr.truncated)
    if result.status is Status.SECURITY_VIOLATION:
        from .audit import seccomp_syscall

        result.syscall = seccomp_syscall()
    return result


def verdict(killed_for: Status | None, exit_code: int | None, sig: int | None, cpu: float, limits: Limits,
            oom_killed: bool, hit_limit: bool, truncated: bool) -> Status:
    """Why the run ended, the most specific reason first."""
    if killed_for is not None:
        return killed_for
    if truncated:
        return Status.OUTPUT_LIMIT
    if oom_killed:
        return Status.MEMORY_LIMIT
    if sig == signal.SIGSYS:  # seccomp's SECCOMP_RET_KILL_PROCESS
        return Status.SECURITY_VIOLATION
    if sig == signal.SIGXCPU or cpu > limits.cpu_time:
        return Status.TIME_LIMIT
    if sig == signal.SIGXFSZ:
        return Status.FILE_SIZE_LIMIT
    if sig is not None:
        return Status.SIGNALED
    if exit_code:
        return Status.MEMORY_LIMIT if hit_limit else Status.NONZERO_EXIT
    return Status.OK


class FdSet:
    """The fds one run opened; each is closed exactly once, whatever path the run takes.

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


def _grow_pipe(fd: int) -> None:
    import fcntl

    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # over /proc/sys/fs/pipe-max-size: the default size still works


def _reap(pid: int, pidfd: int) -> None:
    """Kill and reap the child if a failure left it alive; close its pidfd."""
    try:
        libc.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(pidfd)


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
