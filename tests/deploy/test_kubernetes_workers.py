"""deploy/kubernetes/workers.sh, the worker pod's supervisor, run for real with a stand-in worker
(a shell that, like `cellblock worker`, finishes its job in hand on SIGTERM): it starts
CELLBLOCK_WORKERS of them, or one per CPU; SIGTERM reaches each exactly once (RQ takes a second
one as "drop the job") and the script waits for all; a worker that exits stops the others and
its status becomes the container's, for the kubelet to restart."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "deploy" / "kubernetes" / "workers.sh"
# A job in hand takes this long to finish after SIGTERM.
JOB_S = 0.5
STAND_IN = rf"""
dir=$1
trap 'echo term >> "$dir/$$.term"; sleep {JOB_S}; kill "$idle"; echo done > "$dir/$$.done"; exit 0' TERM
echo up > "$dir/$$.up"
if [ -n "${{FAIL:-}}" ] && (set -C; : > "$dir/first") 2>/dev/null; then sleep 0.3; exit 7; fi
sleep 60 & idle=$!
wait "$idle"
"""


class Supervisor:
    def __init__(self, where: Path, **env: str) -> None:
        self.where = where
        self.proc = subprocess.Popen(
            ["bash", str(SCRIPT), "sh", "-c", STAND_IN, "stand-in", str(where)],
            env={**os.environ, **env},
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: the test can end all it started
        )

    def files(self, suffix: str) -> list[Path]:
        return sorted(self.where.glob(f"*.{suffix}"))

    def wait_for_workers(self, count: int) -> None:
        deadline = time.monotonic() + 10
        while len(self.files("up")) < count:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            assert time.monotonic() < deadline, f"{len(self.files('up'))} of {count} workers started"
            time.sleep(0.02)
        time.sleep(0.2)  # and no more than that
        assert len(self.files("up")) == count

    def exit_status(self) -> int:
        return self.proc.wait(timeout=10)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Supervisor]]:
    runs: list[Supervisor] = []
    yield runs
    for run in runs:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
        if run.proc.stderr:
            run.proc.stderr.close()


def test_sigterm_reaches_every_worker_once_and_waits_for_their_jobs(tmp_path: Path, started: list[Supervisor]) -> None:
    run = Supervisor(tmp_path, CELLBLOCK_WORKERS="3")
    started.append(run)
    run.wait_for_workers(3)
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    assert run.exit_status() == 0
    assert time.monotonic() - sent >= JOB_S  # it waited for the jobs in hand
    assert len(run.files("done")) == 3
    assert [t.read_text() for t in run.files("term")] == ["term\n"] * 3


def test_a_worker_that_exits_stops_the_others_with_its_status(tmp_path: Path, started: list[Supervisor]) -> None:
    run = Supervisor(tmp_path, CELLBLOCK_WORKERS="3", FAIL="1")
    started.append(run)
    assert run.exit_status() == 7
    assert len(run.files("up")) == 3
    assert len(run.files("done")) == 2  # the other two finished their jobs in hand
    assert [t.read_text() for t in run.files("term")] == ["term\n"] * 2


def test_zero_workers_means_one_per_cpu(tmp_path: Path, started: list[Supervisor]) -> None:
    run = Supervisor(tmp_path, CELLBLOCK_WORKERS="0")
    started.append(run)
    run.wait_for_workers(len(os.sched_getaffinity(0)))
    run.proc.send_signal(signal.SIGTERM)
    assert run.exit_status() == 0


def test_a_count_that_is_not_a_number_is_refused(tmp_path: Path, started: list[Supervisor]) -> None:
    run = Supervisor(tmp_path, CELLBLOCK_WORKERS="2.5")
    started.append(run)
    assert run.exit_status() == 2
    assert run.proc.stderr is not None and b"CELLBLOCK_WORKERS=2.5" in run.proc.stderr.read()
    assert not run.files("up")
