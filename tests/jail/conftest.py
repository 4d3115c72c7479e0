"""Fixtures for the jail's own tests: C helper programs compiled once on the host."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
