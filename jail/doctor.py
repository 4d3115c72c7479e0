"""`python -m jail doctor`: probe the host once and say in plain words what is missing.

Each check is a named function returning (ok, message, fix). The jail needs all of
them; doctor runs every one and exits non-zero when any fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from . import libc
from .config import JailConfig

Check = Callable[[], tuple[bool, str, str]]


def running_as_root() -> tuple[bool, str, str]:
    ok = os.geteuid() == 0
    return ok, f"running as uid {os.geteuid()}", "run the worker as root (it maps sandboxes to unprivileged uids)"


def user_namespaces() -> tuple[bool, str, str]:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            limit = int(f.read())
    except OSError:
        return False, "no /proc/sys/user/max_user_namespaces", "use a kernel built with CONFIG_USER_NS"
    fix = "sysctl -w user.max_user_namespaces=15000"
    if limit == 0:
        return False, "user namespaces are disabled (user.max_user_namespaces=0)", fix
    pid = os.fork()
    if pid == 0:
        try:
            libc.unshare(
                libc.CLONE_NEWUSER
                | libc.CLONE_NEWNS
                | libc.CLONE_NEWPID
                | libc.CLONE_NEWNET
                | libc.CLONE_NEWIPC
                | libc.CLONE_NEWUTS
                | libc.CLONE_NEWCGROUP
            )
            os._exit(0)
        except OSError:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    ok = os.waitstatus_to_exitcode(status) == 0
    return ok, f"user, mount, pid, net, ipc, uts, cgroup namespaces: {'available' if ok else 'unshare failed'}", fix


def time_namespace() -> tuple[bool, str, str]:
    ok = os.path.exists("/proc/self/ns/time")
    return ok, f"time namespace: {'available' if ok else 'missing'}", "use Linux >= 5.6 with CONFIG_TIME_NS"


def cgroups() -> tuple[bool, str, str]:
    from .cgroup import open_backend
    from .cgroup_v2 import is_cgroup2
    from .errors import JailError

    try:
        backend = open_backend(JailConfig.from_env())
    except JailError as e:
        if is_cgroup2("/sys/fs/cgroup"):  # a pure v2 host: the v2 reason names its own fix
            return False, str(e), ""
        return False, str(e), "mount the memory, pids, cpu and cpuacct controllers (cgroup v1), or boot cgroup v2"
    return True, "; ".join(backend.describe()), ""


def seccomp_filter() -> tuple[bool, str, str]:
    import os

    from .seccomp import compile_profile  # compiled here, not from the cache: is libseccomp there?

    try:
        program = compile_profile(os.path.join(JailConfig.from_env().seccomp_dir, "default.toml"))
    except Exception as e:
        return (
            False,
            f"seccomp profile 'default' does not compile: {e}",
            "install libseccomp2 (apt-get install libseccomp2)",
        )
    with open("/proc/self/status") as f:
        has = any(line.startswith("Seccomp:") for line in f)
    state = "supported" if has else "missing"
    return (
        has,
        f"seccomp filters: {state}; default profile {len(program) // 8} BPF instructions",
        "use a kernel with CONFIG_SECCOMP_FILTER",
    )


def container_init() -> tuple[bool, str, str]:
    from .errors import JailError
    from .init_binary import executable, path

    state_dir = JailConfig.from_env().state_dir
    try:
        os.makedirs(state_dir, mode=0o711, exist_ok=True)
        executable(state_dir)
        return (True, f"container init: {path(state_dir)}, executed from a sealed memfd", "")
    except (JailError, OSError) as e:
        return (False, f"container init cannot be built: {e}", "apt-get install musl-tools")


def tmpfs() -> tuple[bool, str, str]:
    with open("/proc/filesystems") as f:
        names = f.read().split()
    ok = "tmpfs" in names
    return ok, "tmpfs: " + ("available" if ok else "missing"), "use a kernel with CONFIG_TMPFS"


def visible_proc(mountinfo: str = "/proc/self/mountinfo") -> tuple[bool, str, str]:
    """A sandbox mounts its own /proc; the kernel allows that only if this mount namespace holds
    a proc mount with nothing mounted over its files or non-empty directories (mount_too_revealing
    in fs/namespace.c). Container runtimes mask /proc that way (/proc/kcore and others)."""
    mounts = []  # (id, parent id, root inside its filesystem, mount point, type)
    with open(mountinfo) as f:
        for line in f:
            before, _, after = line.partition(" - ")
            fields = before.split()
            mounts.append((fields[0], fields[1], fields[3], fields[4], after.split()[0]))
    # A whole proc (not a bind of one of its directories) with nothing mounted on it; binfmt_misc
    # sits on an empty directory of procfs, made for that: it hides nothing.
    covered = {parent for _, parent, _, _, fstype in mounts if fstype not in ("binfmt_misc", "autofs")}
    visible = [
        point for id_, _, root, point, fstype in mounts if fstype == "proc" and root == "/" and id_ not in covered
    ]
    if visible:
        return True, f"procfs: fully visible at {visible[0]} (a sandbox may mount its own)", ""
    return (
        False,
        "procfs: every proc mount here has files mounted over it (a container runtime's masked /proc): "
        "a sandbox cannot mount its own /proc",
        f"mount -t proc proc {JailConfig.from_env().state_dir}/proc before starting the worker "
        "(deploy/worker-in-container.sh does)",
    )


def swap() -> tuple[bool, str, str]:
    with open("/proc/swaps") as f:
        active = len(f.read().splitlines()) > 1
    return True, "swap: " + ("on (runs get memory.swap.max / memsw = their memory limit)" if active else "off"), ""


CHECKS: list[Check] = [
    running_as_root,
    user_namespaces,
    time_namespace,
    cgroups,
    seccomp_filter,
    container_init,
    visible_proc,
    tmpfs,
    swap,
]


def main() -> int:
    failed = 0
    for check in CHECKS:
        ok, message, fix = check()
        print(f"[{'ok' if ok else 'FAIL'}] {message}")
        if not ok:
            failed += 1
            if fix:
                print(f"       fix: {fix}")
    print("the jail can run here" if not failed else f"{failed} check(s) failed: the jail cannot run here")
    sys.stdout.flush()
    return 1 if failed else 0
