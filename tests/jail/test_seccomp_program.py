"""The seccomp program jail/seccomp.py emits answers as libseccomp's own code generation would.

The reference is the filter libseccomp builds from the same profile (the jail's compiler
until Dec 2026, kept here); both programs run in a classic BPF interpreter over every
syscall number up to past HIGHEST_SYSCALL, the x32 numbers, other architectures and, for
each syscall restricted by argument, the values its rules name, their neighbours, each
bit of their masks flipped, high words set, and random arguments. tests/security runs the
emitted program in the real kernel.
"""

from __future__ import annotations

import errno
import random
import re
import struct
import tempfile
from pathlib import Path

import pyseccomp as sc
import pytest

from jail import seccomp
from jail.seccomp import Profile

PROFILES = sorted((Path(__file__).resolve().parents[2] / "policies" / "seccomp").glob("*.toml"))
AUDIT_ARCH_I386 = 0x40000003
AUDIT_ARCH_AARCH64 = 0xC00000B7
FULL = (1 << 64) - 1


def libseccomp_program(profile: Profile) -> bytes:
    """The profile as libseccomp compiles it: a NOTIFY default, every known syscall allowed
    but the denied, errno and restricted ones, unknown numbers below HIGHEST_SYSCALL ENOSYS,
    other ABIs killed; a `not_value` rule as one MASKED_EQ rule per bit of its mask."""
    arch = sc.Arch.X86_64
    f = sc.SyscallFilter(sc.NOTIFY)
    f.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    f.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    restricted = {r["syscall"] for r in profile.allow_if}
    for rule in profile.allow_if:
        mask = rule.get("mask")
        if "not_value" in rule:
            for bit in range(64):
                if (mask or FULL) >> bit & 1:
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
            f.add_rule(sc.ERRNO(getattr(errno, rule["errno"])), rule["syscall"], sc.Arg(rule["arg"], sc.EQ, value))
    for name, code in profile.errno.items():
        f.add_rule(sc.ERRNO(code), name)
    for nr in range(seccomp.HIGHEST_SYSCALL):
        try:
            name = sc.resolve_syscall(arch, nr).decode()
        except ValueError:
            f.add_rule(sc.ERRNO(errno.ENOSYS), nr)
            continue
        if name not in profile.deny and name not in restricted and name not in profile.errno:
            f.add_rule(sc.ALLOW, nr)
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...]) -> int:
    """A classic BPF interpreter for what seccomp filters use: the return value for this call."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("<HBBI", program, i) for i in range(0, len(program), 8)]
    a = pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq, jgt, jge, jset #k
            taken = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"instruction {code:#x} at {pc - 1} is not in this interpreter")


def argument_values(profile: Profile, syscall: str, arg: int) -> set[int]:
    """The values worth trying for one argument: each rule value, its neighbours, with the high
    word set, each bit of the rule's mask flipped; plus the extremes."""
    tries = {0, 1, FULL, 1 << 32, 1 << 63}
    for rule in (*profile.allow_if, *profile.errno_if):
        if rule["syscall"] != syscall or rule["arg"] != arg:
            continue
        mask = rule.get("mask", FULL)
        for value in rule.get("values", [rule.get("value", rule.get("not_value"))]):
            tries |= {value, value ^ (1 << 32), (value + 1) & FULL, (value - 1) & FULL, value | (FULL ^ mask)}
            tries |= {value ^ (1 << bit) for bit in range(64) if mask >> bit & 1}
    return tries


# Rule shapes the shipped profiles do not use: masks and values with high words, a value
# with bits outside its mask, a 64-bit `not_value`, rules on two arguments of one call,
# several errno_if values, neighbouring denied numbers.
EDGES = """
deny = ["read", "write", "open", "uname", "io_uring_setup", "io_uring_enter", "futex_waitv"]
errno = { getpid = "EPERM", clone3 = "ENOSYS" }
[[allow_if]]
syscall = "mmap"
arg = 2
mask = 0xFFFFFFFF00000004
values = [0, 0x100000000, 0xFFFFFFFF00000004]
[[allow_if]]
syscall = "mmap"
arg = 3
value = 0x22
[[allow_if]]
syscall = "prctl"
arg = 0
mask = 0xFFFFFFFFFFFFFFFF
not_value = 0x100000016
[[allow_if]]
syscall = "socket"
arg = 0
values = [1, 2, 0x80001]
[[errno_if]]
syscall = "socket"
arg = 0
values = [16, 17, 0x100000010]
errno = "EAFNOSUPPORT"
[[allow_if]]
syscall = "fcntl"
arg = 1
mask = 0xF
value = 0x10
"""


# More equality checks on one argument than a conditional jump can skip (255): in groups.
def values_rule(n: int) -> str:
    """An allow_if rule with n values, all on one argument."""
    values = ", ".join(str(3 * i) for i in range(n))
    return f'[[allow_if]]\nsyscall = "ioctl"\narg = 1\nvalues = [{values}]\n'


MANY = values_rule(300)


@pytest.fixture(params=[*PROFILES, "edges", "many"], ids=[*(p.stem for p in PROFILES), "edges", "many"])
def profile_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if isinstance(request.param, Path):
        return request.param
    path = tmp_path / f"{request.param}.toml"
    path.write_text({"edges": EDGES, "many": MANY}[request.param])
    return path


