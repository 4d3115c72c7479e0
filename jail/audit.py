"""Which syscall a seccomp kill was for, from the kernel's audit records.

A SECCOMP_RET_KILL_PROCESS death only tells the parent "SIGSYS". The kernel also
logs an audit record (type=1326) with the syscall number to the kernel log when
kill_process is in /proc/sys/kernel/seccomp/actions_logged (the default). We read
the newest such record from /dev/kmsg; when the log is not readable the name is
simply unknown (None), never guessed.
"""

from __future__ import annotations

import os
import re

from .seccomp import syscall_name

RECORD = re.compile(rb"type=1326 .*? uid=(\d+) .*?sig=31 .*?syscall=(\d+)")


def seccomp_syscall(host_uid: int | None = None) -> str | None:
    """Name of the syscall in the newest seccomp kill record (of host_uid, if given)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    found = None
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError:  # EPIPE: a record was overwritten while reading; go on
                continue
            if not record:
                break
            m = RECORD.search(record)
            if m and (host_uid is None or int(m.group(1)) == host_uid):
                found = int(m.group(2))
    finally:
        os.close(fd)
    return syscall_name(found) if found is not None else None
