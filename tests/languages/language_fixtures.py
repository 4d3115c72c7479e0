"""Helpers shared by the language tests (a uniquely named module: several test folders
have a conftest.py, so tests import helpers from here, never `from conftest`)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from language_programs import CORE, MULTI

from policies.languages import Language, available_languages, load_languages

# built(lang_id) -> (Language, artifact): the fixture in conftest.py.
Built = Callable[[str], tuple[Language, dict[str, bytes]]]


def language(lang_id: str) -> Language:
    """The detected language, or a loud failure naming the package list to install.

    `make test` installs the extra languages too, so none of their tests is skipped."""
    avail = available_languages()
    if lang_id in avail:
        return avail[lang_id]
    defined = load_languages().get(lang_id)
    if defined is None:
        pytest.fail(f"no definition policies/languages/{lang_id}.toml")
    msg = f"{lang_id}: toolchain missing on this host: {', '.join(defined.missing())}"
    packages = "deploy/debian-packages.txt" if lang_id in CORE else "deploy/debian-packages-extra.txt"
    pytest.fail(f"{msg} (install {packages})")


def static_c_binary(tmp: Path) -> bytes:
    """The C test program, statically linked on the host: the 'executable' language's input."""
    src = tmp / "multi.c"
    src.write_text(MULTI["c"])
    subprocess.run(["/usr/bin/gcc", "-O2", "-static", "-o", str(tmp / "multi"), str(src)], check=True)
    return (tmp / "multi").read_bytes()
