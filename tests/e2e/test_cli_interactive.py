"""`cellblock submit FILE --interactive` through the real stack: the CLI as a subprocess, its
stdin, stdout and stderr pipes standing for a terminal (a Python REPL, bytes that are not
UTF-8, Ctrl-C, the idle timeout, a compile error, exit statuses, refusals before and after
the upgrade)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, RedisServer, Stack, make_stack

TIMEOUT = 60
REPL = "import code\ncode.interact(banner='', exitmsg='')\n"


@pytest.fixture(scope="module")
def live(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """API + 1 worker; at most 2 sessions per key (auth off: every client is one)."""
    s = make_stack(redis_server, tmp_path_factory.mktemp("cli-interactive"), "cli-interactive", workers=1,
                   extra_env={"CELLBLOCK_MAX_SESSIONS": "2"})  # fmt: skip
    yield s
    s.stop()


class Cli:
    """`cellblock submit FILE -i` running, with what it printed so far."""

    def __init__(self, stack: Stack, file: Path, *extra: str) -> None:
        argv = [sys.executable, "-m", "cli", "submit", str(file), "-i", "--url", stack.base, *extra]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=stack.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.stdout = b""

    def type(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_until(self, text: bytes, within: float = TIMEOUT) -> bytes:
        """Its stdout from the start until it holds `text`."""
        assert self.proc.stdout is not None
        end = time.monotonic() + within
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while text not in self.stdout:
                left = end - time.monotonic()
                assert left > 0, f"no {text!r} on stdout after {within}s: {self.stdout!r}"
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 65536)
                    assert chunk, f"stdout closed before {text!r}: {self.stdout!r}\n{self.finish()}"
                    self.stdout += chunk
        return self.stdout

    def finish(self, within: float = TIMEOUT) -> tuple[int, bytes, str]:
        """Close its stdin (Ctrl-D) and wait: exit status, all of stdout, stderr."""
        try:
            out, err = self.proc.communicate(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"the CLI did not exit within {within}s: {self.stdout + out!r} {err!r}")
        self.stdout += out
        return self.proc.returncode, self.stdout, err.decode(errors="replace")


def program(tmp_path: Path, name: str, source: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(source.encode() if isinstance(source, str) else source)
    return path


def test_a_python_repl(live: Stack, tmp_path: Path) -> None:
    cli = Cli(live, program(tmp_path, "repl.py", REPL))
    cli.type(b"1+1\n")
    assert b"2" in cli.read_until(b"2\n").split()
    cli.type(b"1/0\n")  # its traceback goes to stderr
    cli.type(b"print('a' * 3)\n")
    cli.read_until(b"aaa\n")
    status, _, err = cli.finish()
    assert status == 0, err
    assert "ZeroDivisionError" in err
    assert err.splitlines()[-1].startswith("verdict: accepted (exit 0, "), err


def test_a_program_that_exits_3_exits_1(live: Stack, tmp_path: Path) -> None:
    status, _, err = Cli(live, program(tmp_path, "three.py", "raise SystemExit(3)\n")).finish()
    assert status == 1, err
    assert err.splitlines()[-1].startswith("verdict: runtime_error (exit 3, "), err


def test_bytes_that_are_not_utf8_both_ways(live: Stack, tmp_path: Path) -> None:
    """A Latin-1 source goes as base64; the program's bytes come back as they are."""
    source = b"# -*- coding: latin-1 -*-\n# caf\xe9\nimport sys\n" \
             b"sys.stdout.buffer.write(bytes(range(250, 256)) + sys.stdin.buffer.read())\n"  # fmt: skip
    cli = Cli(live, program(tmp_path, "latin.py", source))
    cli.type(b"\xff\x00z")
    status, out, err = cli.finish()
    assert (status, out) == (0, bytes(range(250, 256)) + b"\xff\x00z"), err


def test_ctrl_c_kills_the_run(live: Stack, tmp_path: Path) -> None:
    cli = Cli(live, program(tmp_path, "sleep.py", "import time\nprint('up', flush=True)\ntime.sleep(60)\n"))
    cli.read_until(b"up\n")
    cli.proc.send_signal(signal.SIGINT)
    status, _, err = cli.finish()
    assert status == 1, err
    assert "killing the run" in err
    assert err.splitlines()[-1].startswith("verdict: runtime_error (signal SIGKILL, "), err


def test_the_idle_timeout_ends_the_run(live: Stack, tmp_path: Path) -> None:
    cli = Cli(live, program(tmp_path, "wait.py", "input()\n"), "--idle-timeout", "1")
    try:
        cli.proc.wait(timeout=TIMEOUT)  # stdin left open: nothing comes, nothing goes
    except subprocess.TimeoutExpired:
        pytest.fail(f"an idle session of 1 s still going after {TIMEOUT}s")
    status, _, err = cli.finish()
    assert status == 1, err
    assert "time_limit_exceeded" in err and "idle for 1 s" in err, err


def test_a_compile_error_shows_the_compiler_output(live: Stack, tmp_path: Path) -> None:
    status, _, err = Cli(live, program(tmp_path, "bad.c", "int main(void) { return nope; }\n")).finish()
    assert status == 1, err
    assert "nope" in err and err.splitlines()[-1].startswith("verdict: compilation_error"), err


def test_refusals_exit_2_with_the_reason(live: Stack, tmp_path: Path) -> None:
    repl = program(tmp_path, "repl.py", REPL)
    # After the upgrade: an error message, then close 4422.
    status, _, err = Cli(live, repl, "--language", "cobol").finish()
    assert status == 2 and "session refused: HTTP 422" in err and "language" in err, err
    status, _, err = Cli(live, repl, "--idle-timeout", "0").finish()
    assert status == 2 and "idle_timeout" in err, err
    # Before the upgrade: the key's sessions are all open (429 with its JSON reason).
    held = [Cli(live, repl), Cli(live, repl)]
    try:
        for cli in held:
            cli.type(b"1+1\n")
            cli.read_until(b"2\n")
        status, _, err = Cli(live, repl).finish()
        assert status == 2 and "session refused: HTTP 429 too_many_sessions" in err, err
    finally:
        for cli in held:
            assert cli.finish()[0] == 0
    # A usage error.
    argv = [sys.executable, "-m", "cli", "submit", str(repl), "-i", "--stdin", str(repl), "--url", live.base]
    usage = subprocess.run(argv, cwd=ROOT, env=live.env, capture_output=True, text=True, timeout=TIMEOUT)
    assert usage.returncode == 2 and "not with --stdin" in usage.stderr, usage
