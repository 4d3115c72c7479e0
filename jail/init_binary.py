"""The container init (jail/init.c): built once per host with musl-gcc, kept in the state dir.

Built on first use rather than shipped, so the binary always matches its source: it is
named after a checksum (CRC-32) and the length of the source and the compiler's arguments,
and `NAME.key` beside it holds those exact bytes, compared whole before the binary is used;
so a changed init.c, flag or define builds a new one, even one whose checksum collides. No
SHA-256: hashlib loads OpenSSL, about 2.5 ms of every command line. What init.c shares
with the Python side comes from here as -D defines, so it is stated once: the default
PATH (jail.spec) and the numbers of the setup steps it reports (jail.errors.Step). Static
musl, not glibc: glibc's start-up asks the CPU about its caches with dozens of cpuid
instructions, each a trap to the hypervisor on a VM (about 0.5 ms per container).

It is not executed from the state dir, which may sit on a noexec mount (Debian's
initramfs mounts /run noexec): each process that builds containers copies it into a
sealed memfd once and executes that, as runc does with its own binary.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import zlib

from . import libc
from .errors import JailError, Step
from .spec import DEFAULT_PATH

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.c")
COMPILER = "musl-gcc"
FLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")


def compiler_args() -> list[str]:
    """Everything the compiler gets besides the file names: FLAGS and the defines."""
    return [*FLAGS, f"-DDEFAULT_PATH={c_string(DEFAULT_PATH)}", *(f"-DSTEP_{s.name}={s.value}" for s in Step)]


def c_string(text: str) -> str:
    """`text` as a C string literal; every byte but printable ASCII as a 3-digit octal escape."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else f"\\{b:03o}" for b in text.encode()) + '"'


@functools.cache
def path(state_dir: str) -> str:
    """The init binary for the current init.c and compiler arguments, building it if this
    host has none yet."""
    args = compiler_args()
    with open(SOURCE, "rb") as f:
        source = f.read()
    # The JSON list is self-delimiting, so no other (args, source) pair makes the same bytes.
    key = json.dumps(args).encode() + source
    binary = os.path.join(state_dir, f"init-{zlib.crc32(key):08x}-{len(key):x}")
    if not built(binary, key):
        build(binary, key, args, state_dir)
    return binary


def built(binary: str, key: bytes) -> bool:
    """Whether `binary` is there, built from exactly `key` (its `.key` file says so)."""
    try:
        with open(f"{binary}.key", "rb") as f:
            return f.read() == key and os.path.exists(binary)
    except FileNotFoundError:
        return False


def build(binary: str, key: bytes, args: list[str], state_dir: str) -> None:
    """Compile init.c into `binary` and record `key` beside it (once, whoever else builds it
    at the same time)."""
    import shutil  # only to build: not on the path of every process that starts containers
    import subprocess

    compiler = shutil.which(COMPILER)
    if compiler is None:
        raise JailError(f"{COMPILER} not found: the jail builds its container init with it (apt musl-tools)")
    os.makedirs(state_dir, mode=0o711, exist_ok=True)  # the first use on a fresh host makes it (as Host does)
    with open(os.path.join(state_dir, "init.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building the same binary
        if not built(binary, key):
            partial = f"{binary}.{os.getpid()}"
            done = subprocess.run([compiler, *args, "-o", partial, SOURCE], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise JailError(f"building the container init failed: {done.stderr.strip()}")
            os.chmod(partial, 0o755)
            with open(f"{partial}.key", "wb") as f:
                f.write(key)
            # The binary first: until its key follows, a reader sees a mismatch and waits here.
            os.rename(partial, binary)
            os.rename(f"{partial}.key", f"{binary}.key")


@functools.cache
def executable(state_dir: str) -> str:
    """A path to exec the init by (/proc/self/fd/N), valid in this process and in children
    started with posix_spawn, which keeps the fd open up to the execve.

    A sealed memfd holds the binary; the writable fd is closed (execve refuses a file
    open for writing) and a read-only one kept for the life of the process.
    """
    with open(path(state_dir), "rb") as f:
        binary = f.read()
    fd = os.memfd_create("cellblock-init", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        libc.write_all(fd, binary)
        fcntl.fcntl(
            fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        )
        readonly = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)
    return f"/proc/self/fd/{readonly}"
