"""Seccomp profiles: TOML under policies/seccomp/ compiled to BPF, loaded last by the init.

libseccomp (through pyseccomp) names the syscalls; the program is emitted here (`emit`),
a binary search over runs of syscall numbers, a quarter of libseccomp's own.
Compiling costs milliseconds; loading a ready program is one seccomp(2) call. So a program
is compiled once and kept, in the process and on disk (jail/bpf_cache.py), and the
container's init (jail/init.c) loads it raw. This module is the one that loads
libseccomp: import it only to compile, or to name a syscall number.
"""

from __future__ import annotations

import errno as errno_codes
import os
import struct
import tomllib

import pyseccomp as sc

from .errors import JailError
from .record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from typing import Any

with open(__file__, "rb") as _self:
    SOURCE = _self.read()  # this module's code as this process loaded it (jail/bpf_cache.py)

# Syscall numbers above libseccomp's table but below this answer ENOSYS; the rest die.
HIGHEST_SYSCALL = 512


@record(frozen=True)
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
        if not _is_errno(code):
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
            if "values" in rule and (not isinstance(rule["values"], list) or not rule["values"]):
                raise JailError(f"seccomp profile {path}: {where}.values must be a non-empty list")
            numbers = [rule[k] for k in ("value", "not_value", "mask") if k in rule] + list(rule.get("values", []))
            if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 64 for n in numbers):
                raise JailError(f"seccomp profile {path}: {where}: values and mask must be integers in 0..2^64-1")
            if rule.get("mask", 1) == 0:
                raise JailError(f"seccomp profile {path}: {where}.mask must not be 0 (it would match every value)")
            if table == "errno_if":
                if "mask" in rule:
                    raise JailError(f"seccomp profile {path}: {where}: errno_if takes no mask")
                if not _is_errno(rule.get("errno")):
                    raise JailError(f"seccomp profile {path}: {where}.errno: unknown errno {rule.get('errno')!r}")
                if rule["syscall"] not in {r["syscall"] for r in rules["allow_if"]}:
                    raise JailError(f"seccomp profile {path}: {where}: {rule['syscall']} has no allow_if rule")
            found.append(rule)
    _refuse_conflicts(path, deny, errnos, rules["allow_if"], rules["errno_if"])
    name = str(data.get("name", os.path.basename(path)))
    return Profile(name, deny, errnos, tuple(rules["allow_if"]), tuple(rules["errno_if"]))


def _refuse_conflicts(
    path: str,
    deny: frozenset[str],
    errnos: dict[str, int],
    allow_if: list[dict[str, Any]],
    errno_if: list[dict[str, Any]],
) -> None:
    """One answer per call, whatever the order of the rules: a syscall is denied, or fails with
    an errno, or is restricted by argument, never two of these; an errno_if rule looks at the
    argument the syscall's allow_if rules look at, and at values none of them allows."""
    restricted = {r["syscall"] for r in allow_if}
    for name in sorted(deny & (errnos.keys() | restricted)):
        raise JailError(f"seccomp profile {path}: {name} is denied and also has errno or allow_if rules")
    for name in sorted(errnos.keys() & restricted):
        raise JailError(f"seccomp profile {path}: {name} has an errno and also allow_if rules")
    fails: dict[tuple[str, int], str] = {}  # (syscall, value) -> its errno
    for i, rule in enumerate(errno_if):
        where = f"errno_if[{i}]"
        allows = [r for r in allow_if if r["syscall"] == rule["syscall"]]
        if any(r["arg"] != rule["arg"] for r in allows):
            raise JailError(
                f"seccomp profile {path}: {where}: {rule['syscall']}'s allow_if rules look at another argument"
            )
        for value in rule.get("values", [rule.get("value")]):
            if fails.setdefault((rule["syscall"], value), rule["errno"]) != rule["errno"]:
                raise JailError(f"seccomp profile {path}: {where}: {value:#x} already fails with another errno")
            if any(_allows(r, value) for r in allows):
                raise JailError(f"seccomp profile {path}: {where}: {value:#x} is also allowed by an allow_if rule")


def _is_errno(name: object) -> bool:
    """Whether `name` names an errno (EPERM, ...): not any attribute of the errno module."""
    return isinstance(name, str) and name.startswith("E") and isinstance(getattr(errno_codes, name, None), int)


def _allows(rule: dict[str, Any], value: int) -> bool:
    """Whether an allow_if rule allows `value` of its argument."""
    mask: int = rule.get("mask", (1 << 64) - 1)
    if "not_value" in rule:
        return (value ^ int(rule["not_value"])) & mask != 0
    return any((value ^ int(v)) & mask == 0 for v in rule.get("values", [rule.get("value")]))


