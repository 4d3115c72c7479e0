"""Helpers shared by the tests/security modules (imported by name: the directory has no package)."""

from __future__ import annotations

import glob
import os

from jail import Limits, MiB, RunResult, Status

SANDBOX_UIDS = range(200_000, 200_064)  # uid_base .. uid_base + slots - 1 (jail/config.py)
STATE_DIR = "/run/cellblock"
PYTHON = "/usr/bin/python3"

# Small limits: every hostile program is stopped in well under a second or two.
SMALL = dict(
    cpu_time=0.5,
    wall_time=1.5,
    memory=64 * MiB,
    pids=32,
    output=64 * 1024,
    file_size=4 * MiB,
    disk=16 * MiB,
    open_files=64,
)


def limits(**overrides: object) -> Limits:
    return Limits(**{**SMALL, **overrides})  # type: ignore[arg-type]


# --- host-side leftovers -------------------------------------------------------------


def our_pids() -> set[int]:
    """This process and its descendants (the jail's builder process among them)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    mine, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        mine.add(pid)
        todo.extend(children.get(pid, []))
    return mine


def our_slots() -> list[int]:
    """Slots whose lock file one of our processes holds (flock, /proc/locks).

    Other sessions may run the jail on this host at the same time, in other slots; the
    leftover checks look only at ours, so they are exact and never racy.
    """
    pids = our_pids()
    held = set()
    with open("/proc/locks") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 5 and parts[1] == "FLOCK" and int(parts[4]) in pids:
                held.add(parts[5])
    slots = []
    for lock in glob.glob(f"{STATE_DIR}/slots/*.lock"):
        st = os.stat(lock)
        if f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}" in held:
            slots.append(int(os.path.basename(lock).split(".")[0]))
    return sorted(slots)


def warm() -> int:
    from jail.config import JailConfig

    return JailConfig.from_env().warm


def sandbox_processes(uids: range | list[int] = SANDBOX_UIDS, idle_parents: set[int] | None = None) -> list[str]:
    """'pid uid comm' of every host process with a real/effective/saved/fs uid in `uids`.

    With `idle_parents`, the pid-1 processes (init of their own pid namespace) whose parent
    is one of those pids are left out: they are containers built ahead of demand, whose
    init already runs as the slot's uid (jail/init.c), not something a run left behind.
    """
    found = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                text = f.read()
        except OSError:
            continue  # exited while we looked
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        ids = [int(u) for u in fields.get("Uid", "").split()]
        if not any(u in uids for u in ids):
            continue
        idle = (
            idle_parents is not None
            and fields.get("NSpid", "").split()[-1:] == ["1"]
            and int(fields.get("PPid", "0")) in idle_parents
        )
        if not idle:
            found.append(
                f"{status.split('/')[2]} uid={ids} {fields.get('Name', '').strip()} "
                f"NSpid={fields.get('NSpid', '').split()}"
            )
    return found


def run_cgroups(pids: set[int]) -> list[str]:
    """Run cgroups (named run-<pid>-<slot>-<n>, jail/cgroup.py) made by one of `pids`."""
    dirs = glob.glob("/sys/fs/cgroup/*/cellblock/run-*") + glob.glob("/sys/fs/cgroup/cellblock/run-*")
    return sorted(d for d in dirs if int(os.path.basename(d).split("-")[1]) in pids)


def cgroup_names(dirs: list[str]) -> set[str]:
    return {os.path.basename(d) for d in dirs}


def slot_mounts(slots: list[int]) -> list[str]:
    roots = {f"{STATE_DIR}/slots/{s}/root" for s in slots}
    with open("/proc/self/mountinfo") as f:
        return [
            line.strip()
            for line in f
            if line.split()[4] in roots or any(line.split()[4].startswith(r + "/") for r in roots)
        ]


def leftovers(idle: int = 0) -> list[str]:
    """What our runs left on the host. `idle` containers built ahead of demand may exist
    (CELLBLOCK_JAIL_WARM): their root mounts and cgroups, but no process of a sandbox uid."""
    pids = our_pids()
    slots = our_slots()
    uids = [SANDBOX_UIDS[0] + s for s in slots]
    found = [f"process {p}" for p in sandbox_processes(uids, idle_parents=pids)]
    idle_inits = len(sandbox_processes(uids)) - len(found)
    if idle_inits > idle:
        found.append(f"{idle_inits} idle container inits, more than the {idle} built ahead")
    names = cgroup_names(run_cgroups(pids))
    if len(names) > idle:
        found += [f"cgroup {n} (more than the {idle} built ahead)" for n in sorted(names)]
    mounts = slot_mounts(slots)
    if len(mounts) > idle:
        found += [f"mount {m} (more than the {idle} built ahead)" for m in mounts]
    return found


def assert_killed_for(result: RunResult, name: str) -> None:
    """The run is a seccomp kill named `name`. The sandbox's init receives each denied call as a
    seccomp user notification and reports its number, so the name is exact for every kill,
    however many happen at once."""
    assert result.status is Status.SECURITY_VIOLATION, result
    assert result.signal == "SIGSYS", result
    assert result.syscall == name, result
    assert b"returned" not in result.stdout, result  # the syscall never ran
