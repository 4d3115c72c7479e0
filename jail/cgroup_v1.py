"""cgroup v1: one directory per run in each of the memory, pids, cpu and cpuacct hierarchies.

The hierarchies are found in /proc/self/mountinfo (they may be co-mounted, e.g.
cpu,cpuacct). Our parent group sits at the root of each hierarchy, not inside the
cgroup the worker happens to run in (that one may carry its own, smaller limits).
"""

from __future__ import annotations

import os
import signal

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
from .errors import JailError
from .record import record
from .spec import Limits

CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")


def v1_mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, str]:
    """controller name -> mount point of every mounted cgroup v1 hierarchy."""
    found: dict[str, str] = {}
    with open(mountinfo) as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fields = after.split()
            if len(fields) < 3 or fields[0] != "cgroup":
                continue
            mount_point = before.split()[4]
            for option in fields[2].split(","):
                found.setdefault(option, mount_point)
    return found


@record
class CgroupV1Run:
    """One run's directories, one per distinct hierarchy."""

    memory: str
    pids: str
    cpu: str
    cpuacct: str
    memsw: bool = False
    oom_kills_before: int = 0

    def set_limits(self, limits: Limits) -> None:
        write_file(f"{self.memory}/memory.limit_in_bytes", str(limits.memory))
        if self.memsw:  # swap off: memory+swap may not exceed memory alone
            write_file(f"{self.memory}/memory.memsw.limit_in_bytes", str(limits.memory))
        write_file(f"{self.pids}/pids.max", str(limits.pids))
        write_file(f"{self.cpu}/cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CFS_PERIOD_US))))

    def reset_peak(self) -> None:
        write_file(f"{self.memory}/memory.max_usage_in_bytes", "0")
        write_file(f"{self.memory}/memory.failcnt", "0")
        self.oom_kills_before = read_keyed(f"{self.memory}/memory.oom_control").get("oom_kill", 0)

    def _dirs(self) -> list[str]:
        return list(dict.fromkeys([self.memory, self.pids, self.cpu, self.cpuacct]))

    def clone_fd(self) -> int:
        return -1

    def join_fds(self) -> list[int]:
        # Not cgroup.procs with the init's pid: moving another process takes the host-wide
        # threadgroup lock, which waits for an RCU grace period when none is under way
        # (milliseconds, the slowest part of a container). The init moving its own one
        # thread does not (jail/init.c).
        fds: list[int] = []
        try:
            for d in self._dirs():
                fds.append(os.open(f"{d}/tasks", os.O_WRONLY | os.O_CLOEXEC))
        except OSError as e:
            for fd in fds:
                os.close(fd)
            raise JailError(f"opening {d}/tasks failed: {e.strerror}") from e
        return fds

    def cpu_usage(self) -> float:
        return int(read_file(f"{self.cpuacct}/cpuacct.usage")) / 1e9

    def peak_memory(self) -> int:
        return int(read_file(f"{self.memory}/memory.max_usage_in_bytes"))

    def memory_exhausted(self) -> tuple[bool, bool]:
        oom = read_keyed(f"{self.memory}/memory.oom_control").get("oom_kill", 0) > self.oom_kills_before
        return oom, int(read_file(f"{self.memory}/memory.failcnt")) > 0

    def kill(self) -> None:
        # v1 has no cgroup.kill; the pids cap bounds how many we may have to chase.
        for _ in range(100):
            pids = read_file(f"{self.pids}/cgroup.procs").split()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        pass  # v1 holds nothing open

    def remove(self) -> None:
        for d in self._dirs():
            remove_dir(d)


class CgroupV1:
    """The v1 layout: our parent group in each needed hierarchy."""

    version = 1

    def __init__(self, parents: dict[str, str]) -> None:
        self.parents = parents
        self.memsw = os.path.exists(f"{parents['memory']}/memory.memsw.limit_in_bytes")

    @classmethod
    def open(cls, root: str, parent: str) -> CgroupV1:
        mounts = v1_mounts()
        missing = [c for c in CONTROLLERS if c not in mounts]
        if missing:
            raise JailError(f"controllers {', '.join(missing)} are not mounted as v1 hierarchies")
        # Below each hierarchy's root, never the root itself: the swappiness written below
        # would be the host's (the root memory group's is vm.swappiness).
        name = parent.strip("/")
        if not name:
            raise JailError(f"the cgroup parent {parent!r} must name a group below each v1 hierarchy's root")
        parents = {}
        for controller in CONTROLLERS:
            path = os.path.join(mounts[controller], name)
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as e:
                raise JailError(f"cannot create {path}: {e.strerror} (run as root?)") from e
            parents[controller] = path
        # Children of a v1 memory group only count towards it with use_hierarchy=1.
        if read_file(f"{parents['memory']}/memory.use_hierarchy").strip() != "1":
            try:
                write_file(f"{parents['memory']}/memory.use_hierarchy", "1")
            except JailError as e:
                raise JailError(f"{e}; memory.use_hierarchy must be 1") from e
        # A new memory group takes its parent's swappiness: set here, not in every run's group.
        write_file(f"{parents['memory']}/memory.swappiness", "0")
        return cls(parents)

    def create(self, name: str) -> CgroupV1Run:
        # Nothing to write: swappiness comes from the parent (`open`), and a new group's
        # cpu.cfs_period_us is the kernel's default, 100 ms, which CFS_PERIOD_US is.
        try:
            return self._run(make_run_group(name, self._make, self._take_down))
        except OSError as e:
            raise JailError(f"creating cgroup v1 {name} failed: {e}") from e

    def _make(self, name: str) -> None:
        """mkdir `name` in each hierarchy: all of them, or none."""
        made: list[str] = []
        try:
            for path in dict.fromkeys(f"{self.parents[c]}/{name}" for c in CONTROLLERS):
                os.mkdir(path)
                made.append(path)
        except OSError:
            for path in reversed(made):
                remove_dir(path)
            raise

    def _take_down(self, name: str, wait: float = TAKE_DOWN_WAIT) -> None:
        """Kill the processes of the run group `name`, wait up to `wait` s for them to exit,
        and remove the group, in whichever hierarchies it still is."""
        run = self._run(name)
        if os.path.isdir(run.pids):
            take_down(run, f"{run.pids}/cgroup.procs", wait)
        else:  # removed, empty, from the pids hierarchy: its processes were all gone
            run.remove()

    def sweep(self, slot: int) -> None:
        for name in {n for p in set(self.parents.values()) for n in os.listdir(p) if left_behind(n, slot)}:
            self._take_down(name)

    def leftover_slots(self) -> set[int]:
        return leftover_slots(n for p in set(self.parents.values()) for n in os.listdir(p))

    def _run(self, name: str) -> CgroupV1Run:
        p = self.parents
        return CgroupV1Run(
            memory=f"{p['memory']}/{name}",
            pids=f"{p['pids']}/{name}",
            cpu=f"{p['cpu']}/{name}",
            cpuacct=f"{p['cpuacct']}/{name}",
            memsw=self.memsw,
        )

    def describe(self) -> list[str]:
        lines = [f"cgroup v1, parent groups: {', '.join(sorted(set(self.parents.values())))}"]
        lines.append("swap accounting (memsw): " + ("yes" if self.memsw else "no: make sure the host has no swap"))
        return lines
