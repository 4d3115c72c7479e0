"""Accounting is exact enough to judge by: CPU time of every thread, peak memory, no leaks."""

from __future__ import annotations

import fcntl
import os
import resource
import threading

from jail import Jail, MiB, RunSpec, Status, run
from jail.config import JailConfig
from jail.slots import SlotPool


def test_cpu_time_of_a_one_second_burn(run_program) -> None:
    r = run_program("burn", "1.0", cpu_time=3, wall_time=10)
    assert r.status is Status.OK
    assert 0.98 <= r.cpu_time <= 1.02


def test_peak_memory_of_a_hundred_mib_touch(run_program) -> None:
    r = run_program("touch", "100", memory=256 * MiB)
    assert r.status is Status.OK
    assert 100 * MiB * 0.95 <= r.peak_memory <= 100 * MiB * 1.05
    assert 100 * MiB <= r.peak_memory <= 105 * MiB


def leftovers(slots: SlotPool, held: set[int]) -> dict[str, list[str]]:
    """What runs in these slots could leave behind on the host: cgroups, mounts, processes.

    Only these slots count: another jail user may run meanwhile.
    """
    cgroups = []
    for root in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct",
                 "/sys/fs/cgroup"):
        parent = os.path.join(root, "cellblock")
        if os.path.isdir(parent):
            cgroups += [f"{parent}/{n}" for n in os.listdir(parent)
                        if any(n.split("-")[2:3] == [str(slot)] for slot in held)]
    roots = {slots.root(slot) for slot in held}
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4] in roots]
    uids = {slots.host_uid(slot) for slot in held}
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if uid in uids:
            procs.append(pid)
    return {"cgroups": cgroups, "mounts": mounts, "processes": procs}


def lockable(slots: SlotPool, slot: int) -> bool:
    """Whether nobody holds the slot's lock (a missing lock file: never used, so free)."""
    try:
        fd = os.open(f"{slots.state_dir}/slots/{slot}.lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_thousand_runs_leave_nothing_and_do_not_grow_the_worker() -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    slots = SlotPool(JailConfig().state_dir, JailConfig().slots, JailConfig().uid_base)
    # Slots another jail user on this host holds now are not ours to judge; every other slot
    # must be free again at the end, whatever our runs left holding its lock.
    used = {slot for slot in range(slots.count) if lockable(slots, slot)}
    jail = Jail()
    # A daemon that outlives its parent: it must die with the run all the same.
    spec = RunSpec(argv=["/bin/sh", "-c", "sleep 60 & echo $! > /box/pid; exec true"])
    for _ in range(50):
        jail.run(spec)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(1000):
        result = jail.run(spec)
        assert result.status is Status.OK
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 8 * 1024  # KiB
    jail.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    # Every slot the builder could use is free again, and nothing of its runs is left.
    assert [slot for slot in sorted(used) if not lockable(slots, slot)] == []
    assert leftovers(slots, used) == {"cgroups": [], "mounts": [], "processes": []}


def test_parallel_runs_share_nothing() -> None:
    results = {}

    def one(i: int) -> None:
        script = f"echo {i} > /box/mine; echo {i} > /tmp/mine; sleep 0.2; cat /box/mine /tmp/mine; ls /box; ls /tmp"
        results[i] = run(RunSpec(argv=["/bin/sh", "-c", script]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2 * (os.cpu_count() or 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in results.items():
        assert r.status is Status.OK, r
        assert r.stdout.decode().split() == [str(i), str(i), "mine", "mine"]
    assert len(results) == len(threads)
