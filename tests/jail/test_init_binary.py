"""The container init's build: what init.c shares with the Python side (the default PATH,
the setup steps) is stated on the Python side only, and the binary's name covers every
input of the build."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from jail import init_binary
from jail.errors import Step
from jail.spec import DEFAULT_PATH

SOURCE = Path(init_binary.SOURCE).read_text()


def test_init_c_does_not_build_without_the_default_path_define() -> None:
    assert DEFAULT_PATH not in SOURCE
    done = subprocess.run(
        [init_binary.COMPILER, *init_binary.FLAGS, "-fsyntax-only", init_binary.SOURCE],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "DEFAULT_PATH is not defined" in done.stderr


def test_init_c_reports_exactly_the_steps_of_the_enum() -> None:
    assert set(re.findall(r"\bSTEP_([A-Z0-9_]+)", SOURCE)) == {step.name for step in Step}


def test_a_change_of_flags_or_defines_builds_a_new_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = init_binary.path.__wrapped__  # past the per-process cache: every call looks again
    built = [build(str(tmp_path))]
    monkeypatch.setattr(init_binary, "FLAGS", (*init_binary.FLAGS, "-g"))
    built.append(build(str(tmp_path)))
    monkeypatch.setattr(init_binary, "DEFAULT_PATH", "/opt/bin:" + DEFAULT_PATH)
    built.append(build(str(tmp_path)))
    assert len(set(built)) == 3 and all(os.path.exists(b) for b in built)
    assert build(str(tmp_path)) == built[-1]  # the same inputs find the binary built before


def test_a_binary_whose_key_differs_is_built_again(tmp_path: Path) -> None:
    """The name is a checksum: the `.key` beside the binary, compared whole, decides (a
    colliding revision, or a binary without its key, is rebuilt in place)."""
    build = init_binary.path.__wrapped__
    binary = Path(build(str(tmp_path)))
    key = Path(f"{binary}.key")
    source = Path(init_binary.SOURCE).read_bytes()
    assert key.read_bytes().endswith(source)  # the exact inputs, not a digest of them
    binary.write_bytes(b"not the init")
    key.write_bytes(b"another revision")  # as if a revision with the same checksum built it
    assert build(str(tmp_path)) == str(binary)
    assert binary.read_bytes()[:4] == b"\x7fELF" and key.read_bytes().endswith(source)
    binary.write_bytes(b"not the init")
    key.unlink()  # a binary without its key: a build cut short, or one of an older tree
    assert build(str(tmp_path)) == str(binary)
    assert binary.read_bytes()[:4] == b"\x7fELF" and key.read_bytes().endswith(source)


def test_the_first_build_on_a_fresh_host_makes_the_state_dir(tmp_path: Path) -> None:
    fresh = tmp_path / "run" / "cellblock"  # neither exists yet
    binary = init_binary.path.__wrapped__(str(fresh))
    assert os.path.dirname(binary) == str(fresh) and os.access(binary, os.X_OK)


def test_c_string_escapes_what_c_would_read_otherwise() -> None:
    assert init_binary.c_string('/a b:"q"\\\n') == r'"/a b:\042q\042\134\012"'
