"""jail.run end to end: statuses, stdin/stdout, files in and out, isolation basics."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from jail import Bind, ChildSetupError, CommandNotFound, JailError, Limits, RunSpec, Status, init_binary, run
from jail.errors import Step


def test_hello_world() -> None:
    r = run(RunSpec(argv=["/bin/echo", "hello"]))
    assert r.status is Status.OK
    assert r.exit_code == 0
    assert r.stdout == b"hello\n"
    assert r.stderr == b""
    assert 0 < r.wall_time < 5
    assert r.peak_memory > 0


def test_exit_code_is_reported() -> None:
    r = run(RunSpec(argv=["/bin/sh", "-c", "echo oops >&2; exit 3"]))
    assert r.status is Status.NONZERO_EXIT
    assert r.exit_code == 3
    assert r.stderr == b"oops\n"


def test_signal_is_reported() -> None:
    # The program is not pid 1, so a signal it sends itself works as anywhere else.
    r = run(RunSpec(argv=["/bin/sh", "-c", "kill -ABRT $$"]))
    assert r.status is Status.SIGNALED
    assert r.signal == "SIGABRT"
    assert r.exit_code is None


def test_stdin_bytes_are_read_to_eof() -> None:
    data = bytes(range(256)) * 1000
    r = run(RunSpec(argv=["/bin/cat"], stdin=data))
    assert r.status is Status.OK
    assert r.stdout == data


def test_stdin_from_host_file(tmp_path) -> None:
    f = tmp_path / "in.txt"
    f.write_bytes(b"1 2 3\n")
    r = run(RunSpec(argv=["/bin/cat"], stdin=str(f)))
    assert r.stdout == b"1 2 3\n"


def test_files_in_and_collected_out() -> None:
    r = run(
        RunSpec(
            argv=["/bin/sh", "-c", "mkdir out && cp in.txt out/a && echo made > out/b && cat /tmp/t"],
            files={"/box/in.txt": b"payload", "/tmp/t": b"tmpfile"},
            collect=["out", "missing"],
        )
    )
    assert r.status is Status.OK, r
    assert r.stdout == b"tmpfile"
    assert r.files == {"out/a": b"payload", "out/b": b"made\n"}


def test_copy_in_outside_box_and_tmp_is_refused() -> None:
    with pytest.raises(JailError):
        run(RunSpec(argv=["/bin/true"], files={"/etc/passwd": b"x"}))
    with pytest.raises(JailError):
        run(RunSpec(argv=["/bin/true"], files={"/box/../etc/x": b"x"}))


def test_missing_command_is_a_sandbox_error_not_a_verdict() -> None:
    with pytest.raises(CommandNotFound):
        run(RunSpec(argv=["/no/such/program"]))


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(JailError):
        run(RunSpec(argv=["/bin/true"], limits=Limits(memory=10)))


def test_sandbox_identity() -> None:
    r = run(RunSpec(argv=["/bin/sh", "-c", "id -u; id -g; hostname; echo $$; cat /proc/self/status"]))
    lines = r.stdout.decode().splitlines()
    assert lines[:4] == ["1000", "1000", "cellblock", "2"]
    status = dict(line.split(":\t", 1) for line in lines[4:] if ":\t" in line)
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, cap
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"


def test_root_is_fresh_and_read_only() -> None:
    script = "ls /; touch /x /usr/x /etc/x 2>&1; ls /home /root 2>&1; cat /etc/shadow 2>&1"
    r = run(RunSpec(argv=["/bin/sh", "-c", script]))
    out = r.stdout.decode()
    top = ["bin", "box", "dev", "etc", "lib", "lib64", "proc", "sbin", "tmp", "usr"]
    assert sorted(out.split("touch")[0].split()) == top
    assert out.count("Permission denied") + out.count("Read-only file system") == 3
    assert "No such file" in out and "shadow" in out


def test_network_has_only_a_down_loopback() -> None:
    r = run(RunSpec(argv=["/bin/cat", "/proc/net/dev"]))
    interfaces = [line.split(":")[0].strip() for line in r.stdout.decode().splitlines()[2:]]
    assert interfaces == ["lo"]


def test_loopback_up_on_request() -> None:
    script = (
        "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); "
        "c=socket.create_connection(s.getsockname(), timeout=2); print('connected')"
    )
    down = run(RunSpec(argv=["/usr/bin/python3", "-c", script]))
    up = run(RunSpec(argv=["/usr/bin/python3", "-c", script], loopback=True))
    assert down.status is Status.NONZERO_EXIT
    assert up.status is Status.OK and up.stdout == b"connected\n"


def test_pinning_to_a_cpu() -> None:
    cpu = max(os.sched_getaffinity(0))  # this host's last CPU: 0 on a one-CPU VM
    r = run(RunSpec(argv=["/bin/sh", "-c", "grep Cpus_allowed_list /proc/self/status"], cpu=cpu))
    assert r.stdout.split() == [b"Cpus_allowed_list:", str(cpu).encode()]


def test_extra_binds_read_only_under_etc_and_elsewhere(tmp_path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "x.ini").write_text("setting=1\n")
    (tmp_path / "tool").write_text("#!/bin/sh\necho tool ran\n")
    (tmp_path / "tool").chmod(0o755)
    binds = [Bind(str(tmp_path / "conf"), "/etc/mylang"), Bind(str(tmp_path / "tool"), "/opt/tool")]
    r = run(RunSpec(argv=["/bin/sh", "-c", "cat /etc/mylang/x.ini; /opt/tool; touch /etc/mylang/y 2>&1"], binds=binds))
    out = r.stdout.decode()
    assert out.startswith("setting=1\ntool ran\n")
    assert "Read-only file system" in out
    with pytest.raises(JailError):
        run(RunSpec(argv=["/bin/true"], binds=[Bind(str(tmp_path / "tool"), "/usr/bin/tool")]))


def test_a_failing_bind_mount_names_its_source_and_target(tmp_path) -> None:
    """A directory bound onto a file fails in the container's init (ENOTDIR): the error
    says which mount, with the flags it was made with."""
    with pytest.raises(ChildSetupError) as failed:
        run(RunSpec(argv=["/bin/true"], binds=[Bind(str(tmp_path), "/etc/passwd")]))
    assert failed.value.step is Step.MOUNT and failed.value.errno == errno.ENOTDIR
    message = str(failed.value)
    assert message.startswith(f"sandbox setup failed at mount({tmp_path} -> /"), message
    assert message.endswith("/root/etc/passwd, MS_BIND|MS_REC): ENOTDIR (Not a directory)"), message


def test_without_path_in_its_env_a_command_is_searched_on_the_default_path() -> None:
    r = run(RunSpec(argv=["echo", "found"], env={"LANG": "C"}))
    assert r.status is Status.OK and r.stdout == b"found\n"


def test_the_init_runs_from_a_noexec_state_dir(tmp_path) -> None:
    """Debian's initramfs mounts /run noexec: the init is executed from a sealed memfd, never
    from the state dir where it is built."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,nosuid,nodev", "tmpfs", str(state_dir)], check=True)
    try:
        built = init_binary.path(str(state_dir))
        with pytest.raises(PermissionError):
            subprocess.run([built], check=False)
        # Started as the builder starts it; with no arguments the init exits 2 at once: it ran.
        init = init_binary.executable(str(state_dir))
        _, status = os.waitpid(os.posix_spawn(init, ["cellblock-init"], {}), 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2
    finally:
        subprocess.run(["umount", str(state_dir)], check=True)


def test_the_staged_etc_follows_the_hosts(tmp_path) -> None:
    """The sandbox's /etc is a copy of a few host entries, named by what they were: a host
    that changed one (a package added an alternative, ldconfig replaced ld.so.cache) gets a
    new copy when a jail next starts; the old one stays as it was, for containers binding it."""
    from jail.rootfs import staged_etc

    source, state = tmp_path / "etc", str(tmp_path / "state")
    (source / "alternatives").mkdir(parents=True)
    (source / "alternatives" / "python3").symlink_to("/usr/bin/python3.11")
    (source / "ld.so.cache").write_bytes(b"before")
    first = staged_etc(state, str(source))
    assert os.readlink(f"{first}/alternatives/python3") == "/usr/bin/python3.11"
    assert Path(first, "passwd").read_text().startswith("root:x:0:0:")
    assert staged_etc(state, str(source)) == first  # nothing changed: the same copy
    (source / "alternatives" / "php").symlink_to("/usr/bin/php8.2")
    second = staged_etc(state, str(source))
    assert second != first and os.readlink(f"{second}/alternatives/php") == "/usr/bin/php8.2"
    assert not os.path.lexists(f"{first}/alternatives/php")
    (source / "ld.so.cache.new").write_bytes(b"after")
    os.replace(source / "ld.so.cache.new", source / "ld.so.cache")  # as ldconfig writes it
    third = staged_etc(state, str(source))
    assert third not in (first, second) and Path(third, "ld.so.cache").read_bytes() == b"after"


def test_the_sandbox_has_the_hosts_alternatives() -> None:
    """/usr/bin/php and the like are links through /etc/alternatives: the sandbox's are the
    host's as they are now, whatever was installed since the jail first ran here."""
    if not os.path.isdir("/etc/alternatives"):
        pytest.skip("this host has no /etc/alternatives")
    links = [f"/etc/alternatives/{name}" for name in os.listdir("/etc/alternatives")]
    host = {os.path.basename(link): os.readlink(link) for link in links if os.path.islink(link)}
    # One process for all (a shell forking readlink per link ran out of its wall time in the VM).
    result = run(
        RunSpec(argv=["/usr/bin/find", "/etc/alternatives/", "-maxdepth", "1", "-type", "l", "-printf", "%f %l\\n"])
    )
    assert result.status is Status.OK, result
    inside = dict(line.split(" ", 1) for line in result.stdout.decode().splitlines())
    assert host and inside == host
