"""Resource bombs: each is stopped at its limit, reported with the right status, and leaves
nothing alive on the host (the autouse fixture checks processes, cgroups and mounts)."""

from __future__ import annotations

import pytest
from sec_helpers import limits

from jail import MiB, Status


def test_fork_bomb_is_stopped(run_c):
    r = run_c("forkbomb", lim=limits(pids=16, wall_time=1.0))
    # 16 tasks spin in fork(); each failed fork copies the mm before the pids check refuses
    # it, and the kernel charges that to the run's memory: the OOM killer may stop the bomb
    # before the clock does (7 runs of 40 here). Stopped, either way.
    assert r.status in (Status.TIME_LIMIT, Status.WALL_TIME_LIMIT, Status.MEMORY_LIMIT), r
    assert r.wall_time < 2.5


def test_fork_count_is_capped_by_pids(run_c):
    r = run_c("forkcount", lim=limits(pids=16))
    assert r.status is Status.OK, r
    word, n, err = r.stdout.split()
    assert word == b"forks" and err == b"EAGAIN", r.stdout
    assert int(n) <= 15  # 16 tasks at once, the program itself included


def test_thread_bomb_is_capped_by_pids(run_c):
    r = run_c("threadbomb", lim=limits(pids=16))
    assert r.status is Status.OK, r
    word, n, err = r.stdout.split()
    assert word == b"threads" and err == b"EAGAIN", r.stdout
    assert int(n) <= 15


@pytest.mark.parametrize("mode", ["malloc", "mmap", "stack"])
def test_memory_bomb_hits_memory_limit(run_c, mode):
    lim = limits(memory=32 * MiB, stack=256 * MiB, cpu_time=2, wall_time=3)
    r = run_c(mode, lim=lim)
    assert r.status is Status.MEMORY_LIMIT, r
    assert r.peak_memory <= 32 * MiB + 1 * MiB, r.peak_memory


@pytest.mark.parametrize("where", [["/box/fill"], ["/tmp/fill"], ["/box/fill", "/tmp/fill"]])
def test_disk_fill_stops_at_disk_limit(run_c, where):
    disk = 8 * MiB
    r = run_c("fill", *where, lim=limits(disk=disk, file_size=64 * MiB, memory=64 * MiB))
    assert r.status is Status.OK, r
    lines = r.stdout.decode().splitlines()
    assert len(lines) == len(where), r.stdout
    total = 0
    for line, path in zip(lines, where, strict=True):
        word, p, n, err = line.split()
        assert (word, p, err) == ("fill", path, "ENOSPC"), line
        total += int(n)
    assert total <= disk  # /box and /tmp share one tmpfs of `disk` bytes


def test_huge_single_file_is_file_size_limit(run_c):
    """RLIMIT_FSIZE must end the program with SIGXFSZ -> file_size_limit."""
    r = run_c("bigfile", "/box/big", lim=limits(file_size=1 * MiB, disk=16 * MiB))
    assert b"returned" not in r.stdout, f"the program went on after EFBIG: SIGXFSZ is ignored in the jail: {r}"
    assert r.status is Status.FILE_SIZE_LIMIT, r
    assert r.signal == "SIGXFSZ"


def test_program_starts_with_default_signal_dispositions(run_c):
    """No signal may be ignored at execve: the jail's own Python ignores SIGPIPE and SIGXFSZ."""
    r = run_c("sigdisp")
    assert r.status is Status.OK, r
    assert r.stdout == b"end\n", f"signals ignored at start of the program: {r.stdout!r}"


@pytest.mark.parametrize("fd", [1, 2])
def test_output_flood_is_cut_byte_exact(run_c, fd):
    cap = 10_000
    r = run_c("flood", str(fd), lim=limits(output=cap))
    assert r.status is Status.OUTPUT_LIMIT, r
    data, other = (r.stdout, r.stderr) if fd == 1 else (r.stderr, r.stdout)
    truncated = r.stdout_truncated if fd == 1 else r.stderr_truncated
    assert truncated
    assert len(data) == cap
    assert data == (b"0123456789abcdef" * (cap // 16 + 1))[:cap]
    assert other == b""


@pytest.mark.parametrize("threads,cpus", [(1, 1.0), (8, 1.0), (8, 2.0)])
def test_cpu_spin_is_time_limit(run_c, threads, cpus):
    cpu = 0.5
    r = run_c("spin", str(threads), lim=limits(cpu_time=cpu, wall_time=5, cpus=cpus))
    assert r.status is Status.TIME_LIMIT, r
    assert cpu <= r.cpu_time <= cpu + 0.1, r.cpu_time


def test_sleep_forever_is_wall_time_limit(run_c):
    r = run_c("sleep", lim=limits(wall_time=0.5))
    assert r.status is Status.WALL_TIME_LIMIT, r
    assert 0.5 <= r.wall_time < 1.5, r.wall_time


def test_sigterm_ignorer_is_killed(run_c):
    r = run_c("sigterm", lim=limits(wall_time=0.5))
    assert r.status is Status.WALL_TIME_LIMIT, r
    assert r.signal == "SIGKILL"


def test_open_files_capped(run_c):
    r = run_c("openfiles", lim=limits(open_files=32))
    assert r.status is Status.OK, r
    word, n, err = r.stdout.split()
    assert (word, err) == (b"open", b"EMFILE"), r.stdout
    assert int(n) == 32 - 3, "the program did not start with exactly stdin, stdout and stderr open"


@pytest.mark.parametrize("mode", ["orphan", "spinorphan"])
def test_double_forked_orphan_dies_with_the_run(run_c, mode):
    """The grandchild setsid()s, ignores SIGTERM/SIGHUP and outlives its parent: the run's
    end must kill it (checked from the host by the autouse fixture)."""
    r = run_c(mode, lim=limits(wall_time=2))
    assert r.status is Status.OK, r
    assert r.stdout == b"orphaned\n"
    assert r.wall_time < 1.0