# struct seccomp_data (<linux/seccomp.h>) and the classic BPF it is filtered with (<linux/filter.h>)
ARCH_X86_64 = 0xC000003E  # AUDIT_ARCH_X86_64
X32_SYSCALL_BIT = 0x40000000
NR, ARCH = 0, 4  # offsets of seccomp_data.nr and .arch; args[i] at 16 + 8 * i, low word first
LD_ABS, ALU_AND, JEQ, JGE, JA, RET = 0x20, 0x54, 0x15, 0x35, 0x05, 0x06
RET_KILL_PROCESS, RET_USER_NOTIF, RET_ERRNO, RET_ALLOW = 0x80000000, 0x7FC00000, 0x00050000, 0x7FFF0000
INSTRUCTION = struct.Struct("<HBBI")  # struct sock_filter: code, jt, jf, k
WORD = (1 << 32) - 1
MAX_INSTRUCTIONS = 4096  # BPF_MAXINSNS
GROUP = 128  # equality checks sharing one load: each jumps to the group's return, at most 255 ahead


@record(frozen=True)
class Check:
    """One condition on a syscall argument, as 64 bits: (arg & mask) == value, or with
    `differs`, (arg & mask) != value (value has no bit outside mask)."""

    arg: int
    mask: int
    value: int
    differs: bool = False


@record(frozen=True)
class Restricted:
    """The rules of one syscall restricted by argument: the first check that holds gives its
    answer (allow_if rules first, then errno_if); when none holds, the run ends."""

    rules: tuple[tuple[Check, int], ...]  # (check, seccomp return value)


Answer = int | Restricted  # a seccomp return value, or rules to look at the arguments


def answers(profile: Profile, known: dict[int, str]) -> list[tuple[int, Answer]]:
    """What the filter answers for each syscall number, as (first number, answer) runs
    covering 0 up to the x32 numbers: a denied call goes to the init (USER_NOTIF), an `errno`
    call fails, a restricted one looks at its arguments, any other syscall libseccomp knows
    (`known`, number -> name, below HIGHEST_SYSCALL) is allowed, an unknown one below
    HIGHEST_SYSCALL answers ENOSYS, and the rest go to the init."""
    full = (1 << 64) - 1
    rules: dict[str, list[tuple[Check, int]]] = {}
    for rule in profile.allow_if:
        mask = rule.get("mask", full)
        if "not_value" in rule:
            check = Check(rule["arg"], mask, rule["not_value"] & mask, differs=True)
            rules.setdefault(rule["syscall"], []).append((check, RET_ALLOW))
            continue
        for value in rule.get("values", [rule.get("value")]):  # a value bit outside the mask is ignored
            rules.setdefault(rule["syscall"], []).append((Check(rule["arg"], mask, value & mask), RET_ALLOW))
    for rule in profile.errno_if:
        fails = RET_ERRNO | getattr(errno_codes, rule["errno"])
        for value in rule.get("values", [rule.get("value")]):
            rules[rule["syscall"]].append((Check(rule["arg"], full, value), fails))
    runs: list[tuple[int, Answer]] = []
    for nr in range(HIGHEST_SYSCALL + 1):
        name = known.get(nr)
        answer: Answer
        if nr == HIGHEST_SYSCALL:
            answer = RET_USER_NOTIF
        elif name is None:
            answer = RET_ERRNO | errno_codes.ENOSYS
        elif name in profile.deny:
            answer = RET_USER_NOTIF
        elif name in profile.errno:
            answer = RET_ERRNO | profile.errno[name]
        elif name in rules:
            answer = Restricted(tuple(rules[name]))
        else:
            answer = RET_ALLOW
        if not runs or runs[-1][1] != answer or isinstance(answer, Restricted):
            runs.append((nr, answer))
    return runs


def emit(profile: Profile, known: dict[int, str]) -> bytes:
    """The profile as a classic BPF program for seccomp(2) (struct sock_filter array).

    Another ABI dies: an audit arch other than x86_64 (i386 by int 0x80), or a number
    with the x32 bit (but -1). The syscall number is then found by binary search over the
    runs of equal answers (`answers`): 186 instructions for the default profile where
    libseccomp's own code generation takes 713, which the kernel converts and JIT-compiles
    for every container (a seccomp(2) load: 45 us instead of 119 here).
    tests/jail/test_seccomp_program.py proves the answers are libseccomp's for every number
    and every argument form the rules name.
    """
    code = [
        (LD_ABS, 0, 0, ARCH),
        (JEQ, 1, 0, ARCH_X86_64),
        (RET, 0, 0, RET_KILL_PROCESS),
        (LD_ABS, 0, 0, NR),
        (JGE, 0, 3, X32_SYSCALL_BIT),
        (JEQ, 1, 0, WORD),  # -1, no syscall (what a tracer sets to skip one): as libseccomp, not x32
        (RET, 0, 0, RET_KILL_PROCESS),
        (RET, 0, 0, RET_USER_NOTIF),
        *_search(answers(profile, known)),
    ]
    if len(code) > MAX_INSTRUCTIONS:
        raise JailError(
            f"seccomp profile {profile.name} compiles to {len(code)} instructions, over the kernel's {MAX_INSTRUCTIONS}"
        )
    return b"".join(INSTRUCTION.pack(*insn) for insn in code)


