"""Fixtures for the language tests: a private compile cache, and each language's test
program compiled once per session (in the real jail)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from language_fixtures import Built, language, static_c_binary
from language_programs import MULTI

from policies.languages import Language
from worker import toolchain
from worker.compile_cache import CompileCache


@pytest.fixture(scope="session", autouse=True)
def private_compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompileCache]:
    cache = CompileCache(tmp_path_factory.mktemp("compile-cache"), 256 << 20)
    toolchain.set_cache(cache)
    yield cache
    toolchain.set_cache(None)


_built: dict[str, dict[str, bytes]] = {}


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
