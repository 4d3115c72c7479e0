"""The two messages the parent sends a container's init (jail/init.c) on its sync pipe.

The plan, once the id maps are written: "G", then the sandbox uid and gid, whether `lo`
comes up, the highest capability number, the root, the bind mounts and the seccomp BPF
program. The Launch,
once the job is known: argv, env, cwd, rlimits, CPU pin. Each message is a u32 size and
a body of little-endian u32/u64 numbers and u32-prefixed strings, read by init.c.
"""

from __future__ import annotations

import struct

from .record import record
from .rootfs import SANDBOX_GID, SANDBOX_UID, BindPlan


@record
class Launch:
    """What the program's process needs once the job is known."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    rlimits: list[tuple[int, int]]
    cpu: int | None


def encode_plan(root: str, binds: list[BindPlan], loopback: bool, last_cap: int, bpf: bytes) -> bytes:
    """The container's set-up, sent with the "G" that lets the init go on."""
    body = [
        struct.pack("<IIII", SANDBOX_UID, SANDBOX_GID, int(loopback), last_cap),
        _str(root),
        struct.pack("<I", len(binds)),
    ]
    for b in binds:
        body += [_str(b.source), _str(b.target), struct.pack("<Q", b.remount_flags)]
    body += [struct.pack("<I", len(bpf)), bpf]
    return b"G" + _message(body)


def encode_launch(launch: Launch) -> bytes:
    """The job: the init starts the program as soon as it has read this."""
    env = [f"{k}={v}" for k, v in launch.env.items()]
    body = [_strs(launch.argv), _strs(env), _str(launch.cwd), struct.pack("<I", len(launch.rlimits))]
    body += [struct.pack("<IQ", resource, value) for resource, value in launch.rlimits]
    body.append(struct.pack("<i", -1 if launch.cpu is None else launch.cpu))
    return _message(body)


def _message(parts: list[bytes]) -> bytes:
    body = b"".join(parts)
    return struct.pack("<I", len(body)) + body


def _str(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(raw)) + raw


def _strs(items: list[str]) -> bytes:
    return struct.pack("<I", len(items)) + b"".join(_str(s) for s in items)
