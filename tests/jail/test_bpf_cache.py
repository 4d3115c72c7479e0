"""The on-disk cache of compiled seccomp programs (jail/bpf_cache.py): a new process gets the
same program without loading libseccomp, and anything the program was made from that
changed, or a cache file that is not whole, compiles afresh."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jail import JailError, bpf_cache, seccomp
from jail.config import SECCOMP_DIR
from tests.conftest import ROOT

LOADS = """
import sys
from jail import bpf_cache
program = bpf_cache.compiled(sys.argv[1], sys.argv[2], "default")
with open("/proc/self/maps") as f:
    loaded = "libseccomp" in f.read()
sys.stdout.buffer.write(b"%d %d\\n" % ("pyseccomp" in sys.modules or loaded, len(program)) + program)
"""


def in_new_process(profiles: Path, cache: Path) -> tuple[bool, bytes]:
    """(whether it loaded libseccomp, the program) from compiled() in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", LOADS, str(profiles), str(cache)], cwd=ROOT, capture_output=True, check=True
    ).stdout
    head, _, program = out.partition(b"\n")
    loaded, size = map(int, head.split())
    assert size == len(program)
    return bool(loaded), program


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    copy = tmp_path / "profiles"
    copy.mkdir()
    shutil.copy(Path(SECCOMP_DIR, "default.toml"), copy / "default.toml")
    return copy


def test_a_second_process_reads_the_program_without_libseccomp(profiles: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    loaded, first = in_new_process(profiles, cache)
    assert loaded  # nothing cached: compiled
    assert first == seccomp.compile_profile(str(profiles / "default.toml"))
    assert (cache / "default.bpf").exists()
    loaded, again = in_new_process(profiles, cache)
    assert not loaded and again == first


def test_a_changed_profile_compiles_afresh(profiles: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _, before = in_new_process(profiles, cache)
    toml = profiles / "default.toml"
    text = toml.read_text()
    assert "deny = [\n" in text and '"uname"' not in text
    toml.write_text(text.replace("deny = [\n", 'deny = [\n    "uname",\n', 1))
    loaded, after = in_new_process(profiles, cache)
    assert loaded and after != before
    assert after == seccomp.compile_profile(str(toml))
    assert in_new_process(profiles, cache) == (False, after)


def test_a_changed_compiler_or_a_broken_file_compiles_afresh(profiles: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _, program = in_new_process(profiles, cache)
    cached = cache / "default.bpf"
    header, _, rest = cached.read_bytes().partition(b"\n")
    files = json.loads(header)["files"]
    assert [Path(f[0]).name.split(".so")[0] for f in files] == ["libseccomp", "pyseccomp.py"]
    files[0][3] += 1  # libseccomp as if upgraded since (another mtime)
    cached.write_bytes(json.dumps({"files": files, "inputs": json.loads(header)["inputs"]}).encode() + b"\n" + rest)
    assert in_new_process(profiles, cache) == (True, program)
    assert in_new_process(profiles, cache) == (False, program)  # and cached again
    for broken in (cached.read_bytes()[:-3], b"", b"not json\n" + rest):
        cached.write_bytes(broken)
        assert in_new_process(profiles, cache) == (True, program)


def test_bad_names_and_missing_profiles_are_errors(profiles: Path, tmp_path: Path) -> None:
    with pytest.raises(JailError, match="invalid seccomp profile name"):
        bpf_cache.compiled(str(profiles), str(tmp_path), "../default")
    with pytest.raises(JailError, match=f"no seccomp profile 'nope' \\(looked for {profiles}/nope.toml\\)"):
        bpf_cache.compiled(str(profiles), str(tmp_path), "nope")
