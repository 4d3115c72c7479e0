"""The cgroup interface the jail uses, and the factory that picks v1 or v2 once.

A run gets one fresh cgroup (in every hierarchy on v1, one directory on v2) below a
parent group of our own; no call site outside cgroup_v1.py / cgroup_v2.py knows which
version it talks to.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable

from .config import JailConfig
from .errors import JailError
from .spec import Limits

CFS_PERIOD_US = 100_000  # the kernel's default CFS period, which a new v1 group has (v2 writes it)
TAKE_DOWN_WAIT = 5.0  # seconds a left-behind run group's killed processes get to exit before its rmdir

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from typing import Protocol

    class RunCgroup(Protocol):
        """One run's cgroup: limits set, the child joined, accounting read, then removed."""

        def clone_fd(self) -> int:
            """A new directory fd for clone3(CLONE_INTO_CGROUP) (v2), or -1 (v1)."""
            ...

        def join_fds(self) -> list[int]:
            """New fds of the `tasks` files the container's init writes "0" to once its plan
            comes, moving itself into this cgroup (v1); none on v2."""
            ...

        def set_limits(self, limits: Limits) -> None:
            """Apply memory (swap off), pids and CPU bandwidth caps."""
            ...

        def reset_peak(self) -> None:
            """Start peak memory and limit-hit counting afresh (the run's setup is not the program's)."""
            ...

        def cpu_usage(self) -> float:
            """CPU seconds (user+sys) used by every process and thread that ever ran here."""
            ...

        def peak_memory(self) -> int:
            """Highest memory charge in bytes."""
            ...

        def memory_exhausted(self) -> tuple[bool, bool]:
            """(the OOM killer killed a process here, an allocation ever hit the limit)."""
            ...

        def kill(self) -> None:
            """SIGKILL every process in the cgroup."""
            ...

        def close(self) -> None:
            """Release what this process holds open on the cgroup (it stays)."""
            ...

        def remove(self) -> None:
            """Close, then delete the cgroup; it must be empty."""
            ...

    class CgroupBackend(Protocol):
        """A cgroup hierarchy layout (v1 or v2) that can make run cgroups."""

        version: int

        def create(self, name: str) -> RunCgroup:
            """Make an empty cgroup named `name` under our parent group (limits come later). A
            group of that name already there is the slot's last run's, whose removal failed
            (run_name: a slot's name is the same for each run): make_run_group."""
            ...

        def sweep(self, slot: int) -> None:
            """Kill and remove the run cgroups of `slot` that their makers left behind."""
            ...

        def leftover_slots(self) -> set[int]:
            """The slots that have run cgroups their makers left behind (what `sweep` would remove)."""
            ...

        def describe(self) -> list[str]:
            """Human-readable lines for `doctor`."""
            ...


def write_file(path: str, value: str) -> None:
    """Write a kernel control file (cgroupfs, /proc/PID/uid_map); errors name the file and the value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise JailError(f"writing {value!r} to {path} failed: {e.strerror}") from e


def read_file(path: str) -> str:
    """Read a cgroup control file (plain fd calls: a buffered file object costs five more
    syscalls per read, and the jail reads a dozen of these per run)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as e:
        raise JailError(f"reading {path} failed: {e.strerror}") from e
    return b"".join(chunks).decode()


def read_keyed(path: str) -> dict[str, int]:
    """Parse a flat keyed file ("key value" per line) such as memory.events or cpu.stat."""
    out: dict[str, int] = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def wait_empty(procs: str, timeout: float) -> None:
    """Wait until the cgroup.procs file `procs` lists no process: a killed one stays listed
    until it has exited, and rmdir fails until then. At most `timeout` seconds (a process in
    uninterruptible sleep takes as long as its I/O); the rmdir after says if one is left."""
    deadline = time.monotonic() + timeout
    while read_file(procs).strip() and time.monotonic() < deadline:
        time.sleep(0.001)


def take_down(run: RunCgroup, procs: str, wait: float) -> None:
    """Kill the processes of a run group whose cgroup.procs is `procs`, wait up to `wait` s
    for them to exit, and remove the group. One removed meanwhile (another jail sweeping the
    same dead maker's group) is as good as removed."""
    try:
        run.kill()
        wait_empty(procs, wait)
    except JailError:
        if os.path.exists(procs):
            raise
        return
    run.remove()


