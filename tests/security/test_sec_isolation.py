"""What the program can see and touch: host files, host processes, the host network,
privilege. Every check is made from the host (canaries, listeners, victim processes)
as well as from what the program printed."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sec_helpers import SANDBOX_UIDS, STATE_DIR, limits, our_slots

from jail import JailError, RunResult, RunSpec, Status, run

PROJECT = Path(__file__).resolve().parents[2]


def probe(run_py, *args: str, **spec: object) -> tuple[RunResult, dict]:
    r = run_py("probe.py", *args, lim=limits(cpu_time=2, wall_time=5), **spec)
    assert r.status is Status.OK, r
    return r, json.loads(r.stdout)


@pytest.fixture
def canaries() -> Iterator[dict[str, object]]:
    """Secret files on the host (root-only and world-readable), removed after the test."""
    name = f"cellblock-canary-{secrets.token_hex(8)}"
    token = f"SECRET-{secrets.token_hex(12)}"  # the content; never in any path the program is told
    made: list[Path] = []
    if not Path(STATE_DIR).is_dir():  # run first on a fresh host: the jail makes its state dir at a run
        assert run(RunSpec(argv=["/bin/true"])).status is Status.OK
    dirs = [Path("/root"), Path("/tmp"), Path(STATE_DIR), Path("/var/tmp")]
    if Path("/home").is_dir():
        dirs.append(Path("/home"))
    for d in dirs:
        for mode in (0o600, 0o644):
            p = d / f"{name}-{mode:o}"
            p.write_text(token + "\n")
            os.chmod(p, mode)
            made.append(p)
    before = {p: (p.read_text(), p.stat().st_mtime_ns) for p in made}
    yield {"token": token, "name": name, "paths": made}
    after = {p: (p.read_text(), p.stat().st_mtime_ns) for p in made}
    for p in made:
        p.unlink()
    assert after == before, "a canary file changed during the run"
    for d in dirs:
        extra = [n for n in os.listdir(d) if n.startswith(name) and d / n not in made]
        assert not extra, f"new files next to the canaries: {extra}"


HOST_SECRETS = [
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/ssh",
    "/root",
    "/home",
    "/run/cellblock",
    "/var",
    str(PROJECT),
    str(PROJECT / "jail" / "runner.py"),
    "/proc/kcore",
    "/dev/kmsg",
    "/dev/mem",
    "/sys/kernel",
    "/proc/1/environ",
    "/proc/1/root/etc/shadow",
    "/proc/1/mem",
    "/proc/1/cwd/jail",
    "/proc/1/fd/0",
    "/proc/self/root/root",
]


def test_host_secrets_are_not_readable(run_py, canaries):
    token = canaries["token"]
    paths = [str(p) for p in canaries["paths"]] + HOST_SECRETS
    r, seen = probe(run_py, "read", *paths)
    assert token.encode() not in r.stdout + r.stderr
    leaked = {p: v for p, v in seen.items() if v.startswith("ok:")}
    assert not leaked, f"host paths readable in the sandbox: {leaked}"
    with open("/etc/shadow") as f:
        shadow_root = f.readline().strip()
    assert shadow_root.encode() not in r.stdout


def test_no_file_in_the_sandbox_holds_a_canary(run_py, canaries):
    _r, seen = probe(run_py, "walk", canaries["token"])
    assert seen["hits"] == [], seen
    assert seen["seen"] > 10  # the walk did look around


def test_etc_is_the_staged_copy(run_py):
    _r, seen = probe(run_py, "read", "/etc/passwd", "/etc/group", "/etc/hostname")
    with open("/etc/passwd") as f:
        host_passwd = f.read()
    assert seen["/etc/passwd"].startswith("ok:root:x:0:0:"), seen
    assert seen["/etc/passwd"][3:] != host_passwd[:4096]
    assert "runner:x:1000:1000" in seen["/etc/passwd"]


def test_pid_namespace_holds_only_the_run(run_py):
    """The program is pid 2 under the jail's init (pid 1): no host process is visible."""
    _r, seen = probe(run_py, "whoami")
    assert seen["pids"] == [1, 2], seen
    assert seen["pid"] == 2 and seen["ppid"] == 1
    assert seen["uid"] == [1000, 1000, 1000] and seen["gid"] == [1000, 1000, 1000]
    assert seen["groups"] == []
    assert seen["uid_map"][0] == "1000" and seen["uid_map"][2] == "1"
    assert int(seen["uid_map"][1]) in SANDBOX_UIDS
    assert seen["hostname"] == "cellblock"


