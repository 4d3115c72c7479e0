"""Fixtures for tests/security: hostile programs built on the host, run in the real jail,
and a host-side check after every test that the run left nothing behind.

Nothing here skips: a host that cannot run these tests (not root, no gcc, no static
libc, no cgroups) fails loudly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jail import Limits, RunResult, RunSpec, run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sec_helpers import (
    PYTHON,
    cgroup_names,
    leftovers,
    limits,
    our_pids,
    our_slots,
    run_cgroups,
    sandbox_processes,
    slot_mounts,
    warm,
)

PROGRAMS = Path(__file__).resolve().parent / "programs"


@pytest.fixture(scope="session", autouse=True)
def host_ready() -> None:
    """The host can run the real jail: fail (never skip) when it cannot."""
    if os.geteuid() != 0:
        pytest.fail("tests/security need root: the jail runs only as root")
    for tool in ("/usr/bin/gcc", PYTHON):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"tests/security need {tool} on the host")
    if not os.path.isdir("/sys/fs/cgroup"):
        pytest.fail("tests/security need cgroups mounted at /sys/fs/cgroup")


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After every test: no sandbox-uid process of our slots, and no more root mounts and
    run cgroups than the containers the jail keeps built ahead of demand."""
    yield
    # The run has returned: everything must already be gone. A 0.2 s grace only covers
    # /proc entries of processes the kernel is still tearing down.
    end = time.monotonic() + 0.2
    left = leftovers(warm())
    while left and time.monotonic() < end:
        time.sleep(0.02)
        left = leftovers(warm())
    assert not left, "the run left things behind on the host:\n" + "\n".join(left)


@pytest.fixture(scope="session", autouse=True)
def nothing_left_at_close() -> Iterator[None]:
    """When the jail closes (its builder tears down the containers built ahead), nothing at all
    of ours remains: no process, no root mount, no run cgroup."""
    yield
    from jail import runner

    jail = runner._default
    if jail is None:
        return
    pids, slots = our_pids(), our_slots()
    jail.close()
    time.sleep(0.2)
    left = (
        [f"process {p}" for p in sandbox_processes([200_000 + s for s in slots])]
        + [f"cgroup {c}" for c in sorted(cgroup_names(run_cgroups(pids)))]
        + [f"mount {m}" for m in slot_mounts(slots)]
    )
    assert not left, "closing the jail left things behind on the host:\n" + "\n".join(left)


# --- programs ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """programs/hostile.c, compiled statically on the host."""
    out = tmp_path_factory.mktemp("hostile") / "hostile"
    try:
        subprocess.run(
            ["/usr/bin/gcc", "-O2", "-static", "-pthread", "-o", str(out), str(PROGRAMS / "hostile.c")],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot build programs/hostile.c (gcc, static glibc: libc6-dev):\n{e.stderr}")
    return out.read_bytes()


@pytest.fixture(scope="session")
def hostile_dynamic(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """programs/hostile.c, dynamically linked (loads /lib/x86_64-linux-gnu/libc.so.6 in the jail)."""
    out = tmp_path_factory.mktemp("hostile-dyn") / "hostile"
    try:
        subprocess.run(
            ["/usr/bin/gcc", "-O2", "-pthread", "-o", str(out), str(PROGRAMS / "hostile.c")],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot build programs/hostile.c dynamically:\n{e.stderr}")
    return out.read_bytes()


Runner = Callable[..., RunResult]


@pytest.fixture
def run_c(hostile: bytes) -> Runner:
    """run_c("mode", *args, lim=Limits, **spec_fields): /box/hostile in the jail."""

    def go(*args: str, lim: Limits | None = None, **spec: object) -> RunResult:
        return run(
            RunSpec(argv=["/box/hostile", *args], limits=lim or limits(), files={"/box/hostile": hostile}, **spec)
        )  # type: ignore[arg-type]

    return go


@pytest.fixture
def run_py() -> Runner:
    """run_py("name.py", *args, lim=Limits, **spec_fields): programs/name.py under /usr/bin/python3."""

    def go(name: str, *args: str, lim: Limits | None = None, **spec: object) -> RunResult:
        src = (PROGRAMS / name).read_bytes()
        return run(
            RunSpec(argv=[PYTHON, f"/box/{name}", *args], limits=lim or limits(), files={f"/box/{name}": src}, **spec)
        )  # type: ignore[arg-type]

    return go
