"""Seccomp profiles: TOML under policies/seccomp/ compiled to BPF, loaded last by the init.

Compiling with libseccomp (through pyseccomp) costs milliseconds; loading a ready BPF
program is one seccomp(2) call. So a program is compiled once and kept, in the process
and on disk (jail/bpf_cache.py), and the container's init (jail/init.c) loads it raw.
This module is the one that loads libseccomp: import it only to compile, or to name a
syscall number.
"""

from __future__ import annotations

import errno as errno_codes
import os
import tempfile
import tomllib
from dataclasses import dataclass
from typing import Any

import pyseccomp as sc

from .errors import JailError

with open(__file__, "rb") as _self:
    SOURCE = _self.read()  # this module's code as this process loaded it (jail/bpf_cache.py)

# Syscall numbers above libseccomp's table but below this answer ENOSYS; the rest die.
HIGHEST_SYSCALL = 512


@dataclass(frozen=True)
class Profile:
    """A parsed profile: what is denied, what answers an errno (always, or by argument), what
    is allowed by argument."""

    name: str
    deny: frozenset[str]
    errno: dict[str, int]
    allow_if: tuple[dict[str, Any], ...]
    errno_if: tuple[dict[str, Any], ...]


def parse_profile(path: str, raw: bytes | None = None) -> Profile:
    """Validate one profile (`raw`, the file's bytes, else read from `path`); errors name
    the file and the field."""
    try:
        if raw is None:
            with open(path, "rb") as f:
                raw = f.read()
        data = tomllib.loads(raw.decode())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise JailError(f"seccomp profile {path}: {e}") from e
    arch = sc.Arch.X86_64

    def known(name: str, field: str) -> str:
        if not isinstance(name, str) or sc.resolve_syscall(arch, name) < 0:
            raise JailError(f"seccomp profile {path}: {field}: unknown syscall {name!r}")
        return name

    deny = frozenset(known(n, "deny") for n in data.get("deny", []))
    errnos = {}
    for name, code in data.get("errno", {}).items():
        if not hasattr(errno_codes, str(code)):
            raise JailError(f"seccomp profile {path}: errno.{name}: unknown errno {code!r}")
        errnos[known(name, "errno")] = getattr(errno_codes, code)
    rules: dict[str, list[dict[str, Any]]] = {"allow_if": [], "errno_if": []}
    for table, found in rules.items():
        for i, rule in enumerate(data.get(table, [])):
            where = f"{table}[{i}]"
            known(rule.get("syscall", ""), f"{where}.syscall")
            if not isinstance(rule.get("arg"), int) or not 0 <= rule["arg"] <= 5:
                raise JailError(f"seccomp profile {path}: {where}.arg must be 0..5")
            shapes = ("value", "values", "not_value") if table == "allow_if" else ("value", "values")
            if sum(k in rule for k in shapes) != 1:
                raise JailError(f"seccomp profile {path}: {where} needs exactly one of {', '.join(shapes)}")
            if table == "errno_if":
                if not hasattr(errno_codes, str(rule.get("errno"))):
                    raise JailError(f"seccomp profile {path}: {where}.errno: unknown errno {rule.get('errno')!r}")
                if rule["syscall"] not in {r["syscall"] for r in rules["allow_if"]}:
                    raise JailError(f"seccomp profile {path}: {where}: {rule['syscall']} has no allow_if rule")
            found.append(rule)
    name = str(data.get("name", os.path.basename(path)))
    return Profile(name, deny, errnos, tuple(rules["allow_if"]), tuple(rules["errno_if"]))


def build_filter(profile: Profile) -> sc.SyscallFilter:
    """The libseccomp filter for a profile.

    A call the profile does not allow is not killed by the kernel but handed to the
    sandbox's init through a seccomp user-notification listener (SECCOMP_RET_USER_NOTIF,
    seccomp_unotify(2)); the init ends the run and reports the syscall, so the name is
    known exactly, with or without auditd. Another ABI (i386 int 0x80, x32) is killed.
    """
    arch = sc.Arch.X86_64
    f = sc.SyscallFilter(sc.NOTIFY)
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)  # binary search tree over syscall numbers
    restricted = {r["syscall"] for r in profile.allow_if}
    for rule in profile.allow_if:
        mask = rule.get("mask")
        if "not_value" in rule:
            # "(arg & mask) != value" has no libseccomp operator: allow when any one
            # bit of the mask differs from the value's, one MASKED_EQ rule per bit. A
            # plain NE would compare all 64 bits, and ioctl(fd, 0x1_0000_5412) would
            # pass although the kernel truncates the command to TIOCSTI.
            for bit in range(64):
                if (mask or (1 << 64) - 1) >> bit & 1:
                    f.add_rule(
                        sc.ALLOW,
                        rule["syscall"],
                        sc.Arg(rule["arg"], sc.MASKED_EQ, 1 << bit, ~rule["not_value"] & (1 << bit)),
                    )
            continue
        for value in rule.get("values", [rule.get("value")]):
            cmp = sc.Arg(rule["arg"], sc.MASKED_EQ, mask, value) if mask else sc.Arg(rule["arg"], sc.EQ, value)
            f.add_rule(sc.ALLOW, rule["syscall"], cmp)
    for rule in profile.errno_if:
        for value in rule.get("values", [rule.get("value")]):
            f.add_rule(
                sc.ERRNO(getattr(errno_codes, rule["errno"])), rule["syscall"], sc.Arg(rule["arg"], sc.EQ, value)
            )
    for name, code in profile.errno.items():
        f.add_rule(sc.ERRNO(code), name)
    for nr in range(HIGHEST_SYSCALL):
        try:
            name = sc.resolve_syscall(arch, nr).decode()
        except ValueError:
            f.add_rule(sc.ERRNO(errno_codes.ENOSYS), nr)
            continue
        if name not in profile.deny and name not in restricted and name not in profile.errno:
            f.add_rule(sc.ALLOW, nr)
    return f


def compile_profile(path: str, raw: bytes | None = None) -> bytes:
    """The profile at `path` (`raw`: its bytes, already read) compiled to BPF (struct
    sock_filter array)."""
    flt = build_filter(parse_profile(path, raw))
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        bpf = out.read()
    if not bpf or len(bpf) % 8:
        raise JailError(f"seccomp profile {path} compiled to {len(bpf)} bytes, not whole BPF instructions")
    return bpf


def compiler_files() -> list[str]:
    """The files whose code compiles profiles: libseccomp as this process mapped it, and
    pyseccomp (jail/bpf_cache.py keeps a program only while they are unchanged)."""
    with open("/proc/self/maps") as f:
        libraries = {line.split(maxsplit=5)[5].strip() for line in f if "libseccomp" in line}
    if len(libraries) != 1:
        raise JailError(f"cannot tell which libseccomp this process loaded: {sorted(libraries)}")
    return [libraries.pop(), os.path.abspath(sc.__file__)]


def syscall_name(nr: int) -> str:
    """The x86_64 name of syscall number nr, or its number as text."""
    try:
        name: bytes = sc.resolve_syscall(sc.Arch.X86_64, nr)
    except ValueError:
        return str(nr)
    return name.decode()