def test_init_does_not_reveal_host_paths(run_py):
    import sys

    _r, seen = probe(run_py, "whoami")
    init_argv = " ".join(seen["proc1_cmdline"])
    for host_path in (str(PROJECT), sys.executable, os.path.realpath(sys.executable)):
        assert host_path not in init_argv, init_argv


def test_proc_of_init_is_not_accessible(run_py):
    _r, seen = probe(
        run_py,
        "read",
        "/proc/1/environ",
        "/proc/1/mem",
        "/proc/1/maps",
        "/proc/1/root",
        "/proc/1/cwd",
        "/proc/1/fd",
        "/proc/1/map_files",
        "/proc/1/stack",
        "/proc/1/auxv",
    )
    leaked = {p: v for p, v in seen.items() if v.startswith("ok:")}
    assert not leaked, leaked


def _victim(uid: int | None) -> subprocess.Popen:
    def drop() -> None:
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)

    return subprocess.Popen(["/bin/sleep", "60"], preexec_fn=drop)


def test_kill_minus_one_does_not_reach_the_host(run_c):
    run_c("exit", "0")  # take our slots, to start victims with the very uids the program may run as
    slot_uids = [SANDBOX_UIDS[0] + s for s in our_slots()]
    assert slot_uids
    victims = [_victim(None), _victim(1000), _victim(65534)] + [_victim(u) for u in slot_uids]
    try:
        time.sleep(0.05)
        r = run_c("killall")
        assert r.status is Status.OK, r
        assert r.stdout.endswith(b"done\n")
        for v in victims:
            assert v.poll() is None, f"host process {v.pid} was killed from the sandbox"
    finally:
        for v in victims:
            v.send_signal(signal.SIGKILL)
            v.wait()


def test_setuid_and_friends_fail(run_py):
    _r, seen = probe(run_py, "setuid")
    assert seen.pop("uid") == [1000, 1000, 1000]
    ok = {k: v for k, v in seen.items() if v.startswith("ok:")}
    assert not ok, f"privileged operations succeeded in the sandbox: {ok}"


def test_capabilities_empty_and_no_new_privs(run_py):
    r, seen = probe(run_py, "status")
    child = dict(line.split(":\t", 1) for line in r.stderr.decode().splitlines() if ":\t" in line)
    for fields in (seen["self"], {k: v.strip() for k, v in child.items()}):
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert fields[cap] == "0000000000000000", (cap, fields[cap])
        assert fields["NoNewPrivs"] == "1"
        assert fields["Seccomp"] == "2"
        assert fields["Uid"].split() == ["1000"] * 4


def _host_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_writes_outside_box_and_tmp_fail(run_py):
    watched = [
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/hostname",
        "/proc/sys/vm/overcommit_memory",
        "/proc/sys/kernel/domainname",
    ]
    before = {p: _host_file(p) for p in watched}
    targets = [
        "/usr/x",
        "/usr/bin/python3",
        "/etc/passwd",
        "/etc/x",
        "/bin/x",
        "/lib/x",
        "/x",
        "/dev/x",
        "/sys/x",
        "/sys/kernel/uevent_helper",
        "/proc/sysrq-trigger",
        "/proc/1/oom_score_adj",
        "/proc/self/attr/current",
        *watched,
    ]
    try:
        _r, seen = probe(run_py, "write", *targets, "/box/ok", "/tmp/ok", "/dev/shm/ok")
        assert {p: seen[p] for p in ("/box/ok", "/tmp/ok", "/dev/shm/ok")} == dict.fromkeys(
            ("/box/ok", "/tmp/ok", "/dev/shm/ok"), "ok:written"
        )
        allowed = ("/box/ok", "/tmp/ok", "/dev/shm/ok")
        wrote = {p: v for p, v in seen.items() if v.startswith("ok:") and p not in allowed}
        assert not wrote, f"the sandbox wrote to: {wrote}"
        assert seen["/usr/x"] == "EROFS" and seen["/etc/passwd"] == "EROFS"
    finally:
        after = {p: _host_file(p) for p in watched}
        for p in watched:
            if after[p] != before[p]:
                with open(p, "w") as f:
                    f.write(before[p])
    assert after == before, "the sandbox changed host sysctls"
    assert not os.path.exists("/usr/x")


@pytest.fixture
def listeners() -> Iterator[dict[str, object]]:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.3)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", tcp.getsockname()[1]))
    udp.settimeout(0.3)
    name = f"cellblock-test-{secrets.token_hex(6)}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind("\0" + name)
    unix.listen(8)
    unix.settimeout(0.3)
    yield {"port": tcp.getsockname()[1], "name": name, "tcp": tcp, "udp": udp, "unix": unix}
    for s in (tcp, udp, unix):
        s.close()