def test_the_emitted_program_answers_as_libseccomps_for_every_call(profile_path: Path) -> None:
    path = profile_path
    profile = seccomp.parse_profile(str(path))
    ours = seccomp.compile_profile(str(path))
    theirs = libseccomp_program(profile)
    if path in PROFILES:
        assert len(ours) * 3 < len(theirs)  # the point of emitting our own (184 instructions against 713)
    numbers = [*range(seccomp.HIGHEST_SYSCALL + 16), 1000, 0x3FFFFFFF, 0x40000000, 0x40000001, 0x7FFFFFFF, -1]
    for arch in (seccomp.ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64, 0):
        for nr in numbers:
            call = (nr, arch, (0,) * 6)
            assert run_bpf(ours, *call) == run_bpf(theirs, *call), f"syscall {nr} on arch {arch:#x}"
    rng = random.Random(17)
    restricted = {rule["syscall"] for rule in (*profile.allow_if, *profile.errno_if)}
    for name in sorted(restricted):
        nr = sc.resolve_syscall(sc.Arch.X86_64, name)
        for arg in sorted({rule["arg"] for rule in (*profile.allow_if, *profile.errno_if) if rule["syscall"] == name}):
            for value in sorted(argument_values(profile, name, arg)) + [rng.getrandbits(64) for _ in range(64)]:
                args = [rng.getrandbits(64) for _ in range(6)]
                args[arg] = value
                call = (nr, seccomp.ARCH_X86_64, tuple(args))
                assert run_bpf(ours, *call) == run_bpf(theirs, *call), f"{name} with arg {arg} = {value:#x}"


def test_answers_cover_each_number_once_in_order() -> None:
    profile = seccomp.parse_profile(str(PROFILES[0]))
    runs = seccomp.answers(profile, seccomp.known_syscalls())
    starts = [start for start, _ in runs]
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert runs[-1] == (seccomp.HIGHEST_SYSCALL, seccomp.RET_USER_NOTIF)


ALLOW_SOCKET = '[[allow_if]]\nsyscall = "socket"\narg = 0\nvalues = [1, 2]\n'


@pytest.mark.parametrize(
    "text, why",
    [
        ('[[allow_if]]\nsyscall = "socket"\narg = 0\nvalue = -1\n', "allow_if[0]: values and mask must be integers"),
        (
            '[[allow_if]]\nsyscall = "socket"\narg = 0\nvalues = [1, 18446744073709551616]\n',
            "allow_if[0]: values and mask must be integers",
        ),
        ('[[allow_if]]\nsyscall = "ioctl"\narg = 1\nmask = true\nnot_value = 1\n', "allow_if[0]: values and mask"),
        ('[[allow_if]]\nsyscall = "socket"\narg = 0\nvalues = []\n', "allow_if[0].values must be a non-empty list"),
        ('[[allow_if]]\nsyscall = "socket"\narg = 0\nmask = 0\nvalue = 5\n', "allow_if[0].mask must not be 0"),
        (
            ALLOW_SOCKET + '[[errno_if]]\nsyscall = "socket"\narg = 0\nmask = 1\nvalue = 16\nerrno = "EPERM"\n',
            "errno_if[0]: errno_if takes no mask",
        ),
        ('deny = ["socket"]\n' + ALLOW_SOCKET, "socket is denied and also has errno or allow_if rules"),
        ('deny = ["uname"]\nerrno = { uname = "EPERM" }\n', "uname is denied and also has errno"),
        ('errno = { socket = "EPERM" }\n' + ALLOW_SOCKET, "socket has an errno and also allow_if rules"),
        (
            ALLOW_SOCKET + '[[errno_if]]\nsyscall = "socket"\narg = 1\nvalue = 16\nerrno = "EPERM"\n',
            "errno_if[0]: socket's allow_if rules look at another argument",
        ),
        (
            ALLOW_SOCKET + '[[errno_if]]\nsyscall = "socket"\narg = 0\nvalues = [16, 2]\nerrno = "EPERM"\n',
            "errno_if[0]: 0x2 is also allowed by an allow_if rule",
        ),
        (
            ALLOW_SOCKET
            + '[[errno_if]]\nsyscall = "socket"\narg = 0\nvalue = 16\nerrno = "EPERM"\n'
            + '[[errno_if]]\nsyscall = "socket"\narg = 0\nvalue = 16\nerrno = "EACCES"\n',
            "errno_if[1]: 0x10 already fails with another errno",
        ),
        ('errno = { uname = "errorcode" }\n', "errno.uname: unknown errno 'errorcode'"),
    ],
)
def test_a_profile_with_no_single_answer_is_refused_naming_the_rule(tmp_path: Path, text: str, why: str) -> None:
    """Values beyond 64 bits, an empty `values`, a zero mask, and rules that would give one call
    two answers (which one wins would depend on the compiler): refused, the field named."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(seccomp.JailError, match=re.escape(why)):
        seccomp.parse_profile(str(path))


def test_a_program_over_the_kernels_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.toml"
    path.write_text(values_rule(5000))
    with pytest.raises(seccomp.JailError, match="over the kernel's 4096"):
        seccomp.compile_profile(str(path))
