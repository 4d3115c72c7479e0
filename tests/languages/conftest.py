"""Fixtures for the language tests: the detected languages, a private compile cache, and
each language's test program compiled once per session (in the real jail)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from language_programs import CORE, MULTI  # noqa: E402

from policies.languages import Language, available_languages, load_languages  # noqa: E402
from worker import toolchain  # noqa: E402
from worker.compile_cache import CompileCache  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompileCache]:
    cache = CompileCache(tmp_path_factory.mktemp("compile-cache"), 256 << 20)
    toolchain.set_cache(cache)
    yield cache
    toolchain.set_cache(None)


def language(lang_id: str) -> Language:
    """The detected language, or a loud failure (core) / a skip naming the package (extra)."""
    avail = available_languages()
    if lang_id in avail:
        return avail[lang_id]
    defined = load_languages().get(lang_id)
    if defined is None:
        pytest.fail(f"no definition policies/languages/{lang_id}.toml")
    msg = f"{lang_id}: toolchain missing on this host: {', '.join(defined.missing())}"
    if lang_id in CORE:
        pytest.fail(msg + " (core language: install deploy/debian-packages.txt)")
    pytest.skip(msg + " (extra language: install deploy/debian-packages-extra.txt)")


Built = Callable[[str], tuple[Language, dict[str, bytes]]]

_built: dict[str, dict[str, bytes]] = {}


def static_c_binary(tmp: Path) -> bytes:
    """The C test program, statically linked on the host: the 'executable' language's input."""
    src = tmp / "multi.c"
    src.write_text(MULTI["c"])
    subprocess.run(["/usr/bin/gcc", "-O2", "-static", "-o", str(tmp / "multi"), str(src)], check=True)
    return (tmp / "multi").read_bytes()


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """built(lang_id) -> (Language, artifact): the multi-mode test program, compiled once."""

    def get(lang_id: str) -> tuple[Language, dict[str, bytes]]:
        lang = language(lang_id)
        if lang_id not in _built:
            if lang_id == "executable":
                _built[lang_id] = {"main": static_c_binary(tmp_path_factory.mktemp("exe"))}
            else:
                outcome = toolchain.compile_source(lang, {lang.source: MULTI[lang_id].encode()}, [])
                assert outcome.ok, f"{lang_id}: test program did not compile:\n{outcome.output}"
                _built[lang_id] = outcome.artifact
        return lang, _built[lang_id]

    return get