def _nothing_arrived(listeners: dict) -> None:
    for key in ("tcp", "unix"):
        with pytest.raises(socket.timeout):
            conn, _ = listeners[key].accept()  # bounded by the 0.3 s timeout
            conn.close()
    with pytest.raises(socket.timeout):
        listeners["udp"].recvfrom(100)


@pytest.mark.parametrize("loopback", [False, True])
def test_host_network_is_unreachable(run_py, listeners, loopback):
    _r, seen = probe(run_py, "net", str(listeners["port"]), listeners["name"], loopback=loopback)
    assert not seen["tcp"].startswith("ok:"), seen
    assert not seen["abstract"].startswith("ok:"), seen
    assert seen["tcp"] in ("ENETUNREACH", "ECONNREFUSED"), seen
    assert seen["abstract"] == "ECONNREFUSED", seen
    _nothing_arrived(listeners)


@pytest.mark.parametrize("loopback", [False, True])
def test_host_network_is_unreachable_from_c(run_c, listeners, loopback):
    r = run_c("tcp", str(listeners["port"]), loopback=loopback)
    assert r.status is Status.OK, r
    assert r.stdout.startswith(b"connect -1 "), r.stdout
    r = run_c("abstract", listeners["name"], loopback=loopback)
    assert r.stdout == b"connect -1 ECONNREFUSED\n", r.stdout
    _nothing_arrived(listeners)


def test_planted_links_are_not_followed_by_collect(run_py, canaries):
    token = canaries["token"]
    root_canary = str(canaries["paths"][0])
    targets = ["/etc/shadow", root_canary, "/root", "/usr/bin/python3", "/etc/passwd", "/run/cellblock"]
    r, seen = probe(
        run_py,
        "links",
        *targets,
        collect=[
            "s0",
            "s1",
            "s2",
            "s2/" + os.path.basename(root_canary),
            "s3",
            "s4",
            "s5",
            "sub",
            "fifo",
            "rootlink",
            "rootlink/etc/shadow",
            "sub/up/sub",
            "h1",
            "h4",
        ],
    )
    for i in range(len(targets)):
        assert seen[f"symlink{i}"] == "ok:None"  # planting is allowed
        assert not seen[f"hardlink{i}"].startswith("ok:"), seen  # linking a host-side file is not
    assert seen["hardlink3"] == "EXDEV" and seen["hardlink4"] == "EXDEV", seen  # /usr and /etc: other mounts
    with open("/etc/shadow", "rb") as f:
        shadow = f.read()
    for name, content in r.files.items():
        assert token.encode() not in content, name
        assert content != shadow and shadow[:40] not in content, name
        with open("/usr/bin/python3", "rb") as f:
            assert content != f.read(), name
    assert r.files == {}, f"collect returned link targets: {sorted(r.files)}"


def test_collect_returns_regular_files(run_py):
    r = run_py(
        "probe.py",
        "write",
        "/box/out.txt",
        "/box/sub/x",
        lim=limits(cpu_time=2, wall_time=5),
        collect=["out.txt", "probe.py"],
    )
    assert r.status is Status.OK, r
    assert r.files["out.txt"] == b"cellblock-was-here\n"
    assert b"def main" in r.files["probe.py"]


def test_program_starts_with_stdio_only(run_py):
    """No fd of the jail (pipes, the builder's socket, cgroup or mount fds) may reach the program."""
    r = run_py("fdleak.py", lim=limits(cpu_time=2, wall_time=5))
    assert r.status is Status.OK, r
    fds = {int(k): v for k, v in json.loads(r.stdout).items()}
    assert sorted(fds) == [0, 1, 2], f"the program inherited jail fds: {fds}"


def test_inherited_socket_cannot_run_code_on_the_host(run_py):
    """The program sends a pickle that opens a host file on every socket it inherited; the next
    runs must not create that file on the host (that would be code execution as host root)."""
    from jail import runner

    canary = Path(f"/tmp/cellblock-escape-{secrets.token_hex(8)}")
    try:
        r = run_py("fdleak.py", str(canary), lim=limits(cpu_time=2, wall_time=5))
        assert r.status is Status.OK, r
        for _ in range(2):  # the jail reads its control socket when it next builds or hands out a container
            try:
                run_py("fdleak.py")
            except JailError:
                pass
        assert not canary.exists(), f"the sandboxed program ran code as host uid {canary.stat().st_uid}: {r.stdout!r}"
    finally:
        if canary.exists():
            canary.unlink()
        if runner._default is not None:  # whatever the program wrote, the next tests get a fresh jail
            runner._default.close()
            runner._default = None
