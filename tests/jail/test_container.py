"""The jail in an unprivileged container on a cgroup v2 node (tests/container.py makes one as
runc does), with the least privileges the README documents for the Kubernetes worker, through
deploy/worker-in-container.sh. Runs in the pure v2 VM (tests/vm); the worker itself in such a
container is tests/e2e/test_delegated_worker.py.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cgroup_layout import needs_v2
from tests.container import CAPABILITIES, ENTRYPOINT, ROOT, container, pod_group

pytestmark = needs_v2
# What the jail reports when a run is made without one of them: the step the host refused.
REFUSED_STEP = {
    "setuid": "uid_map failed: Operation not permitted",
    "setgid": "gid_map failed: Operation not permitted",
    "chown": "Operation not permitted: '",  # chown of the run's /box
    "fowner": "/root/tmp'",  # chmod of the run's /tmp, owned by the run's uid
    "dac_override": "Permission denied: '",  # a file copied into the run's /box
    "mknod": "Operation not permitted",  # the run's /dev nodes
}


@pytest.fixture
def pod() -> Iterator[str]:
    with pod_group("pod-test") as group:
        yield group


def in_container(
    pod: str, name: str, argv: list[str], caps: tuple[str, ...] = CAPABILITIES, state: str = "/run/cellblock"
) -> subprocess.CompletedProcess[str]:
    """argv run to its end as the process of a new container `name` of `pod`, with only `caps`."""
    env = {**os.environ, "CELLBLOCK_JAIL_DIR": state}
    return subprocess.run(
        container(pod, name, argv, caps), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def jail_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "jail", "run", "--json", *args]


def test_without_the_entrypoint_doctor_names_both_container_problems(pod: str) -> None:
    p = in_container(pod, "bare", [sys.executable, "-m", "jail", "doctor"])
    assert p.returncode == 1, p.stdout
    assert "/sys/fs/cgroup is mounted read-only" in p.stdout
    assert "a sandbox cannot mount its own /proc" in p.stdout
    assert "deploy/worker-in-container.sh" in p.stdout


def test_a_worker_container_with_the_documented_privileges_runs_and_limits(
    pod: str, programs: dict[str, bytes], tmp_path: Path
) -> None:
    touch = tmp_path / "touch"
    touch.write_bytes(programs["touch"])
    script = " && ".join(
        [
            shlex.join(jail_run("--memory", "32M", "--", "/bin/sh", "-c", "echo hi; cat /proc/self/cgroup")),
            shlex.join(jail_run("--memory", "32M", "--copy-in", f"{touch}:/box/touch", "--", "./touch", "64")),
            shlex.join(jail_run("--wall-time", "1", "--", "/bin/sleep", "5")),
            "cat /proc/self/cgroup",
        ]
    )
    p = in_container(pod, "worker", [str(ENTRYPOINT), "/bin/sh", "-c", script], state=str(tmp_path / "state"))
    assert p.returncode == 0, p.stderr
    *runs, own = p.stdout.splitlines()
    results = [json.loads(line) for line in runs]
    assert [r["status"] for r in results] == ["ok", "memory_limit", "wall_time_limit"], p.stdout
    assert results[0]["stdout"] == "hi\n0::/\n"  # the run's own cgroup namespace
    assert own == "0::/supervisor"  # the container's processes moved to the leaf, runs beside it
    entries = sorted(e.name for e in os.scandir(f"{pod}/worker") if e.is_dir())
    assert entries == ["cellblock", "supervisor"]


@pytest.mark.parametrize("dropped", CAPABILITIES)
def test_each_documented_capability_is_needed(
    pod: str, dropped: str, programs: dict[str, bytes], tmp_path: Path
) -> None:
    """A run as a judge makes it (a file copied in) fails without any one of them."""
    touch = tmp_path / "touch"
    touch.write_bytes(programs["touch"])
    caps = tuple(c for c in CAPABILITIES if c != dropped)
    argv = [str(ENTRYPOINT), *jail_run("--copy-in", f"{touch}:/box/touch", "--", "./touch", "1")]
    p = in_container(pod, f"without-{dropped}", argv, caps, state=str(tmp_path / "state"))
    if dropped == "sys_admin":  # without it the entrypoint's own mounts fail first
        assert p.returncode != 0 and "mount" in p.stderr, p.stderr
    else:
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert json.loads(p.stdout)["status"] == "internal_error", p.stdout
        assert REFUSED_STEP[dropped] in p.stderr, p.stderr
