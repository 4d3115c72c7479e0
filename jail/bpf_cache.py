"""Compiled seccomp programs kept on disk, so that a new process does not load libseccomp.

Compiling a profile (jail/seccomp.py) costs a fresh process about 10 ms: loading libseccomp
through pyseccomp, adding ~500 rules, exporting the program. That is most of what
`python -m jail run` would spend on seccomp, every time. So the program is kept in
`<state dir>/seccomp/NAME.bpf` with everything it was compiled from:
- the exact bytes of the profile and of jail/seccomp.py (the compiler's rules), compared
  whole, not by a hash;
- the identity (inode, size, mtime) of the files that compiled it: libseccomp as this
  process mapped it, and pyseccomp.
A cached program is used only if all of these are unchanged; anything else (a missing,
partial or foreign file) compiles afresh and replaces it. The directory is root's alone
(0700, like the state dir's other contents).

File layout: one JSON line {"files": [[path, inode, size, mtime_ns], ...], "inputs": n},
then the n bytes of inputs, then the BPF program.
"""

from __future__ import annotations

import functools
import json
import os

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
            inputs = f.read()
    except FileNotFoundError:
        raise JailError(f"no seccomp profile {name!r} (looked for {path})") from None
    except OSError as e:
        raise JailError(f"seccomp profile {path}: {e.strerror}") from e
    with open(COMPILER, "rb") as f:
        inputs += b"\0" + f.read()
    cached = os.path.join(cache_dir, f"{name}.bpf")
    bpf = _read(cached, inputs)
    if bpf is None:
        from . import seccomp  # libseccomp: loaded only when a program must be compiled

        bpf = seccomp.compile_profile(path)
        _write(cached, inputs, bpf, seccomp.compiler_files())
    return bpf


def _identity(path: str) -> list[object]:
    st = os.stat(path)
    return [path, st.st_ino, st.st_size, st.st_mtime_ns]


def _read(cached: str, inputs: bytes) -> bytes | None:
    """The cached program if it was compiled from `inputs` by files that are unchanged."""
    try:
        with open(cached, "rb") as f:
            header = json.loads(f.readline())
            if header["inputs"] != len(inputs) or f.read(len(inputs)) != inputs:
                return None
            bpf = f.read()
        if any(_identity(file[0]) != file for file in header["files"]):
            return None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # missing, unreadable or not ours: compile afresh
    return bpf if bpf and len(bpf) % 8 == 0 else None


def _write(cached: str, inputs: bytes, bpf: bytes, files: list[str]) -> None:
    """Keep the program for the next process (atomically: a reader sees all or nothing)."""
    header = json.dumps({"files": [_identity(p) for p in files], "inputs": len(inputs)}).encode()
    os.makedirs(os.path.dirname(cached), mode=0o700, exist_ok=True)
    tmp = f"{cached}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(header + b"\n" + inputs + bpf)
        os.replace(tmp, cached)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        # Not cached: the next process compiles again, slower but correct.
