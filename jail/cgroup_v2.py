"""cgroup v2: one directory per run below a parent group with memory, pids and cpu enabled.

Where the parent goes:
- CELLBLOCK_CGROUP_PARENT as an absolute path inside the hierarchy, if given;
- `<root>/cellblock` when we sit at the root of the hierarchy (root on a host without
  systemd) or in a group that is not ours to organise (a login session, a systemd unit
  without `Delegate=yes`), if the root is writable;
- else inside the group this service was given (a unit with `Delegate=yes`, which systemd
  marks with the trusted.delegate xattr; the root of a cgroup namespace: a Kubernetes pod's
  container): `<group>/cellblock`, after moving the group's processes to a
  `<group>/supervisor` leaf, because v2 forbids processes in a group that hands
  controllers to its children ("no internal processes").
A process that finds itself in that leaf beside that parent (a second worker of the
service, a builder, a command run from a shell that was moved) belongs to the same
service: one parent group per service, never a nested `supervisor/supervisor`.
"""

from __future__ import annotations

import errno
import os
import time

from .cgroup import (
    CFS_PERIOD_US,
    TAKE_DOWN_WAIT,
    left_behind,
    leftover_slots,
    make_run_group,
    read_file,
    read_keyed,
    remove_dir,
    take_down,
    write_file,
)
from .cgroup_v1 import v1_mounts
from .errors import JailError
from .record import field, record
from .spec import Limits

NEEDED = ("memory", "pids", "cpu")
LEAF = "supervisor"  # where a delegated group's own processes go
DELEGATE_FIX = (
    "delegate them to this service: systemd `Delegate=yes` on its unit; a container runtime "
    "with a cgroup namespace and a writable /sys/fs/cgroup (see the README's cgroup v2 section)"
)


