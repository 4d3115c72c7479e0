"""Legal programs must work in the same jail, with exact results: the limits bite only
when they are crossed."""

from __future__ import annotations

import hashlib

import pytest
from sec_helpers import PYTHON, limits

from jail import MiB, RunSpec, Status, run
from tests.conftest import TIME_SCALE


def py(code: str, **spec: object):
    lim = spec.pop("lim", None) or limits(cpu_time=2, wall_time=5)
    return run(RunSpec(argv=[PYTHON, "-c", code], limits=lim, **spec))  # type: ignore[arg-type]


def test_threads_work(run_c):
    r = run_c("threads", lim=limits(cpu_time=2, wall_time=5))
    assert r.status is Status.OK, r
    assert r.stdout.startswith(b"joined ")


def test_dynamic_binary_works(hostile_dynamic):
    lim = limits(cpu_time=2, wall_time=5)
    r = run(RunSpec(argv=["/box/h", "threads"], limits=lim, files={"/box/h": hostile_dynamic}))
    assert r.status is Status.OK, r
    assert r.stdout.startswith(b"joined ")


def test_stdin_read_to_eof():
    data = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4, every byte value
    r = py("import sys, hashlib; d = sys.stdin.buffer.read(); print(len(d), hashlib.sha256(d).hexdigest())", stdin=data)
    assert r.status is Status.OK, r
    assert r.stdout == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()


def test_files_in_box_and_tmp():
    code = (
        "import os\n"
        "open('/box/a.txt', 'w').write('box')\n"
        "os.makedirs('/tmp/d/e'); open('/tmp/d/e/b.txt', 'w').write('tmp')\n"
        "os.makedirs('/box/out'); open('/box/out/c.bin', 'wb').write(bytes(range(256)))\n"
        "print(open('/box/in.txt').read(), open('/tmp/d/e/b.txt').read(), sorted(os.listdir('/box')))\n"
    )
    r = py(code, files={"/box/in.txt": b"input", "/tmp/seed": b"x"}, collect=["a.txt", "out", "in.txt"])
    assert r.status is Status.OK, r
    assert r.stdout == b"input tmp ['a.txt', 'in.txt', 'out']\n"
    assert r.files == {"a.txt": b"box", "out/c.bin": bytes(range(256)), "in.txt": b"input"}


def test_non_utf8_output_returned_exactly():
    blob = bytes(range(256)) + b"\xff\xfe\x80\xc3\x28" + b"\x00" * 10
    r = py(
        "import sys; sys.stdout.buffer.write(bytes(range(256)) + b'\\xff\\xfe\\x80\\xc3\\x28' + bytes(10));"
        "sys.stderr.buffer.write(b'\\xc3\\x28\\xa0\\xa1')"
    )
    assert r.status is Status.OK, r
    assert r.stdout == blob
    assert r.stderr == b"\xc3\x28\xa0\xa1"


@pytest.mark.parametrize("fd", ["1", "2"])
def test_output_exactly_at_limit_is_ok(run_c, fd):
    cap = 65_536 + 17
    r = run_c("write", fd, str(cap), lim=limits(output=cap))
    assert r.status is Status.OK, r
    data = r.stdout if fd == "1" else r.stderr
    assert len(data) == cap
    assert data == (b"0123456789abcdef" * (cap // 16 + 1))[:cap]
    assert not r.stdout_truncated and not r.stderr_truncated


@pytest.mark.parametrize("fd", ["1", "2"])
def test_output_one_byte_over_is_output_limit(run_c, fd):
    cap = 65_536 + 17
    r = run_c("write", fd, str(cap + 1), lim=limits(output=cap))
    assert r.status is Status.OUTPUT_LIMIT, r
    data = r.stdout if fd == "1" else r.stderr
    assert len(data) == cap
    assert data == (b"0123456789abcdef" * (cap // 16 + 1))[:cap]
    assert (r.stdout_truncated, r.stderr_truncated) == ((True, False) if fd == "1" else (False, True))


def test_empty_output_limit_zero_ok(run_c):
    r = run_c("exit", "0", lim=limits(output=0))
    assert r.status is Status.OK, r


def test_exit_code_3_is_nonzero_exit(run_c):
    r = run_c("exit", "3")
    assert r.status is Status.NONZERO_EXIT, r
    assert r.exit_code == 3
    assert r.signal is None


def test_exit_code_0_is_ok(run_c):
    r = run_c("exit", "0")
    assert r.status is Status.OK and r.exit_code == 0, r


def test_100_mib_under_256_mib_is_ok(run_c):
    r = run_c("malloc", "100", lim=limits(memory=256 * MiB, cpu_time=2, wall_time=5))
    assert r.status is Status.OK, r
    assert r.stdout == b"touched 100 MiB\n"
    assert 100 * MiB <= r.peak_memory <= 130 * MiB, r.peak_memory / MiB


def test_300_mib_under_256_mib_is_memory_limit(run_c):
    # Touching 256 MiB takes some 3 s of CPU under emulation (the cgroup v2 VM): TIME_SCALE.
    r = run_c("malloc", "300", lim=limits(memory=256 * MiB, cpu_time=3 * TIME_SCALE, wall_time=5 * TIME_SCALE))
    assert r.status is Status.MEMORY_LIMIT, r
    assert b"touched" not in r.stdout
    assert r.peak_memory <= 257 * MiB


def test_python_abort_is_signaled():
    r = py("import os; os.abort()")
    assert r.status is Status.SIGNALED, r
    assert r.signal == "SIGABRT"
