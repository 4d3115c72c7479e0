"""This machine's cgroup layout, read from /proc/self/mountinfo: tests ask here instead of
assuming one.

The development hosts are hybrid (controllers on v1 hierarchies, a controller-less cgroup2
at /sys/fs/cgroup/unified); the VM of tests/vm is pure v2 (every controller on the cgroup2
at /sys/fs/cgroup). `make test` runs the suite on both, so every test marked `needs_v1` or
`needs_v2` runs for real on one of them.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jail.cgroup_v1 import CONTROLLERS, v1_mounts
from jail.cgroup_v2 import NEEDED


def cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the cgroup2 hierarchy is mounted, if it is."""
    with open(mountinfo) as f:
        for line in f:
            before, _, after = line.partition(" - ")
            if after.split()[:1] == ["cgroup2"]:
                return before.split()[4]
    return None


CGROUP2 = cgroup2_mount()
V2_CONTROLLERS = set(Path(f"{CGROUP2}/cgroup.controllers").read_text().split()) if CGROUP2 else set()
HAS_V1 = all(c in v1_mounts() for c in CONTROLLERS)
HAS_V2 = CGROUP2 == "/sys/fs/cgroup" and set(NEEDED) <= V2_CONTROLLERS
BACKEND = 2 if HAS_V2 else 1  # what jail.cgroup.open_backend picks here

needs_v1 = pytest.mark.skipif(not HAS_V1, reason="no cgroup v1 hierarchies: runs on the hybrid host")
needs_v2 = pytest.mark.skipif(
    not HAS_V2, reason="cgroup v2 without memory/pids/cpu here: runs in the VM (make test-v2)"
)
needs_cgroup2 = pytest.mark.skipif(CGROUP2 is None, reason="no cgroup2 mount at all (a pure v1 host)")
needs_bare_cgroup2 = pytest.mark.skipif(
    CGROUP2 is None or set(NEEDED) <= V2_CONTROLLERS,
    reason="no controller-less cgroup2 mount: a hybrid host's /sys/fs/cgroup/unified",
)


def remove_tree(path: str) -> None:
    """Kill what runs in a cgroup and below (cgroup.kill), then rmdir it, deepest first."""
    if not os.path.isdir(path):
        return
    with open(f"{path}/cgroup.kill", "w") as f:
        f.write("1")
    rmdir_tree(path)


def rmdir_tree(path: str) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            rmdir_tree(entry.path)
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as e:  # EBUSY while killed processes are still exiting
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@contextmanager
def v2_group(name: str, controllers: bool = True) -> Iterator[str]:
    """A group `<root>/name-<pid>` whose children get memory, pids and cpu (or nothing), as a
    systemd slice gives a `Delegate=yes` unit; removed with what it holds afterwards."""
    assert CGROUP2 is not None
    top = f"{CGROUP2}/{name}-{os.getpid()}"
    os.mkdir(top)
    try:
        if controllers:
            with open(f"{CGROUP2}/cgroup.subtree_control", "w") as f:
                f.write(" ".join(f"+{c}" for c in NEEDED))
            with open(f"{top}/cgroup.subtree_control", "w") as f:
                f.write(" ".join(f"+{c}" for c in NEEDED))
        yield top
    finally:
        remove_tree(top)


def unit_group(slice_: str, name: str, delegate: bool = True) -> str:
    """A unit's group in `slice_`, as systemd makes it: marked trusted.delegate=1 for a unit with
    Delegate=yes (systemd 251+), unmarked for any other unit or a login session."""
    group = f"{slice_}/{name}"
    os.mkdir(group)
    if delegate:
        os.setxattr(group, "trusted.delegate", b"1")
    return group


def in_cgroup(group: str, argv: list[str]) -> list[str]:
    """argv started inside `group`, as systemd or a container runtime starts a service there."""
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', group, *argv]
