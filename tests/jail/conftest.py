"""Fixtures for the jail's own tests: C helper programs compiled once on the host."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from jail import Limits, RunResult, RunSpec, run

PROGRAMS = Path(__file__).parent / "programs"


@pytest.fixture(scope="session")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """name -> static binary of every programs/*.c (static: runs without host libraries)."""
    if os.geteuid() != 0:
        pytest.fail("the jail tests need root: run them as root (CI does)")
    out = tmp_path_factory.mktemp("programs")
    built = {}
    for source in sorted(PROGRAMS.glob("*.c")):
        binary = out / source.stem
        subprocess.run(["gcc", "-O1", "-static", "-pthread", "-o", str(binary), str(source)], check=True)
        built[source.stem] = binary.read_bytes()
    return built


@pytest.fixture
def run_program(programs: dict[str, bytes]) -> Callable[..., RunResult]:
    """run_program(name, *args, **limits): programs/NAME.c as /box/NAME, run in the jail."""

    def go(name: str, *args: str, **limits: float) -> RunResult:
        return run(RunSpec(argv=[f"./{name}", *args], files={f"/box/{name}": programs[name]}, limits=Limits(**limits)))  # type: ignore[arg-type]

    return go
