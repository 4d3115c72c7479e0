"""Every raw system call the jail makes that the os module lacks, in one place.

Each binding has its argtypes, a one-line docstring and raises OSError(errno, "name(args)
failed: ...") on failure. Constants name the kernel header they come from. Functions
called in the child between clone and execve must not allocate much or take locks, so
they are thin wrappers over `syscall`/libc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
# clone3 must run with the GIL held: a CDLL call would release it, and the child would
# then inherit a GIL that another thread may own at that instant (a deadlock).
_libc_gil = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# <asm/unistd_64.h> (x86_64)
SYS_pivot_root = 155
SYS_clone3 = 435
SYS_close_range = 436
SYS_pidfd_send_signal = 424

# <linux/sched.h>
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_PIDFD = 0x00001000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_INTO_CGROUP = 0x200000000

# <linux/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_RELATIME = 1 << 21
MNT_DETACH = 0x2

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# <linux/seccomp.h>
SYS_seccomp = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif)

# <linux/capability.h>
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST_CAP_FALLBACK = 40

# <linux/close_range.h>
CLOSE_RANGE_CLOEXEC = 1 << 2


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what} failed: {os.strerror(err)}")
    return result


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_libc.syscall.restype = ctypes.c_long
_libc_gil.syscall.restype = ctypes.c_long


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
        view = view[os.write(fd, view):]


def umount2(target: str, flags: int) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), flags), f"umount2({target!r}, {flags:#x})")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make new_root the root of this mount namespace."""
    _check(
        _libc.syscall(SYS_pivot_root, new_root.encode(), put_old.encode()),
        f"pivot_root({new_root!r}, {put_old!r})",
    )


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def sethostname(name: str) -> None:
    """sethostname(2), in the run's own UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname({name!r})")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option}, {arg2}, ...)")


def close_range_cloexec(first: int) -> None:
    """close_range(first, ~0, CLOSE_RANGE_CLOEXEC): every fd >= first closes at execve."""
    _check(
        _libc.syscall(SYS_close_range, ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF), CLOSE_RANGE_CLOEXEC),
        f"close_range({first}, ~0, CLOEXEC)",
    )


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capset_zero() -> None:
    """capset(2) with empty effective, permitted and inheritable sets."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset(0, 0, 0)")


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompProgram:
    """A compiled BPF program held in memory, ready to load with one prctl."""

    def __init__(self, bpf: bytes) -> None:
        if len(bpf) % 8:
            raise ValueError("BPF program length is not a multiple of 8 bytes")
        self._buffer = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.cast(self._buffer, ctypes.c_void_p))
        self.size = len(bpf) // 8

    def load(self) -> int:
        """seccomp(SET_MODE_FILTER, NEW_LISTENER, prog): the listener fd (close-on-exec).

        Needs no_new_privs first.
        """
        return _check(
            _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                          ctypes.c_void_p(ctypes.addressof(self._prog))),
            "seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER)",
        )


class _SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("instruction_pointer", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class _SeccompNotif(ctypes.Structure):
    # struct seccomp_notif, <linux/seccomp.h>
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", _SeccompData)]


def seccomp_notification(listener: int) -> int:
    """ioctl(SECCOMP_IOCTL_NOTIF_RECV): the syscall number of the next pending notification."""
    notif = _SeccompNotif()  # zeroed, as the kernel requires
    _check(_libc.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, ctypes.byref(notif)), "ioctl(SECCOMP_IOCTL_NOTIF_RECV)")
    return int(notif.data.nr)


class _CloneArgs(ctypes.Structure):
    # struct clone_args, <linux/sched.h>, CLONE_ARGS_SIZE_VER2
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("pidfd", ctypes.c_uint64),
        ("child_tid", ctypes.c_uint64),
        ("parent_tid", ctypes.c_uint64),
        ("exit_signal", ctypes.c_uint64),
        ("stack", ctypes.c_uint64),
        ("stack_size", ctypes.c_uint64),
        ("tls", ctypes.c_uint64),
        ("set_tid", ctypes.c_uint64),
        ("set_tid_size", ctypes.c_uint64),
        ("cgroup", ctypes.c_uint64),
    ]


def clone3(flags: int, cgroup_fd: int = -1) -> tuple[int, int]:
    """clone3(2) like fork, with namespace flags; returns (pid, pidfd), (0, -1) in the child.

    Python's own fork bookkeeping runs around it exactly as for os.fork: without
    PyOS_AfterFork_Child the child would inherit a GIL (and import lock) whose state
    belongs to threads that do not exist in it, and deadlock on its first switch.
    """
    pidfd = ctypes.c_int(-1)
    args = _CloneArgs()
    args.flags = flags | CLONE_PIDFD
    args.pidfd = ctypes.addressof(pidfd)
    args.exit_signal = 17  # SIGCHLD
    if cgroup_fd >= 0:
        args.flags |= CLONE_INTO_CGROUP
        args.cgroup = cgroup_fd
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _libc_gil.syscall(SYS_clone3, ctypes.byref(args), ctypes.sizeof(args))
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
    else:
        ctypes.pythonapi.PyOS_AfterFork_Parent()
    _check(pid, f"clone3(flags={args.flags:#x})")
    return pid, (pidfd.value if pid else -1)


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """pidfd_send_signal(2): signal exactly the process behind the pidfd."""
    _check(_libc.syscall(SYS_pidfd_send_signal, pidfd, sig, None, 0), f"pidfd_send_signal({pidfd}, {sig})")


def wipe_cmdline_and_environ(title: bytes) -> None:
    """Overwrite this process's argv and environ strings (what /proc/PID/cmdline shows).

    Their addresses are fields 48-51 of /proc/self/stat (proc(5)); the memory is our own.
    """
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    # fields[0] is field 3 (state): field n is fields[n - 3].
    arg_start, arg_end, env_start, env_end = (int(x) for x in fields[45:49])
    if arg_end > arg_start:
        ctypes.memset(arg_start, 0, arg_end - arg_start)
        ctypes.memmove(arg_start, title, min(len(title), arg_end - arg_start - 1))
    if env_end > env_start:
        ctypes.memset(env_start, 0, env_end - env_start)


def cap_last_cap() -> int:
    """The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return CAP_LAST_CAP_FALLBACK
