"""The service with its workers started the way systemd starts a unit with `Delegate=yes` on a
pure cgroup v2 host: inside the unit's own group, below a slice that hands it memory, pids and
cpu. Two workers share the unit, as under `cellblock up`: the second finds itself moved to the
first one's leaf and must join the same parent group. Runs in the VM (tests/vm); v1 hosts
have nothing to delegate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cgroup_layout import needs_v2, v2_group
from tests.conftest import RedisServer, Stack, make_stack
from tests.e2e.test_judge import C_PROGRAMS, PY_PROGRAMS, judge

pytestmark = needs_v2


@pytest.fixture(scope="module")
def unit() -> Iterator[str]:
    """The unit's group, as systemd lays it out: <slice>/cellblock.service."""
    with v2_group("cb-system.slice") as slice_:
        group = f"{slice_}/cellblock.service"
        os.mkdir(group)
        yield group


@pytest.fixture(scope="module")
def delegated(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, unit: str) -> Iterator[Stack]:
    s = make_stack(redis_server, tmp_path_factory.mktemp("delegated"), "delegated", workers=2, worker_cgroup=unit)
    yield s
    s.stop()


def processes_in(group: str) -> list[int]:
    return [int(pid) for pid in Path(group, "cgroup.procs").read_text().split()]


@pytest.mark.parametrize(
    ("language", "verdict", "source"),
    [
        ("c", "accepted", C_PROGRAMS["accepted"]),
        ("python3", "accepted", PY_PROGRAMS["accepted"]),
        ("c", "time_limit_exceeded", C_PROGRAMS["time_limit_exceeded"]),
        ("python3", "memory_limit_exceeded", PY_PROGRAMS["memory_limit_exceeded"]),
    ],
)
def test_verdicts_from_a_worker_in_a_delegated_unit(delegated: Stack, language: str, verdict: str, source: str) -> None:
    view = judge(delegated, language, source)
    assert view["verdict"] == verdict, view
    if verdict == "accepted":
        assert 0 < view["tests"][0]["peak_memory"] < 64 << 20


def test_the_unit_holds_one_leaf_and_one_parent_group(delegated: Stack, unit: str) -> None:
    judge(delegated, "c", C_PROGRAMS["accepted"])  # whatever ran before, at least one run here
    entries = sorted(e.name for e in os.scandir(unit) if e.is_dir())
    assert entries == ["cellblock", "supervisor"]
    assert processes_in(unit) == []  # v2's "no internal processes": all moved to the leaf
    leaf = processes_in(f"{unit}/supervisor")
    assert all(worker.pid in leaf for worker in delegated.workers)
    assert not [e.name for e in os.scandir(f"{unit}/supervisor") if e.is_dir()]  # no supervisor/supervisor
    runs = [e.name for e in os.scandir(f"{unit}/cellblock") if e.is_dir()]
    assert all(name.startswith("run-") for name in runs), runs  # warm containers wait here, nothing else
