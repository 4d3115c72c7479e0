"""The sandbox's file system: a fresh size-capped tmpfs root per run, built from the host side.

The parent (host root) mounts the tmpfs, makes the directories, the five device nodes
and the copy-in files, so the child has nothing to create (files made by an unmapped
uid would fail with EOVERFLOW) and only binds read-only what the program needs, mounts
/proc and pivots. After the run the parent reads `collect` files back without ever
following a link the program may have planted, then unmounts.

Layout inside: /usr (ro bind), /bin /lib /lib64 /sbin (symlinks into /usr, Debian is
merged-usr), /etc (ro bind of a staged copy of a few host files), /proc, /dev (null,
zero, full, random, urandom, shm), /box (work dir) and /tmp, writable by the sandbox
uid, both on the run's tmpfs so `disk` caps what the program writes to them together (the
files copied in come on top: a run's own input never fills its disk).
"""

from __future__ import annotations

import fnmatch
import os
import stat
import zlib

from . import libc
from .errors import JailError
from .record import record
from .spec import Bind

PAGE = os.sysconf("SC_PAGE_SIZE")

SANDBOX_UID = 1000
SANDBOX_GID = 1000
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9)}
USR_LINKS = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")
# Host /etc entries the staged /etc copies (when present). Never shadow, gshadow,
# ssl/private, or anything with credentials.
ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "java-17-openjdk",
    "localtime",
    "timezone",
    "nsswitch.conf",
    "mime.types",
    "protocols",
    "services",
    "ssl/openssl.cnf",
    "ssl/certs",
    "ca-certificates.conf",
    "gai.conf",
    "host.conf",
)
PASSWD = (
    "root:x:0:0:root:/:/usr/sbin/nologin\n"
    "runner:x:1000:1000:runner:/box:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nrunner:x:1000:\nnogroup:x:65534:\n"
HOSTS = "127.0.0.1 localhost cellblock\n::1 localhost ip6-localhost\n"
ETC_FORMAT = 1  # in the staged /etc's name: a new one when how stage_etc copies changes
MAX_DEPTH = 16


def staged_etc(state_dir: str, source: str = "/etc") -> str:
    """The sandbox's /etc for the host's /etc as it is now: a directory under `state_dir`
    named by a fingerprint of what it copies, staged on first use.

    A host whose entries changed since (a package added an alternative such as
    /etc/alternatives/php, ldconfig rewrote ld.so.cache) gets a new one when a jail next
    starts; older ones stay, since a running container may bind them."""
    target = f"{state_dir}/etc-{ETC_FORMAT}-{etc_fingerprint(source)}"
    if not os.path.isdir(target):
        try:
            stage_etc(target, source)
        except OSError as e:  # shutil.Error too: a file went away as a package changed it
            raise JailError(f"staging the sandbox's /etc in {target} failed: {e}") from e
    return target


def etc_fingerprint(source: str) -> str:
    """What changes when what the staged /etc copies changes: each entry's inode, size, mode
    and modification time, and the names in each directory entry (added or removed ones
    change those names whatever the clock's granularity; packages replace a file by
    renaming a new one over it: a new inode, or a new mtime of its directory); then the
    files stage_etc writes itself. A file rewritten in place deeper down goes unseen."""
    parts = [PASSWD, GROUP, HOSTS]
    for entry in ETC_ENTRIES:
        path = os.path.join(source, entry)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            parts.append(f"{entry} -")
            continue
        parts.append(f"{entry} {st.st_ino} {st.st_size} {st.st_mode} {st.st_mtime_ns}")
        if stat.S_ISDIR(st.st_mode):
            parts += sorted(os.listdir(path))
    joined = "\0".join(parts).encode()
    return f"{zlib.crc32(joined):08x}"


def stage_etc(target: str, source: str) -> None:
    """Build the sandbox's /etc under `target` from `source` (atomically: temp dir, then rename)."""
    import shutil  # once per host: not on the path of every process that starts containers

    tmp = f"{target}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for entry in ETC_ENTRIES:
        src = os.path.join(source, entry)
        dst = os.path.join(tmp, entry)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True)
        elif os.path.isfile(src):
            shutil.copy2(src, dst)
    for name, content in (("passwd", PASSWD), ("group", GROUP), ("hosts", HOSTS), ("hostname", "cellblock\n")):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(content)
    try:
        os.rename(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
        if not os.path.isdir(target):
            raise


def locked_flags(path: str) -> int:
    """Mount flags of the mount holding `path` that a user namespace may not clear.

    A read-only remount of a bind inside a user namespace must repeat them or fails
    with EPERM (mount(2), "locked" flags; see mount_namespaces(7)).
    """
    f = os.statvfs(path).f_flag
    flags = 0
    for st_flag, ms_flag in (
        (os.ST_NOSUID, libc.MS_NOSUID),
        (os.ST_NODEV, libc.MS_NODEV),
        (os.ST_NOEXEC, libc.MS_NOEXEC),
        (os.ST_NOATIME, libc.MS_NOATIME),
        (os.ST_NODIRATIME, libc.MS_NODIRATIME),
        (os.ST_RELATIME, libc.MS_RELATIME),
    ):
        if f & st_flag:
            flags |= ms_flag
    return flags


@record(frozen=True)
class BindPlan:
    """One bind mount the child makes, with its read-only remount flags precomputed."""

    source: str
    target: str  # absolute path under the host-side root
    remount_flags: int  # 0 for a writable bind


def plan_binds(root: str, etc_dir: str, extra: list[Bind]) -> list[BindPlan]:
    """The bind mounts of one run, in mount order."""
    ro = libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV
    plans = [
        BindPlan("/usr", f"{root}/usr", ro | locked_flags("/usr")),
        BindPlan(etc_dir, f"{root}/etc", ro | locked_flags(etc_dir)),
    ]
    for b in extra:
        if not os.path.isabs(b.target) or ".." in b.target.split("/") or b.target in ("/", "/proc", "/dev", "/etc"):
            raise JailError(f"bind target {b.target!r} must be an absolute path without '..'")
        if b.target == "/usr" or b.target.startswith(("/usr/", "/proc/", "/dev/", "/box", "/tmp")):
            raise JailError(f"bind target {b.target!r}: cannot bind under /usr, /proc, /dev, /box or /tmp")
        if not os.path.exists(b.source):
            raise JailError(f"bind source {b.source!r} does not exist on this host")
        flags = 0 if b.writable else ro | locked_flags(b.source)
        plans.append(BindPlan(b.source, root + b.target, flags))
    return plans


def mount_root(root: str, disk: int, extra: list[Bind], host_uid: int, etc_dir: str) -> None:
    """Mount and populate the run's tmpfs at `root` (host side, before clone)."""
    libc.mount("tmpfs", root, "tmpfs", libc.MS_NOSUID, f"size={disk},nr_inodes=16384,mode=755")
    for d in ("usr", "etc", "proc", "dev", "box", "tmp"):
        os.mkdir(f"{root}/{d}")
    for name in USR_LINKS:
        if os.path.islink(f"/{name}"):
            os.symlink(f"usr/{name}", f"{root}/{name}")
    for name, (major, minor) in DEVICES.items():
        os.mknod(f"{root}/dev/{name}", 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(f"{root}/dev/{name}", 0o666)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{root}/dev/{name}")
    os.mkdir(f"{root}/dev/shm")
    for d in ("box", "tmp", "dev/shm"):
        os.chown(f"{root}/{d}", host_uid, host_uid)
    os.chmod(f"{root}/tmp", 0o1777)
    os.chmod(f"{root}/dev/shm", 0o1777)
    for b in extra:
        # Under /etc the mount point must exist in the staged /etc (bound read-only
        # before this bind); anywhere else but /usr, on the run's own tmpfs.
        if b.target.startswith("/etc/"):
            make_mount_point(etc_dir + b.target[len("/etc") :], os.path.isdir(b.source))
        else:
            make_mount_point(root + b.target, os.path.isdir(b.source))


def make_mount_point(path: str, directory: bool) -> None:
    """An empty directory or file at `path` to bind onto (kept if already there)."""
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        if directory:
            os.mkdir(path)
        else:
            open(path, "x").close()
    except FileExistsError:
        pass  # another builder made it meanwhile


def sandbox_path(root: str, path: str) -> str:
    """Host path of a copy-in target; only /box and /tmp are writable destinations."""
    norm = os.path.normpath(path if os.path.isabs(path) else os.path.join("/box", path))
    if not (norm.startswith("/box/") or norm.startswith("/tmp/")) or "\0" in norm:
        raise JailError(f"file {path!r} must go under /box or /tmp")
    return root + norm


def footprint(files: dict[str, bytes]) -> int:
    """Bytes of tmpfs that `files` take once copied in: whole pages each."""
    return sum(-(-len(data) // PAGE) * PAGE for data in files.values())


def copy_in(root: str, files: dict[str, bytes], host_uid: int) -> None:
    """Write the run's input files (mode 0755, owned by the sandbox uid)."""
    for path, content in files.items():
        target = sandbox_path(root, path)
        parent = os.path.dirname(target)
        if not os.path.isdir(parent):
            os.makedirs(parent)
            walk = parent
            while walk not in (f"{root}/box", f"{root}/tmp"):
                os.chown(walk, host_uid, host_uid)
                walk = os.path.dirname(walk)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
        try:
            libc.write_all(fd, content)
            os.fchown(fd, host_uid, host_uid)
        finally:
            os.close(fd)


def collect_parts(pattern: str) -> list[str]:
    """The components of a collect pattern, relative to /box: JailError for an empty or
    absolute pattern, a NUL, or a '..' ('.' and empty components are dropped)."""
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if not parts or pattern.startswith("/") or ".." in parts or "\0" in pattern:
        raise JailError(f"collect pattern {pattern!r} must be relative to /box without '..' or NUL")
    return parts


@record
class Collected:
    """What one collect has read so far, against its caps (files left, bytes left)."""

    files: dict[str, bytes]
    files_left: int | None  # None: no cap of its own (the run's tmpfs bounds its inodes)
    bytes_left: int
    truncated: bool = False


def collect(root: str, patterns: list[str], max_files: int | None, max_bytes: int) -> Collected:
    """Read the regular files under the run's /box that `patterns` match, never following a
    symlink the program planted.

    A pattern is a path relative to /box whose components are shell-style globs (`*`, `?`,
    `[...]`, fnmatch rules, case-sensitive; `*` never crosses a `/` and also matches names
    that start with a dot); a component without them is an exact name. A match that is a
    directory is collected whole, recursively (at most MAX_DEPTH levels below /box).

    Every component is opened relative to its parent's fd with O_NOFOLLOW after an lstat of
    it, so neither a file link (box/leak -> /etc/shadow) nor a directory link (box/out -> /etc)
    is followed, however chained; symlinks, FIFOs, sockets and devices are skipped without
    being opened. Files come in pattern order, then name order; a file two patterns match once.

    Bounded: at most `max_files` files and `max_bytes` bytes (a hard link counts every time it
    is found). The first file over a cap (or a directory deeper than MAX_DEPTH) stops the
    collect and sets `truncated`: that is not an error. A bad pattern raises JailError before
    anything is read.
    """
    split = [collect_parts(p) for p in patterns]
    got = Collected({}, max_files, max_bytes)
    box = os.open(f"{root}/box", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for parts in split:
            if got.truncated:
                break
            _walk(box, parts, "", got, 0)
    finally:
        os.close(box)
    return got


_GLOB_MAGIC = frozenset("*?[")


def _walk(dirfd: int, parts: list[str], prefix: str, got: Collected, depth: int) -> None:
    """Collect what `parts` match below the directory `dirfd` (whose path is `prefix`)."""
    head = parts[0]
    if _GLOB_MAGIC.isdisjoint(head):
        names = [head]
    else:
        names = [n for n in _entries(dirfd) if fnmatch.fnmatchcase(n, head)]
    for name in names:
        if got.truncated:
            return
        _visit(dirfd, name, parts[1:], prefix + name, got, depth)


def _visit(dirfd: int, name: str, rest: list[str], rel: str, got: Collected, depth: int) -> None:
    """One matched entry `name` of `dirfd`: a directory is walked into (by `rest`, or whole
    when `rest` is empty), a regular file read when it ends the pattern, anything else skipped."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return  # missing: nothing to collect
    if stat.S_ISDIR(st.st_mode):
        if depth >= MAX_DEPTH:
            got.truncated = True
            return
        fd = _open_same(dirfd, name, st, os.O_DIRECTORY)
        if fd is None:
            return
        try:
            if rest:
                _walk(fd, rest, rel + "/", got, depth + 1)
            else:
                for entry in _entries(fd):
                    if got.truncated:
                        return
                    _visit(fd, entry, [], f"{rel}/{entry}", got, depth + 1)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode) and not rest and rel not in got.files:
        if got.files_left == 0 or st.st_size > got.bytes_left:
            got.truncated = True
            return
        fd = _open_same(dirfd, name, st, 0)
        if fd is None:
            return
        try:
            data = _read_at_most(fd, got.bytes_left + 1)
        finally:
            os.close(fd)
        if len(data) > got.bytes_left:
            got.truncated = True
            return
        got.files[rel] = data
        got.bytes_left -= len(data)
        if got.files_left is not None:
            got.files_left -= 1
    # else: a symlink, FIFO, socket or device (never opened), or a file where the pattern
    # goes on: nothing to collect


def _open_same(dirfd: int, name: str, seen: os.stat_result, flags: int) -> int | None:
    """`name` in `dirfd` opened without following a link, and only if it is still the file that
    was lstat'ed (the program is dead by now; this holds even if it were not)."""
    flags |= os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dirfd)
    except OSError:
        return None  # gone, or (a worker without CAP_DAC_OVERRIDE) a mode the program took away
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)) != (seen.st_dev, seen.st_ino, stat.S_IFMT(seen.st_mode)):
        os.close(fd)
        return None
    return fd


def _entries(dirfd: int) -> list[str]:
    """The names in the directory `dirfd`, sorted; none when it cannot be listed."""
    try:
        return sorted(os.listdir(dirfd))
    except OSError:
        return []


def _read_at_most(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0 and (chunk := os.read(fd, min(n, 1 << 20))):
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def unmount_root(root: str) -> None:
    """Detach the run's tmpfs (host side); frees its pages."""
    try:
        libc.umount2(root, libc.MNT_DETACH)
    except OSError as e:
        if e.errno != 22:  # EINVAL: not mounted
            raise JailError(f"unmounting {root} failed: {e}") from e


def mount_points(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    """Every mount point in this process's mount namespace, from one read (what `os.path.ismount`
    says of each, without two stat calls for each path asked about)."""
    with open(mountinfo, "rb") as f:
        return {_unescape(line.split()[4]) for line in f}


def _unescape(field: bytes) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as \\ooo."""
    if b"\\" in field:
        parts = field.split(b"\\")
        field = parts[0] + b"".join(bytes([int(p[:3], 8)]) + p[3:] for p in parts[1:])
    return os.fsdecode(field)
