"""Every raw system call the jail makes that the os module lacks, in one place.

Each binding has its argtypes, a one-line docstring and raises OSError(errno, "name(args)
failed: ...") on failure. Constants name the kernel header they come from. What runs
inside a container before its program is C (jail/init.c), not these.
"""

from __future__ import annotations

import ctypes
import functools
import os

# The C library this process already runs on, by the process's own symbols: no search for
# it (ctypes.util.find_library runs `ldconfig -p`, milliseconds of every command line).
_libc = ctypes.CDLL(None, use_errno=True)

# <asm/unistd_64.h> (x86_64)
SYS_pidfd_send_signal = 424

# <linux/sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <linux/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_RELATIME = 1 << 21
MNT_DETACH = 0x2

# <linux/capability.h>
CAP_LAST_CAP_FALLBACK = 40


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed: {os.strerror(err)}")
    return result


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2)."""
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount({source!r}, {target!r}, {fstype!r}, {flags:#x}, {data!r})",
    )


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a pipe or file may take less per call)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def umount2(target: str, flags: int) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), flags), f"umount2({target!r}, {flags:#x})")


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2): signal exactly the process behind the pidfd."""
    _check(_libc.syscall(SYS_pidfd_send_signal, pidfd, sig, None, 0), f"pidfd_send_signal({pidfd}, {sig})")


@functools.cache
def cap_last_cap() -> int:
    """The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return CAP_LAST_CAP_FALLBACK