def is_cgroup2(path: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """True if `path` is the mount point of a cgroup2 filesystem."""
    with open(mountinfo) as f:
        for line in f:
            before, _, after = line.partition(" - ")
            if after.split()[:1] == ["cgroup2"] and before.split()[4] == path:
                return True
    return False


def own_cgroup(proc_self_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's path in the unified hierarchy ("0::/path")."""
    with open(proc_self_cgroup) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise JailError("this process has no cgroup v2 membership in /proc/self/cgroup")


def enable_controllers(group: str) -> None:
    """Hand memory, pids and cpu to the children of `group` (cgroup.subtree_control)."""
    enabled = read_file(f"{group}/cgroup.subtree_control").split()
    wanted = " ".join(f"+{c}" for c in NEEDED if c not in enabled)
    if wanted:
        write_file(f"{group}/cgroup.subtree_control", wanted)


def missing_controllers(group: str) -> list[str]:
    """Which of NEEDED `group` was not given by its parent (its cgroup.controllers)."""
    available = read_file(f"{group}/cgroup.controllers").split()
    return [c for c in NEEDED if c not in available]


def is_delegated(group: str) -> bool:
    """systemd marks the group of a unit with Delegate=yes (trusted.delegate, since systemd 251;
    user.delegate for a user's manager): the unit may organise it."""
    for name in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(group, name) == b"1":
                return True
        except OSError:
            pass
    return False


def delegated_group(root: str, parent: str) -> str:
    """The group this service was given: the one this process was started in, or its parent
    when this process already sits in that group's LEAF beside our parent group."""
    own = os.path.normpath(os.path.join(root, own_cgroup().lstrip("/")))
    up = os.path.dirname(own)
    if os.path.basename(own) == LEAF and os.path.isdir(os.path.join(up, parent)):
        return up
    return own


@record
class CgroupV2Run:
    """One run's directory in the unified hierarchy."""

    path: str
    swap: bool = False  # memory.swap.max exists (the host accounts swap): set it to 0
    events_before: dict[str, int] = field(default_factory=dict)
    peak_fd: int = -1  # memory.peak, reset through this fd (per-fd reset, Linux 6.12+)

    def set_limits(self, limits: Limits) -> None:
        write_file(f"{self.path}/memory.max", str(limits.memory))
        if self.swap:
            write_file(f"{self.path}/memory.swap.max", "0")
        write_file(f"{self.path}/pids.max", str(limits.pids))
        write_file(f"{self.path}/cpu.max", f"{max(1000, int(limits.cpus * CFS_PERIOD_US))} {CFS_PERIOD_US}")

    def reset_peak(self) -> None:
        self.events_before = read_keyed(f"{self.path}/memory.events")
        # A write resets memory.peak for reads through the same fd (Linux 6.12+). Before
        # that the file is read-only and the peak includes the container's setup; before
        # 5.19 there is no memory.peak at all (peak_memory then reports 0).
        try:
            fd = os.open(f"{self.path}/memory.peak", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.write(fd, b"reset")
        except OSError:
            os.close(fd)
            return
        self.peak_fd = fd

    def clone_fd(self) -> int:
        return os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def join_fds(self) -> list[int]:
        return []

    def cpu_usage(self) -> float:
        return read_keyed(f"{self.path}/cpu.stat")["usage_usec"] / 1e6

    def peak_memory(self) -> int:
        if self.peak_fd >= 0:
            return int(os.pread(self.peak_fd, 64, 0))
        if not os.path.exists(f"{self.path}/memory.peak"):
            return 0
        return int(read_file(f"{self.path}/memory.peak"))

    def memory_exhausted(self) -> tuple[bool, bool]:
        events = read_keyed(f"{self.path}/memory.events")
        before = self.events_before
        return (events.get("oom_kill", 0) > before.get("oom_kill", 0), events.get("max", 0) > before.get("max", 0))

    def kill(self) -> None:
        write_file(f"{self.path}/cgroup.kill", "1")

    def close(self) -> None:
        if self.peak_fd >= 0:
            os.close(self.peak_fd)
            self.peak_fd = -1

    def remove(self) -> None:
        self.close()
        remove_dir(self.path)


class CgroupV2:
    """The v2 layout: a parent group whose children get memory, pids and cpu."""

    version = 2

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self._swap: bool | None = None  # memory.swap.max exists: a fact of the boot, looked up once

    @classmethod
    def open(cls, root: str, parent: str) -> CgroupV2:
        if not is_cgroup2(root):
            raise JailError(f"{root} is not a cgroup2 mount (hybrid or v1 host)")
        missing = missing_controllers(root)
        if missing:
            names = ", ".join(missing)
            if any(c in v1_mounts() for c in missing):
                raise JailError(f"{root} offers no {names} controller (they are bound to v1 hierarchies)")
            raise JailError(f"{root} offers no {names} controller (not given to this cgroup namespace): {DELEGATE_FIX}")
        if os.path.isabs(parent):  # the operator's choice
            path = os.path.join(root, parent.lstrip("/"))
            cls._prepare(path)
            return cls(path)
        group = delegated_group(root, parent)
        if group == root:
            # The real root, or the root of a cgroup namespace (a container), which looks the
            # same but may not hand out controllers while it holds processes.
            try:
                cls._prepare(os.path.join(root, parent))
                return cls(os.path.join(root, parent))
            except JailError:
                pass
        elif not is_delegated(group) and os.access(f"{root}/cgroup.subtree_control", os.W_OK):
            # A login session or a unit without Delegate=yes: its group is systemd's, not ours.
            path = os.path.join(root, parent)
            cls._prepare(path)
            return cls(path)
        path = cls._delegated(root, group, parent)
        cls._prepare(path)
        return cls(path)

    @staticmethod
    def _prepare(path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
            enable_controllers(os.path.dirname(path))
            enable_controllers(path)
        except OSError as e:
            raise JailError(f"cannot set up {path}: {e.strerror} (is the subtree delegated to us?)") from e

    @staticmethod
    def _delegated(root: str, group: str, parent: str) -> str:
        """Our parent group inside `group`, the one we were given, with its controllers handed
        down to it; the group's processes (ours among them) moved to its LEAF first."""
        missing = missing_controllers(group)
        if missing:
            names = ", ".join(missing)
            where = f"the cgroup this process runs in, {group},"
            raise JailError(f"{where} was given no {names} controller: {DELEGATE_FIX}")
        if os.statvfs(root).f_flag & os.ST_RDONLY:
            raise JailError(
                f"{root} is mounted read-only (container runtimes do that unless privileged): remount it "
                "read-write in the container before starting the worker (deploy/worker-in-container.sh does)"
            )
        if not os.access(f"{group}/cgroup.subtree_control", os.W_OK):
            raise JailError(f"{group}/cgroup.subtree_control is not writable here: {DELEGATE_FIX}")
        path = os.path.join(group, parent)
        leaf = os.path.join(group, LEAF)
        try:
            # The parent group first: whoever finds itself in the leaf then knows the service.
            os.makedirs(path, exist_ok=True)
            os.makedirs(leaf, exist_ok=True)
        except OSError as e:
            raise JailError(f"cannot make {path} and {leaf}: {e.strerror}: {DELEGATE_FIX}") from e
        # Every process of the group moves to the leaf, or enabling controllers fails with
        # EBUSY; a process forked meanwhile by one not yet moved is caught by the next round.
        for _ in range(100):
            for pid in read_file(f"{group}/cgroup.procs").split():
                if pid == "0":  # a process outside our pid namespace: we can never move it
                    raise JailError(f"{group} holds processes outside this pid namespace: they block {path}")
                try:
                    write_file(f"{leaf}/cgroup.procs", pid)
                except JailError as e:
                    if not (isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.ESRCH):
                        raise  # ESRCH: it exited meanwhile
            try:
                enable_controllers(group)
                return path
            except JailError as e:
                if not (isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.EBUSY):
                    raise
            time.sleep(0.001)
        raise JailError(f"{group} gains processes faster than they can be moved to {leaf}: they block {path}")

    def create(self, name: str) -> CgroupV2Run:
        try:
            path = f"{self.parent}/{make_run_group(name, self._make, self._take_down)}"
        except OSError as e:
            raise JailError(f"mkdir({self.parent}/{name}) failed: {e.strerror}") from e
        if self._swap is None:  # absent when the host has no swap accounting
            self._swap = os.path.exists(f"{path}/memory.swap.max")
        return CgroupV2Run(path, swap=self._swap)

    def _make(self, name: str) -> None:
        os.mkdir(f"{self.parent}/{name}")

    def _take_down(self, name: str, wait: float = TAKE_DOWN_WAIT) -> None:
        """Kill the processes of the run group `name`, wait up to `wait` s for them to exit
        (cgroup.kill does not wait), and remove the group."""
        path = f"{self.parent}/{name}"
        take_down(CgroupV2Run(path), f"{path}/cgroup.procs", wait)

    def sweep(self, slot: int) -> None:
        for name in os.listdir(self.parent):
            if left_behind(name, slot):
                self._take_down(name)

    def leftover_slots(self) -> set[int]:
        return leftover_slots(os.listdir(self.parent))

    def describe(self) -> list[str]:
        return [f"cgroup v2, parent group: {self.parent}"]
