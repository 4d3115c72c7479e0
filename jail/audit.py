"""Which syscall a seccomp kill was for, from the kernel's audit records.

A SECCOMP_RET_KILL_PROCESS death only tells the parent "SIGSYS". The kernel also
logs an audit record (type=1326) with the syscall number to the kernel log when
kill_process is in /proc/sys/kernel/seccomp/actions_logged (the default). Each run
opens /dev/kmsg positioned at its end before the program starts (AuditCursor), so
only records logged during the run are read, and only those of the run's own host
uid count. Without auditd the kernel rate-limits these records; a dropped one means
the name is unknown (None), never a stale guess.
"""

from __future__ import annotations

import os
import re

from .seccomp import syscall_name

RECORD = re.compile(rb"type=1326 .*? uid=(\d+) .*?sig=31 .*?syscall=(\d+)")


class AuditCursor:
    """A read position in the kernel log, taken when a run starts."""

    def __init__(self) -> None:
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = -1  # no kernel log to read: names stay unknown

    def seccomp_syscall(self, host_uid: int) -> str | None:
        """Name of the syscall in the newest seccomp kill record of host_uid since the cursor."""
        found = None
        while self.fd >= 0:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except OSError:  # EPIPE: records were overwritten while reading; go on
                continue
            if not record:
                break
            m = RECORD.search(record)
            if m and int(m.group(1)) == host_uid:
                found = int(m.group(2))
        return syscall_name(found) if found is not None else None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