def _search(runs: list[tuple[int, Answer]]) -> list[tuple[int, int, int, int]]:
    """Code that answers for the syscall number in A, known to lie in `runs`."""
    if len(runs) == 1:
        answer = runs[0][1]
        return _restricted(answer) if isinstance(answer, Restricted) else [(RET, 0, 0, answer)]
    middle = len(runs) // 2
    below, above = _search(runs[:middle]), _search(runs[middle:])
    if len(below) > 255:  # a conditional jump reaches 255 instructions ahead at most
        return [(JGE, 0, 1, runs[middle][0]), (JA, 0, 0, len(below)), *below, *above]
    return [(JGE, len(below), 0, runs[middle][0]), *below, *above]


def _restricted(answer: Restricted) -> list[tuple[int, int, int, int]]:
    """The rules' checks in order, each on the 32-bit halves of its argument (a half whose
    mask is all ones needs no AND; one whose mask is zero, no test), its answer when one holds,
    the init's when none does. Equality checks in a row on the same argument, mask, high word
    and answer share their loads: one test of the high word, then one jump per low word."""
    code: list[tuple[int, int, int, int]] = []
    rules = list(answer.rules)
    while rules:
        check, ret = rules.pop(0)
        if check.differs:
            code += _differs(check, ret)
            continue
        lows = [check.value & WORD]
        while (
            rules
            and len(lows) < GROUP
            and not rules[0][0].differs
            and rules[0][1] == ret
            and _same_high(rules[0][0], check)
        ):
            lows.append(rules.pop(0)[0].value & WORD)
        code += _equals(check, lows, ret)
    return [*code, (RET, 0, 0, RET_USER_NOTIF)]


def _same_high(a: Check, b: Check) -> bool:
    return (a.arg, a.mask, a.value >> 32) == (b.arg, b.mask, b.value >> 32)


def _half(offset: int, mask: int) -> list[tuple[int, int, int, int]]:
    """Load a 32-bit half of an argument into A, masked."""
    return [(LD_ABS, 0, 0, offset)] + ([] if mask == WORD else [(ALU_AND, 0, 0, mask)])


def _equals(check: Check, lows: list[int], ret: int) -> list[tuple[int, int, int, int]]:
    """(arg & mask) == one of the values (one high word, these low words): `ret`; else on."""
    low = _half(16 + 8 * check.arg, check.mask & WORD)
    low += [(JEQ, len(lows) - 1 - i, 0 if i < len(lows) - 1 else 1, v) for i, v in enumerate(lows)]
    low += [(RET, 0, 0, ret)]
    high_mask, high = check.mask >> 32, check.value >> 32
    if high_mask == 0:
        return low if high == 0 else []  # the high half always matches, or never
    return [*_half(20 + 8 * check.arg, high_mask), (JEQ, 0, len(low), high), *low]


def _differs(check: Check, ret: int) -> list[tuple[int, int, int, int]]:
    """(arg & mask) != value (either half differs): `ret`; else on."""
    code: list[tuple[int, int, int, int]] = []
    for offset, mask, value in ((16, check.mask & WORD, check.value & WORD), (20, check.mask >> 32, check.value >> 32)):
        if mask:  # a half masked to zero never differs
            code += [*_half(offset + 8 * check.arg, mask), (JEQ, 1, 0, value), (RET, 0, 0, ret)]
    return code


def known_syscalls() -> dict[int, str]:
    """number -> name of every x86_64 syscall libseccomp knows below HIGHEST_SYSCALL."""
    known = {}
    for nr in range(HIGHEST_SYSCALL):
        try:
            known[nr] = sc.resolve_syscall(sc.Arch.X86_64, nr).decode()
        except ValueError:
            continue
    return known


def compile_profile(path: str, raw: bytes | None = None) -> bytes:
    """The profile at `path` (`raw`: its bytes, already read) compiled to BPF (struct
    sock_filter array)."""
    return emit(parse_profile(path, raw), known_syscalls())


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
