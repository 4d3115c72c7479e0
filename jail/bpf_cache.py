"""Compiled seccomp programs kept on disk, so that a new process does not load libseccomp.

Compiling a profile (jail/seccomp.py) costs a fresh process about 10 ms: loading libseccomp
through pyseccomp to name the syscalls, emitting the program. That is most of what
`python -m jail run` would spend on seccomp, every time. So the program is kept in
`<state dir>/seccomp/NAME.bpf` with everything it was compiled from:
- the exact bytes of the profile and of jail/seccomp.py (the compiler's rules), compared
  whole, not by a hash; a process whose loaded jail/seccomp.py is not the one on disk
  (code deployed under a running process) uses what it compiles but does not cache it;
- the identity (inode, size, mtime) of the files that compiled it, libseccomp as mapped
  and pyseccomp, and which pyseccomp that was: a process that would import another one
  (another install sharing the state dir) compiles its own;
- the program's length.
A cached program is used only if all of these hold and the file is ours (owned by this
user, writable by no one else: the init loads the program as it is); anything else (a
missing, cut or foreign file) compiles afresh and replaces it. The directory is root's
alone (0700, like the state dir's other contents). A program whose compiler cannot be
identified is used, not cached.

File layout: one JSON line {"files": [[path, inode, size, mtime_ns], ...], "pyseccomp":
path, "inputs": n, "program": m}, then the n bytes of inputs, then the m bytes of BPF.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import threading
from collections.abc import Callable

from .errors import JailError

COMPILER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp.py")


@functools.cache
def compiled(profile_dir: str, cache_dir: str, name: str) -> bytes:
    """The profile `name` from `profile_dir` as a BPF program (struct sock_filter array):
    from this process's memory, else from `cache_dir`, else compiled (and cached)."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise JailError(f"invalid seccomp profile name {name!r}")
    path = os.path.join(profile_dir, f"{name}.toml")
    try:
        with open(path, "rb") as f:
            profile = f.read()
    except FileNotFoundError:
        raise JailError(f"no seccomp profile {name!r} (looked for {path})") from None
    except OSError as e:
        raise JailError(f"seccomp profile {path}: {e.strerror}") from e
    with open(COMPILER, "rb") as f:
        compiler = f.read()
    inputs = profile + b"\0" + compiler
    cached = os.path.join(cache_dir, f"{name}.bpf")
    bpf = _read(cached, inputs)
    if bpf is None:
        from . import seccomp  # libseccomp: loaded only when a program must be compiled

        bpf = seccomp.compile_profile(path, profile)
        if seccomp.SOURCE == compiler:
            _write(cached, inputs, bpf, seccomp.compiler_files)
    return bpf


def _pyseccomp() -> str | None:
    """The pyseccomp this process imports (or would), without importing it."""
    spec = importlib.util.find_spec("pyseccomp")
    return None if spec is None else spec.origin


def _identity(path: str) -> list[object]:
    st = os.stat(path)
    return [path, st.st_ino, st.st_size, st.st_mtime_ns]


def _read(cached: str, inputs: bytes) -> bytes | None:
    """The cached program if it was compiled from `inputs` by files that are unchanged."""
    try:
        with open(cached, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None
            header = json.loads(f.readline())
            if header["inputs"] != len(inputs) or f.read(len(inputs)) != inputs:
                return None
            bpf = f.read()
        if len(bpf) != header["program"] or header["pyseccomp"] != _pyseccomp():
            return None
        if any(_identity(file[0]) != file for file in header["files"]):
            return None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # missing, unreadable or not ours: compile afresh
    return bpf if bpf and len(bpf) % 8 == 0 else None


def _write(cached: str, inputs: bytes, bpf: bytes, compiler_files: Callable[[], list[str]]) -> None:
    """Keep the program for the next process (atomically: a reader sees all or nothing).
    Not cached (the next process compiles again, slower but correct) when the files that
    compiled it cannot be named or the cache cannot be written."""
    tmp = f"{cached}.{os.getpid()}.{threading.get_native_id()}.tmp"  # one writer per name
    try:
        header = {
            "files": [_identity(p) for p in compiler_files()],
            "pyseccomp": _pyseccomp(),
            "inputs": len(inputs),
            "program": len(bpf),
        }
        os.makedirs(os.path.dirname(cached), mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n" + inputs + bpf)
        os.replace(tmp, cached)
    except (OSError, JailError):
        try:
            os.unlink(tmp)
        except OSError:
            pass
