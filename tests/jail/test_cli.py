"""`python -m jail run|doctor` as a user types it: JSON out, exit status says whether the SANDBOX worked."""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jail.cli import build_parser, build_run_parser, parse_size
from tests.cgroup_layout import BACKEND

ROOT = Path(__file__).resolve().parents[2]


def jail(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "jail", *args],
        input=b"",
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_run_json_reports_the_program() -> None:
    p = jail(
        "run", "--json", "--cpu-time", "1", "--memory", "64M", "--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "nonzero_exit"
    assert out["exit_code"] == 3
    assert out["stdout"] == "out\n" and out["stderr"] == "err\n"
    for key in ("signal", "cpu_time", "wall_time", "peak_memory", "stdout_truncated", "stderr_truncated", "syscall"):
        assert key in out


def test_invalid_utf8_is_replaced_in_json_and_kept_in_base64() -> None:
    p = jail("run", "--json", "--", "/usr/bin/printf", "\\377ok")
    out = json.loads(p.stdout)
    assert out["stdout"] == "\ufffdok" and base64.b64decode(out["stdout_base64"]) == b"\xffok"
    assert "stderr_base64" not in out  # only where the text cannot hold the bytes


def test_stdin_and_copy_in(tmp_path: Path) -> None:
    (tmp_path / "in").write_text("3 4\n")
    (tmp_path / "prog.sh").write_text("read a b; echo $((a + b))\n")
    p = jail(
        "run",
        "--json",
        "--stdin",
        str(tmp_path / "in"),
        "--copy-in",
        f"{tmp_path / 'prog.sh'}:/box/prog.sh",
        "--",
        "/bin/sh",
        "prog.sh",
    )
    assert json.loads(p.stdout)["stdout"] == "7\n"


def test_limits_from_the_command_line() -> None:
    p = jail("run", "--json", "--wall-time", "0.3", "--", "/bin/sleep", "10")
    assert json.loads(p.stdout)["status"] == "wall_time_limit"
    p = jail("run", "--json", "--output", "10", "--", "/usr/bin/yes")
    out = json.loads(p.stdout)
    assert out["status"] == "output_limit" and out["stdout"] == "y\n" * 5


def test_without_json_the_program_output_passes_through() -> None:
    p = jail("run", "--", "/bin/echo", "plain")
    assert p.returncode == 0
    assert p.stdout == b"plain\n"
    assert b"status=ok" in p.stderr


def test_sandbox_failures_exit_non_zero_with_a_message() -> None:
    p = jail("run", "--json", "--", "/no/such/command")
    assert p.returncode == 1
    assert json.loads(p.stdout)["status"] == "internal_error"
    assert b"cannot execute '/no/such/command'" in p.stderr
    p = jail("run", "--profile", "nope", "--", "/bin/true")
    assert p.returncode == 1 and b"no seccomp profile 'nope'" in p.stderr


def test_seccomp_profiles_are_read_from_cellblock_seccomp_dir(tmp_path: Path) -> None:
    (tmp_path / "nouname.toml").write_text('deny = ["uname"]\n')
    p = jail("run", "--json", "--profile", "nouname", "--", "/bin/uname", env={"CELLBLOCK_SECCOMP_DIR": str(tmp_path)})
    result = json.loads(p.stdout)
    assert result["status"] == "security_violation" and result["syscall"] == "uname", p


def test_bad_usage_exits_2() -> None:
    assert jail("run", "--memory", "lots", "--", "/bin/true").returncode == 2
    assert jail("run").returncode == 2
    assert jail("run", "--copy-in", "nocolon", "--", "/bin/true").returncode == 2


@pytest.mark.parametrize("columns", ["50", "120", "0", "wide"])
def test_help_reads_as_argparse_makes_it(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The formatter that spares argparse's shutil import wraps the help as argparse would."""
    monkeypatch.setenv("COLUMNS", columns)
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    ours = run.format_help()
    run.formatter_class = argparse.HelpFormatter
    assert ours == run.format_help() and "--cpu-time S" in ours


def test_run_alone_reads_as_the_whole_commands_run() -> None:
    """`python -m jail run` builds its own parser only: the same arguments and help as the
    whole command's `run` (an unknown option is now refused with run's usage, not the whole's)."""
    whole = build_parser()
    run = whole._subparsers._group_actions[0].choices["run"]  # type: ignore[index]
    assert build_run_parser().format_help() == run.format_help()
    words = ["--memory", "1G", "--copy-in", "a:b", "--json", "--", "/bin/echo", "--memory"]
    alone = vars(build_run_parser().parse_args(words))
    through = vars(whole.parse_args(["run", *words]))
    assert through.pop("command") == "run"
    assert alone == through and alone["argv"] == ["--", "/bin/echo", "--memory"] and alone["memory"] == 1 << 30


def test_a_run_loads_none_of_what_only_help_json_or_a_first_run_needs() -> None:
    """A plain run stays off argparse's terminal sizing (shutil), --json's base64, the
    one-time staging of /etc (shutil), dataclasses (with inspect) and typing (jail/record.py,
    jail/sink.py): each costs milliseconds of every command's start."""
    assert jail("run", "--", "/bin/true").returncode == 0  # /etc staged, the init built
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from jail.cli import main; code = main(['run', '--', '/bin/true']); "
            "print(code, sorted(m for m in ('shutil', 'base64', 'dataclasses', 'inspect', 'typing') "
            "if m in sys.modules))",
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )
    assert p.stdout.decode().split(None, 1) == ["0", "[]\n"], p.stderr


def test_output_sink_is_there_when_asked_for() -> None:
    """The one public Protocol, loaded with typing only when named (jail/sink.py)."""
    import jail
    import jail.spec
    from jail.sink import OutputSink

    assert jail.OutputSink is jail.spec.OutputSink is OutputSink
    assert "OutputSink" in jail.__all__
    with pytest.raises(AttributeError):
        jail.spec.NoSuchName  # noqa: B018


def test_doctor_checks_this_host() -> None:
    p = jail("doctor")
    assert p.returncode == 0, p.stdout
    text = p.stdout.decode()
    assert f"cgroup v{BACKEND}" in text and "seccomp filters: supported" in text and "the jail can run here" in text


@pytest.mark.parametrize(
    ("text", "size"),
    [("512", 512), ("64K", 65536), ("256M", 256 << 20), ("1G", 1 << 30), ("2MiB", 2 << 20), ("1.5k", 1536)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_doctor_tells_a_masked_proc_from_a_visible_one(tmp_path: Path) -> None:
    """The kernel lets a sandbox mount its /proc only if a whole proc with nothing mounted on it
    is mounted here; runc's masks (a file bound over /proc/kcore, /proc/sys bound read-only)
    hide parts of it, a binfmt_misc mount does not. The VM test runs this for real
    (tests/jail/test_container.py)."""
    from jail.doctor import visible_proc

    host = "22 1 0:21 / /proc rw - proc proc rw\n30 22 0:40 / /proc/sys/fs/binfmt_misc rw - binfmt_misc b rw\n"
    masked = (
        "52 41 0:36 / /proc rw - proc proc rw\n"
        "53 52 0:6 /null /proc/kcore rw - devtmpfs dev rw\n"
        "60 52 0:36 /sys /proc/sys ro - proc proc rw\n"
    )
    spare = masked + "70 41 0:38 / /run/cellblock/proc rw - proc proc rw\n"
    for text, expected in ((host, "/proc"), (masked, None), (spare, "/run/cellblock/proc")):
        (tmp_path / "mountinfo").write_text(text)
        ok, message, fix = visible_proc(str(tmp_path / "mountinfo"))
        assert ok == (expected is not None), message
        assert (f"fully visible at {expected} " in message) if ok else "worker-in-container.sh" in fix
