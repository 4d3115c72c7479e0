"""Limits hold: CPU time (threads included), wall time, memory, pids, output to the byte, file size."""

from __future__ import annotations

from jail import KiB, Limits, MiB, RunSpec, Status, run


def test_cpu_limit_stops_a_spinning_program(run_program) -> None:
    r = run_program("spin_threads", "1", cpu_time=0.5, wall_time=5)
    assert r.status is Status.TIME_LIMIT
    assert 0.5 <= r.cpu_time <= 0.6


def test_cpu_limit_counts_every_thread(run_program) -> None:
    r = run_program("spin_threads", "8", cpu_time=0.5, wall_time=5, cpus=2)
    assert r.status is Status.TIME_LIMIT
    assert 0.5 <= r.cpu_time <= 0.6


def test_a_program_cannot_claim_a_limit_by_raising_its_signal() -> None:
    # SIGXCPU is the per-process backstop a second above the CPU limit: raised at once, by the
    # program itself, it is a signal like another, not time_limit.
    r = run(RunSpec(argv=["/bin/sh", "-c", "kill -XCPU $$"], limits=Limits(cpu_time=2)))
    assert r.status is Status.SIGNALED and r.signal == "SIGXCPU", r


def test_cpu_bandwidth_caps_a_multithreaded_program(run_program) -> None:
    # One CPU's worth: 8 spinning threads get ~1 s of CPU per wall second, not 2.
    r = run_program("spin_threads", "8", cpu_time=10, wall_time=1.0, cpus=1)
    assert r.status is Status.WALL_TIME_LIMIT
    assert r.cpu_time <= 1.15 * r.wall_time


def test_wall_time_limit() -> None:
    r = run(RunSpec(argv=["/bin/sleep", "30"], limits=Limits(wall_time=0.3)))
    assert r.status is Status.WALL_TIME_LIMIT
    assert 0.3 <= r.wall_time < 1.0


def test_memory_limit_is_never_exceeded(run_program) -> None:
    r = run_program("touch", "300", memory=64 * MiB)
    assert r.status is Status.MEMORY_LIMIT
    assert r.peak_memory <= 64 * MiB * 1.02


def test_pids_limit_stops_a_fork_bomb() -> None:
    r = run(
        RunSpec(
            argv=["/bin/sh", "-c", "for i in $(seq 100); do sleep 5 & done; wait"], limits=Limits(pids=10, wall_time=2)
        )
    )
    assert b"fork" in r.stderr.lower() or b"resource" in r.stderr.lower()
    assert r.status in (Status.NONZERO_EXIT, Status.WALL_TIME_LIMIT, Status.OK)


def test_output_exactly_at_the_cap_is_fine_one_byte_over_is_not() -> None:
    at = run(RunSpec(argv=["/usr/bin/head", "-c", "1000", "/dev/zero"], limits=Limits(output=1000)))
    assert at.status is Status.OK
    assert len(at.stdout) == 1000 and not at.stdout_truncated
    over = run(RunSpec(argv=["/usr/bin/head", "-c", "1001", "/dev/zero"], limits=Limits(output=1000)))
    assert over.status is Status.OUTPUT_LIMIT
    assert len(over.stdout) == 1000 and over.stdout_truncated


def test_stderr_has_its_own_cap() -> None:
    r = run(RunSpec(argv=["/bin/sh", "-c", "head -c 5000 /dev/zero >&2"], limits=Limits(output=4096)))
    assert r.status is Status.OUTPUT_LIMIT
    assert len(r.stderr) == 4096 and r.stderr_truncated and not r.stdout_truncated


def test_endless_output_is_cut() -> None:
    r = run(RunSpec(argv=["/usr/bin/yes"], limits=Limits(output=1 * MiB, wall_time=5)))
    assert r.status is Status.OUTPUT_LIMIT
    assert len(r.stdout) == 1 * MiB


def test_file_size_limit() -> None:
    pipe = run(
        RunSpec(argv=["/usr/bin/head", "-c", "2000000", "/dev/zero"], limits=Limits(file_size=1 * MiB, output=4 * MiB))
    )
    assert pipe.status is Status.OK  # stdout is a pipe, not a file
    file = run(
        RunSpec(argv=["/bin/sh", "-c", "exec head -c 2000000 /dev/zero > big"], limits=Limits(file_size=1 * MiB))
    )
    assert file.status is Status.FILE_SIZE_LIMIT
    assert file.signal == "SIGXFSZ"


def test_disk_limit_caps_box_and_tmp_together() -> None:
    r = run(
        RunSpec(
            argv=["/bin/sh", "-c", "head -c 3000000 /dev/zero > a; head -c 3000000 /dev/zero > /tmp/b"],
            limits=Limits(disk=4 * MiB, file_size=16 * MiB),
        )
    )
    assert r.status is Status.NONZERO_EXIT
    assert b"No space left" in r.stderr


def test_the_default_disk_limit_holds_as_built() -> None:
    """A job with the default `disk` and no files runs on the root as the builder sized it."""
    fill = "for n in 1 2 3 4 5; do head -c 15000000 /dev/zero > /tmp/$n || exit $n; done"
    r = run(RunSpec(argv=["/bin/sh", "-c", fill]))
    assert 4 * 15_000_000 < Limits().disk < 5 * 15_000_000
    assert r.status is Status.NONZERO_EXIT and r.exit_code == 5 and b"No space left" in r.stderr, r


def test_the_programs_own_files_do_not_count_against_its_disk() -> None:
    """Files copied in come on top of `disk`: 1 MiB of input under a 64 KiB disk used to fail
    the copy (ENOSPC), a sandbox fault for what was the caller's own input. What the program
    writes is still capped by `disk`."""
    files = {"/box/input.bin": bytes(1 << 20), "/box/small.txt": b"x"}
    fits = run(
        RunSpec(
            argv=["/bin/sh", "-c", "wc -c < input.bin; head -c 30000 /dev/zero > out"],
            files=files,
            limits=Limits(disk=64 * KiB),
        )
    )
    assert fits.status is Status.OK and fits.stdout == b"1048576\n", fits
    over = run(
        RunSpec(argv=["/bin/sh", "-c", "head -c 200000 /dev/zero > out"], files=files, limits=Limits(disk=64 * KiB))
    )
    assert over.status is Status.NONZERO_EXIT and b"No space left" in over.stderr, over
