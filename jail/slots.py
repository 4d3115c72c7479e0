"""Slots: what keeps concurrent runs on one host apart.

A slot is a number; it gives a run its own host uid (uid_base + slot), its own root
mount point and its own cgroup names. Slots are shared by every process on the host
through a lock file each (flock), taken on first use and kept for the life of the
process; within a process a free list hands them to concurrent callers.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterable

from .errors import JailError


class SlotPool:
    """Hands out slot numbers that no other run on this host holds right now."""

    def __init__(self, state_dir: str, count: int, uid_base: int) -> None:
        self.state_dir = os.path.realpath(state_dir)  # as /proc/self/mountinfo names its roots
        self.count = count
        self.uid_base = uid_base
        self._lock = threading.Lock()
        self._free: list[int] = []
        self._lock_fds: dict[int, int] = {}
        os.makedirs(f"{state_dir}/slots", mode=0o700, exist_ok=True)

    def host_uid(self, slot: int) -> int:
        return self.uid_base + slot

    def root(self, slot: int) -> str:
        return f"{self.state_dir}/slots/{slot}/root"

    def acquire(self) -> tuple[int, bool]:
        """A slot for one run, and whether this process just took it over (stale state possible)."""
        with self._lock:
            if self._free:
                return self._free.pop(), False
            for slot in range(self.count):
                if slot in self._lock_fds:
                    continue
                fd = os.open(f"{self.state_dir}/slots/{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._lock_fds[slot] = fd
                os.makedirs(self.root(slot), exist_ok=True)
                return slot, True
        raise JailError(f"all {self.count} jail slots are in use on this host (CELLBLOCK_JAIL_SLOTS)")

    def sweep_unowned(self, clean: Callable[[int], None], slots: Iterable[int]) -> None:
        """Call clean(slot) for each of `slots` that no live process holds, under its lock."""
        with self._lock:
            for slot in sorted(slots):
                if slot in self._lock_fds:
                    continue
                path = f"{self.state_dir}/slots/{slot}.lock"
                if not os.path.exists(path):
                    continue
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    clean(slot)
                except BlockingIOError:
                    pass
                finally:
                    os.close(fd)

    def release(self, slot: int) -> None:
        with self._lock:
            self._free.append(slot)