def remove_dir(path: str) -> None:
    """rmdir a cgroup directory; a missing one is fine."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise JailError(f"rmdir({path}) failed: {e.strerror}; a process of the run may still be alive") from e


_instances = itertools.count()
_live: set[int] = set()  # the instances of this process's Hosts not closed yet
_stuck: set[str] = set()  # run groups whose take-down failed once: not waited for again
_spares = itertools.count()


def instance() -> int:
    """A number for one Host of this process, live until `retire`d: with the pid, its run
    cgroups' names tell them from those of another Host of this process (another state dir,
    whose slots are numbered too), whose live runs no sweep of ours may take."""
    n = next(_instances)
    _live.add(n)
    return n


def retire(instance: int) -> None:
    """The Host of `instance` is closed: what its runs left is anyone's to sweep."""
    _live.discard(instance)


def run_name(slot: int, instance: int) -> str:
    """The run cgroup name of `slot` for one Host of this process, the same for each of the
    slot's runs. A name made afresh for each run leaves a negative dentry in the host's dcache
    for each hierarchy and run, for good (four a run on v1; nothing frees them but memory
    pressure), and every path lookup on the host slows as they pile up: back to back
    /bin/true runs took 1.69 ms on a fresh dcache and 1.96 ms at two million. The slot's next
    mkdir of the same name reuses the dentry its last rmdir left."""
    return f"run-{os.getpid()}-{slot}-{instance}"


def make_run_group(name: str, make: Callable[[str], None], take_down: Callable[[str, float], None]) -> str:
    """Make the run group `name` with `make` (its mkdirs, all or none) and return the name
    made. A group of that name already there is the slot's last run's, whose removal failed:
    `take_down(name, wait)` kills its processes, waits up to `wait` s for them to exit and
    removes it. If that fails too (a process that outlives SIGKILL, in uninterruptible
    sleep), this run gets a name of its own (`name` + "x" + a number) and the group stays
    for the slot's next sweep; the next runs of the slot try its removal again without
    waiting, so that a stuck group costs one wait, not one a run."""
    try:
        make(name)
        return name
    except FileExistsError:
        pass
    try:
        take_down(name, 0.0 if name in _stuck else TAKE_DOWN_WAIT)
    except JailError:
        _stuck.add(name)
        name = f"{name}x{next(_spares)}"
    else:
        _stuck.discard(name)
    make(name)
    return name


def slot_of(name: str) -> int | None:
    """The slot of a run cgroup name made by run_name, or None for any other name."""
    parts = name.split("-")
    if len(parts) == 4 and parts[0] == "run" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[2])
    return None


def left_behind(name: str, slot: int) -> bool:
    """Whether `name` is a run cgroup of `slot` that its maker left behind: made by a Host of
    this process that is closed, or by a process that no longer runs. A slot number is unique
    only within one state dir, and jails with another CELLBLOCK_JAIL_DIR may share our parent
    group, in this process or another: their live runs are not ours."""
    if slot_of(name) != slot:
        return False
    _, maker, _, made_by = name.split("-")
    if int(maker) == os.getpid():  # by one of our Hosts: left behind if it is closed
        host = made_by.partition("x")[0]
        return not (host.isdigit() and int(host) in _live)
    try:
        with open(f"/proc/{maker}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie: dead, not yet reaped
    except (FileNotFoundError, ProcessLookupError):  # gone (before the open, or before the read)
        return True


def leftover_slots(names: Iterable[str]) -> set[int]:
    """The slots of the run cgroups among `names` that their makers left behind."""
    found = set()
    for name in names:
        slot = slot_of(name)
        if slot is not None and left_behind(name, slot):
            found.add(slot)
    return found


def open_backend(config: JailConfig, root: str = "/sys/fs/cgroup") -> CgroupBackend:
    """Pick the cgroup version this host can give us, once, with our parent group at
    config.cgroup_parent.

    Tries v2 (a unified hierarchy that offers memory, pids and cpu), then v1 (those
    controllers mounted as separate hierarchies); fails with both reasons when neither
    fits (`python -m jail doctor` shows them). config.cgroup_version "1" or "2" forces one.
    """
    from .cgroup_v1 import CgroupV1
    from .cgroup_v2 import CgroupV2

    reasons = []
    for name, backend in (("2", CgroupV2), ("1", CgroupV1)):
        if config.cgroup_version not in ("", name):
            continue
        try:
            return backend.open(root, config.cgroup_parent)
        except JailError as e:
            reasons.append(f"cgroup v{name}: {e}")
    raise JailError("no usable cgroup hierarchy: " + "; ".join(reasons))
