"""The language definition loader: the shipped files load, bad files name file and field."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from language_programs import CORE, EXTRA

from core.inputs import InputError, check_args, check_options
from jail.spec import MiB
from policies.languages import (
    LanguageError,
    available_languages,
    load_languages,
    parse_language,
)
from worker.toolchain import build_argv, heap_mib

GOOD = """
id = "{id}"
name = "Test"
source = "main.c"
version = ["/usr/bin/gcc", "-dumpfullversion"]
compile = ["/usr/bin/gcc", "{{options}}", "-o", "main", "main.c"]
artifacts = ["main"]
run = ["./main", "{{args}}"]
[options]
allowed = ["-O2"]
[limits.compile.default]
cpu_time = 10
memory = "512M"
[limits.run.default]
cpu_time = 2
memory = "256M"
[limits.run.max]
cpu_time = 10
memory = "1G"
"""


def write(tmp_path: Path, text: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_shipped_definitions_load() -> None:
    langs = load_languages()
    assert set(CORE) | set(EXTRA) <= set(langs), "a required language has no definition"
    for lang in langs.values():
        assert lang.run_limits.check(lang.run_limits.default) == []
        assert lang.profile == "default"


def test_good_file_parses(tmp_path: Path) -> None:
    lang = parse_language(write(tmp_path, GOOD.format(id="t")))
    assert lang.compile == ("/usr/bin/gcc", "{options}", "-o", "main", "main.c")
    assert lang.run_limits.default.memory == 256 * MiB
    assert lang.run_limits.maximum.memory == 1024 * MiB
    assert lang.compile_limits.default.cpu_time == 10.0
    assert lang.requires == ("/usr/bin/gcc",)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('name = "Test"\n', ""), "name"),
        (lambda t: t.replace('run = ["./main", "{args}"]', 'run = "./main"'), "run"),
        (lambda t: t.replace('memory = "256M"', 'memory = "lots"'), "limits.run.default.memory"),
        (lambda t: t.replace("cpu_time = 2\n", "cpu_time = 2\nbogus = 1\n"), "limits.run.default.bogus"),
        (lambda t: t.replace('cpu_time = 10\nmemory = "1G"', 'cpu_time = 1\nmemory = "1G"'), "limits.run.default"),
        (lambda t: t.replace('id = "t"', 'id = "other"'), "id"),
        (lambda t: t.replace('artifacts = ["main"]', 'artifacts = ["/etc/passwd"]'), "artifacts[0]"),
        (lambda t: t.replace('allowed = ["-O2"]', 'patterns = ["(unclosed"]'), "options.patterns[0]"),
        (lambda t: "surprise = 1\n" + t, "surprise"),
        (lambda t: 'profile = "nonexistent"\n' + t, "profile"),
        (lambda t: t.replace('[limits.compile.default]\ncpu_time = 10\nmemory = "512M"\n', ""), "limits.compile"),
    ],
)
def test_bad_file_names_file_and_field(tmp_path: Path, edit: Callable[[str], str], field: str) -> None:
    path = write(tmp_path, edit(GOOD.format(id="t")))
    with pytest.raises(LanguageError) as info:
        parse_language(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"field '{field}'" in msg, msg


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "id = \n")
    with pytest.raises(LanguageError, match=re.escape(str(path)) + ".*invalid TOML"):
        parse_language(path)


def test_directory_load_fails_on_one_bad_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD.format(id="ok"), "ok")
    write(tmp_path, GOOD.format(id="bad").replace('source = "main.c"', 'source = "../x"'), "bad")
    with pytest.raises(LanguageError, match=r"bad\.toml: field 'source'"):
        load_languages(tmp_path)


def test_available_skips_missing_toolchain_and_detects_version(tmp_path: Path) -> None:
    write(tmp_path, GOOD.format(id="ok"), "ok")
    write(tmp_path, GOOD.format(id="gone").replace("/usr/bin/gcc", "/nonexistent/gcc"), "gone")
    avail = available_languages(tmp_path)
    assert set(avail) == {"ok"}
    assert re.fullmatch(r"\d+(\.\d+)+", avail["ok"].version)
    assert available_languages(tmp_path)["ok"] is avail["ok"]  # cached, not re-detected


def test_options_whitelist() -> None:
    c = load_languages()["c"]
    allowed = ["-O2", "-std=c11", "-Wall", "-DN=10", "-lm"]
    assert check_options(c, allowed) == allowed
    for bad in [
        "-Wl,-rpath,/x",
        "-o/etc/x",
        "$(reboot)",
        "-B/tmp",
        "@/etc/passwd",
        "-fplugin=/x.so",
        "-O2; rm -rf /",
        "-specs=/tmp/x",
        "-wrapper",
        "",
    ]:
        with pytest.raises(InputError, match="not allowed") as refused:
            check_options(c, ["-O2", bad])
        assert refused.value.field == "compile_options[1]"
    with pytest.raises(InputError, match="at most"):
        check_options(c, ["-O2"] * 100)
    with pytest.raises(InputError, match="not compiled"):
        check_options(load_languages()["python3"], ["-O"])


def test_argv_building() -> None:
    java = load_languages()["java"]
    lim = java.run_limits.default
    argv = build_argv(java.run, lim, args=["a b", "$(x)"])
    assert argv[-2:] == ["a b", "$(x)"]  # arguments stay single argv elements
    assert f"-Xmx{heap_mib(lim.memory)}m" in argv
    assert 0 < heap_mib(lim.memory) < lim.memory // MiB
    assert check_args(["ok", ""]) == ["ok", ""]
    with pytest.raises(InputError, match="without NUL"):
        check_args(["x\0y"])
