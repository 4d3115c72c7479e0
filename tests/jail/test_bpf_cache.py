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
    line, _, rest = cached.read_bytes().partition(b"\n")
    header = json.loads(line)
    assert [Path(f[0]).name.split(".so")[0] for f in header["files"]] == ["libseccomp", "pyseccomp.py"]
    assert header["pyseccomp"] == header["files"][1][0] and header["program"] == len(program)

    def with_header(**changed: object) -> bytes:
        return json.dumps({**header, **changed}).encode() + b"\n" + rest

    upgraded = [list(f) for f in header["files"]]
    upgraded[0][3] += 1  # libseccomp as if upgraded since (another mtime)
    whole = cached.read_bytes()
    for changed in (
        with_header(files=upgraded),
        with_header(pyseccomp="/elsewhere/pyseccomp.py"),  # another install's compiler
        whole[:-8],  # cut at an instruction's end: a shorter program that still parses
        whole[:-3],
        b"",
        b"not json\n" + rest,
    ):
        cached.write_bytes(changed)
        assert in_new_process(profiles, cache) == (True, program)
        assert cached.read_bytes() == whole  # and cached again, whole
    assert in_new_process(profiles, cache) == (False, program)


def test_a_file_others_could_have_written_is_not_trusted(profiles: Path, tmp_path: Path) -> None:
    """The init loads the program as it is: a cache file writable by others is compiled over."""
    cache = tmp_path / "cache"
    _, program = in_new_process(profiles, cache)
    cached = cache / "default.bpf"
    cached.chmod(0o666)
    assert in_new_process(profiles, cache) == (True, program)
    assert cached.stat().st_mode & 0o777 == 0o600
    assert in_new_process(profiles, cache) == (False, program)


@pytest.mark.parametrize("which", ["libseccomp unknown", "seccomp.py changed on disk since it was loaded"])
def test_a_compiler_it_cannot_vouch_for_is_used_but_not_cached(
    which: str, profiles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if which == "libseccomp unknown":

        def unknown() -> list[str]:
            raise JailError("cannot tell which libseccomp this process loaded")

        monkeypatch.setattr(seccomp, "compiler_files", unknown)
    else:
        monkeypatch.setattr(seccomp, "SOURCE", seccomp.SOURCE + b"# an older revision\n")
    cache = tmp_path / "cache"
    program = bpf_cache.compiled(str(profiles), str(cache), "default")
    assert program == seccomp.compile_profile(str(profiles / "default.toml"))
    assert not cache.exists() or not any(cache.iterdir())


def test_bad_names_and_missing_profiles_are_errors(profiles: Path, tmp_path: Path) -> None:
    with pytest.raises(JailError, match="invalid seccomp profile name"):
        bpf_cache.compiled(str(profiles), str(tmp_path), "../default")
    with pytest.raises(JailError, match=f"no seccomp profile 'nope' \\(looked for {profiles}/nope.toml\\)"):
        bpf_cache.compiled(str(profiles), str(tmp_path), "nope")
