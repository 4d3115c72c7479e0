"""The service with its workers in a group delegated to them on a pure cgroup v2 host, the two
ways production does it:
- as systemd starts a unit with `Delegate=yes`: inside the unit's own group, below a slice
  that hands it memory, pids and cpu. Two workers share the unit, as under `cellblock up`: the
  second finds itself moved to the first one's leaf and must join the same parent group;
- as the Kubernetes manifest runs one: in an unprivileged container (tests/container.py) with
  the documented capabilities, started by deploy/worker-in-container.sh.
Runs in the VM (tests/vm); v1 hosts have nothing to delegate.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jail.cgroup import slot_of
from tests.cgroup_layout import CGROUP2, in_cgroup, needs_v2, unit_group, v2_group
from tests.conftest import RedisServer, Stack, make_stack
from tests.container import ENTRYPOINT, container, pod_group
from tests.e2e.test_judge import C_PROGRAMS, PY_PROGRAMS, judge

pytestmark = needs_v2


@pytest.fixture(scope="module")
def unit() -> Iterator[str]:
    """The unit's group, as systemd lays it out: <slice>/cellblock.service."""
    with v2_group("cb-system.slice") as slice_:
        yield unit_group(slice_, "cellblock.service")


@pytest.fixture(scope="module")
def delegated(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory, unit: str) -> Iterator[Stack]:
    s = make_stack(
        redis_server,
        tmp_path_factory.mktemp("delegated"),
        "delegated",
        workers=2,
        worker_wrap=lambda argv: in_cgroup(unit, argv),
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def in_pod(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker as deploy/kubernetes/cellblock.yaml runs it, in a container of a pod."""
    with pod_group("pod-worker") as pod:
        s = make_stack(
            redis_server,
            tmp_path_factory.mktemp("in-pod"),
            "in-pod",
            workers=1,
            worker_wrap=lambda argv: container(pod, "worker", [str(ENTRYPOINT), *argv]),
        )
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
    leaf = processes_in(f"{unit}/supervisor")
    assert all(worker.pid in leaf for worker in delegated.workers)
    assert not [e.name for e in os.scandir(f"{unit}/supervisor") if e.is_dir()]  # no supervisor/supervisor
    runs = [e.name for e in os.scandir(f"{unit}/cellblock") if e.is_dir()]
    assert runs and all(name.startswith("run-") for name in runs), runs  # the builders' warm containers
    # and none of this unit's runs went anywhere else
    top = Path(str(CGROUP2), "cellblock")
    strays = [n for n in (os.listdir(top) if top.is_dir() else []) if slot_of(n) is not None]
    assert not [n for n in strays if int(n.split("-")[1]) in leaf], strays


@pytest.mark.parametrize(
    ("language", "verdict", "source"),
    [
        ("c", "accepted", C_PROGRAMS["accepted"]),
        ("c", "memory_limit_exceeded", C_PROGRAMS["memory_limit_exceeded"]),
        ("python3", "time_limit_exceeded", PY_PROGRAMS["time_limit_exceeded"]),
    ],
)
def test_verdicts_from_a_worker_in_an_unprivileged_container(
    in_pod: Stack, language: str, verdict: str, source: str
) -> None:
    view = judge(in_pod, language, source)
    assert view["verdict"] == verdict, view
