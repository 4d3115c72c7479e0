"""Helpers shared by the tests/security modules (imported by name: the directory has no package)."""

from __future__ import annotations

import glob
import os

from jail import Limits, MiB, RunResult, Status

SANDBOX_UIDS = range(200_000, 200_064)  # uid_base .. uid_base + slots - 1 (jail/config.py)
STATE_DIR = "/run/cellblock"
PYTHON = "/usr/bin/python3"

# Small limits: every hostile program is stopped in well under a second or two.
SMALL = dict(cpu_time=0.5, wall_time=1.5, memory=64 * MiB, pids=32, output=64 * 1024,
             file_size=4 * MiB, disk=16 * MiB, open_files=64)


def limits(**overrides: object) -> Limits:
    return Limits(**{**SMALL, **overrides})  # type: ignore[arg-type]

# --- host-side leftovers -------------------------------------------------------------

def our_slots() -> list[int]:
    """Slots this test process holds (flock'd: no other process on the host runs in them).

    Other test sessions may run the jail on this host at the same time, in other slots;
    the leftover checks look only at ours, so they are exact and never racy.
    """
    from jail.runner import default_jail

    return sorted(default_jail().slots._lock_fds)


def sandbox_processes(uids: range | list[int] = SANDBOX_UIDS) -> list[str]:
    """'pid uid comm' of every host process with a real/effective/saved/fs uid in `uids`."""
    found = []
    for status in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(status) as f:
                text = f.read()
        except OSError:
            continue  # exited while we looked
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        ids = [int(u) for u in fields.get("Uid", "").split()]
        if any(u in uids for u in ids):
            found.append(f"{status.split('/')[2]} uid={ids} {fields.get('Name', '').strip()}")
    return found


def run_cgroups() -> list[str]:
    """Run cgroups this process made (named run-<pid>-<slot>-<n>, jail/cgroup.py) that still exist."""
    mine = f"run-{os.getpid()}-"
    dirs = glob.glob("/sys/fs/cgroup/*/cellblock/run-*") + glob.glob("/sys/fs/cgroup/cellblock/run-*")
    return sorted(d for d in dirs if os.path.basename(d).startswith(mine))


def slot_mounts(slots: list[int]) -> list[str]:
    roots = {f"{STATE_DIR}/slots/{s}/root" for s in slots}
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if line.split()[4] in roots or
                any(line.split()[4].startswith(r + "/") for r in roots)]


def leftovers() -> list[str]:
    slots = our_slots()
    uids = [SANDBOX_UIDS[0] + s for s in slots]
    return ([f"process {p}" for p in sandbox_processes(uids)] + [f"cgroup {c}" for c in run_cgroups()]
            + [f"mount {m}" for m in slot_mounts(slots)])


def assert_killed_for(result: RunResult, name: str) -> None:
    assert result.status is Status.SECURITY_VIOLATION, result
    assert result.signal == "SIGSYS", result
    assert result.syscall == name, result
    assert b"returned" not in result.stdout, result  # the syscall never ran
