"""The seccomp profile (policies/seccomp/default.toml), probed with raw syscalls.

A denied syscall kills the run: status security_violation, signal SIGSYS, and
`syscall` names it. Restricted syscalls are killed only with the arguments the
profile refuses; the allowed forms work, and the forms a harmless program may ask
for (a netlink socket) fail with an errno.
"""

from __future__ import annotations

import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyseccomp as sc
import pytest
from sec_helpers import assert_killed_for, limits

from jail import RunSpec, Status, run
from tests.conftest import TIME_SCALE

PROFILE = Path(__file__).resolve().parents[2] / "policies" / "seccomp" / "default.toml"
DENY = tomllib.loads(PROFILE.read_text())["deny"]


def nr(name: str) -> int:
    n = sc.resolve_syscall(sc.Arch.X86_64, name)
    assert n >= 0, name
    return n


def test_deny_list_is_not_empty():
    assert len(DENY) > 40
    for must in (
        "ptrace",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "bpf",
        "io_uring_setup",
        "keyctl",
        "kexec_load",
        "init_module",
        "perf_event_open",
        "userfaultfd",
        "process_vm_readv",
    ):
        assert must in DENY, must


@pytest.mark.parametrize("name", DENY)
def test_denied_syscall_kills_the_run(run_c, name):
    assert_killed_for(run_c("syscall", str(nr(name))), name)


def test_denied_syscall_kills_dynamic_binary_too(hostile_dynamic):
    spec = RunSpec(argv=["/box/h", "syscall", str(nr("ptrace"))], limits=limits(), files={"/box/h": hostile_dynamic})
    assert_killed_for(run(spec), "ptrace")


NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS)
def test_clone_with_namespace_flag_is_killed(run_c, flag):
    assert_killed_for(run_c("clone", hex(NAMESPACE_FLAGS[flag])), "clone")


def test_plain_fork_via_clone_works(run_c):
    r = run_c("clone", "0")
    assert r.status is Status.OK, r
    assert r.stdout.startswith(b"clone returned ") and b"-1" not in r.stdout


@pytest.mark.parametrize("flags", ["0", hex(0x10000000), hex(0x40000000)])
def test_clone3_answers_enosys(run_c, flags):
    """clone3's flags are out of the filter's sight: it must fail with ENOSYS, namespaces or not."""
    r = run_c("clone3", flags)
    assert r.status is Status.OK, r
    assert r.stdout == b"clone3 returned -1 ENOSYS\n"


@pytest.mark.parametrize("persona", [0x0040000, 0x0400000, 0x0040000 | 0x0400000, 0x0008])
def test_personality_other_than_default_is_killed(run_c, persona):
    # ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, both, PER_BSD
    assert_killed_for(run_c("personality", hex(persona)), "personality")


@pytest.mark.parametrize("persona", ["0", "0xffffffff"])
def test_personality_default_and_query_work(run_c, persona):
    r = run_c("personality", persona)
    assert r.status is Status.OK, r
    assert r.stdout.startswith(b"personality returned ")


@pytest.mark.parametrize(
    "call,mode", [("mknod", 0o020666), ("mknod", 0o060666), ("mknodat", 0o020666), ("mknodat", 0o060666)]
)
def test_mknod_of_device_is_killed(run_c, call, mode):
    assert_killed_for(run_c(call, "/box/dev", f"0{mode:o}"), call)


@pytest.mark.parametrize("call", ["mknod", "mknodat"])
def test_mknod_of_fifo_works(run_c, call):
    r = run_c(call, "/box/fifo", "010644")
    assert r.status is Status.OK, r
    assert r.stdout == f"{call} returned 0 0\n".encode()


@pytest.mark.parametrize(
    "family,kind,proto",
    [
        (0x100000010, 3, 0),  # AF_NETLINK with junk in the high bits: not the errno rule's 16
        (17, 3, 0x0300),  # AF_PACKET, SOCK_RAW, ETH_P_ALL
        (17, 2, 0x0300),  # AF_PACKET, SOCK_DGRAM
        (38, 5, 0),  # AF_ALG
        (40, 1, 0),  # AF_VSOCK
        (0x100000002, 1, 0),  # AF_INET with junk in the high bits the kernel would ignore
    ],
)
def test_socket_family_not_allowed_is_killed(run_c, family, kind, proto):
    assert_killed_for(run_c("socket", str(family), str(kind), str(proto)), "socket")


@pytest.mark.parametrize("kind,proto", [(3, 0), (2, 9), (3, 12)])  # NETLINK_ROUTE, _AUDIT, _NETFILTER
def test_netlink_socket_fails_with_an_errno(run_c, kind, proto):
    """glibc's getaddrinfo opens a netlink socket; the program gets EAFNOSUPPORT, as on a kernel
    without netlink, and goes on (it used to be ended as a security violation)."""
    r = run_c("socket", "16", str(kind), str(proto))
    assert r.status is Status.OK, r
    assert r.stdout == b"socket returned -1 EAFNOSUPPORT\n"


def test_python_resolves_localhost():
    code = "import socket; print(socket.getaddrinfo('localhost', 80)[0][4][0])"
    # Python's start alone may take more than SMALL's 0.5 s of CPU in the (TCG) test VM.
    r = run(RunSpec(argv=["/usr/bin/python3", "-c", code], limits=limits(cpu_time=10, wall_time=30)))
    assert r.status is Status.OK, r
    assert r.stdout in (b"::1\n", b"127.0.0.1\n"), r


@pytest.mark.parametrize("family,proto", [(2, 1), (2, 255), (10, 58)])
def test_raw_inet_socket_is_refused(run_c, family, proto):
    """AF_INET/AF_INET6 pass the filter; SOCK_RAW needs CAP_NET_RAW, which the program lacks."""
    r = run_c("socket", str(family), "3", str(proto))
    assert r.status is Status.OK, r
    assert r.stdout == b"socket returned -1 EPERM\n"


def test_io_uring_setup_is_killed(run_c):
    assert_killed_for(run_c("syscall", str(nr("io_uring_setup")), "8", "0"), "io_uring_setup")


def test_tiocsti_is_killed(run_c):
    assert_killed_for(run_c("ioctl", hex(0x5412)), "ioctl")


def test_tiocsti_with_high_bits_is_killed(run_c):
    assert_killed_for(run_c("ioctl", hex(0x1_0000_5412)), "ioctl")


def test_other_ioctls_work(run_c):
    r = run_c("ioctl", hex(0x5401))  # TCGETS on a memfd: ENOTTY, not a kill
    assert r.status is Status.OK, r
    assert r.stdout == b"ioctl returned -1 ENOTTY\n"


@pytest.mark.parametrize("mode", ["int80", "x32"])
def test_other_abis_are_killed(run_c, mode):
    r = run_c(mode)
    assert r.status is Status.SECURITY_VIOLATION, r
    assert r.signal == "SIGSYS"
    assert b"returned" not in r.stdout


def test_a_burst_of_kills_names_each_exactly(run_c):
    """Many kills at once (16 runs, 8 at a time): each run's `syscall` is its own syscall,
    never None or another's."""
    names = list(DENY)[:16]
    lim = limits(wall_time=limits().wall_time * TIME_SCALE)  # eight at a time on one emulated CPU in the VM
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda name: run_c("syscall", str(nr(name)), lim=lim), names))
    for name, r in zip(names, results, strict=True):
        assert_killed_for(r, name)
