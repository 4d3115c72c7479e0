"""Language definitions: loads `policies/languages/<id>.toml` into frozen dataclasses.

Owns the schema of a language definition and its validation (every error names the
file and the field), and host detection: which toolchains exist here and which version
they are. Files are parsed once per process (`load_languages` and
`available_languages` are cached); nothing here is read per run.

A definition file looks like::

    id = "c"
    name = "C"
    source = "main.c"                      # file name the submission's code is stored as
    version = ["/usr/bin/gcc", "-dumpfullversion"]   # run bare on the host, once
    version_pattern = '(\\d+(\\.\\d+)+)'   # optional: regex, group 1 is the version
    compile = ["/usr/bin/gcc", "{options}", "-o", "main", "main.c", "-lm"]  # optional
    artifacts = ["main"]                   # what the compile leaves in /box for the runs
    run = ["./main", "{args}"]
    requires = ["/usr/bin/gcc"]            # optional: default = absolute argv[0]s
    profile = "default"                    # seccomp profile name
    oom_patterns = ["..."]                 # optional: runtime's own out-of-memory messages
    binds = [{ source = "/etc/php", target = "/etc/php" }]   # optional, read-only
    [extra_files]                          # optional: name = "content", put in /box to compile
    [env]                                  # optional, added to the sandbox's environment
    [options]                              # optional: allowed compiler options
    allowed = ["-O2"]                      # exact strings
    patterns = ['-std=c(99|11|17)']        # full-match regexes
    [limits.compile.default] / [limits.compile.max] / [limits.run.default] / [limits.run.max]
    cpu_time = 10  wall_time = 20  memory = "512M"  pids = 64  ...   (any Limits field)

In argv lists, an element "{options}" is replaced by the validated options and "{args}"
by the program's arguments; "{heap_mib}" and "{memory_mib}" inside an element are
replaced with numbers derived from the run's memory limit (for runtimes that size
their own heap: the JVM, Node).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jail import record
from jail.spec import DEFAULT_PATH, Bind, Limits, parse_size

DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "languages"
SECCOMP_DIRECTORY = Path(__file__).resolve().parent / "seccomp"

_LIMIT_FIELDS = record.fields(Limits)
_SIZE_FIELDS = {"memory", "output", "file_size", "disk", "stack"}
_ID_RE = re.compile(r"^[a-z][a-z0-9_+-]*$")
_TOP_KEYS = {
    "id",
    "name",
    "source",
    "version",
    "version_pattern",
    "compile",
    "artifacts",
    "run",
    "requires",
    "profile",
    "oom_patterns",
    "binds",
    "env",
    "options",
    "limits",
    "extra_files",
}


class LanguageError(ValueError):
    """A language definition file is invalid; the message names the file and field."""


@dataclass(frozen=True, slots=True)
class StageLimits:
    """Default limits of one stage (compile or run) and the most a request may ask."""

    default: Limits
    maximum: Limits

    def check(self, limits: Limits) -> list[str]:
        """Names of the fields of `limits` above this stage's maximum (empty: fine)."""
        return [name for name in _LIMIT_FIELDS if getattr(limits, name) > getattr(self.maximum, name)]


@dataclass(frozen=True, slots=True)
class OptionRules:
    """Compiler options a submission may pass: exact strings or full-match regexes."""

    allowed: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    max_count: int = 16

    def permits(self, option: str) -> bool:
        return option in self.allowed or any(p.fullmatch(option) for p in self.patterns)


@dataclass(frozen=True, slots=True)
class Language:
    """One language as the worker sees it. `version` is empty until detected."""

    id: str
    name: str
    source: str
    version_command: tuple[str, ...]
    version_pattern: re.Pattern[str] | None
    compile: tuple[str, ...] | None
    artifacts: tuple[str, ...]
    run: tuple[str, ...]
    requires: tuple[str, ...]
    profile: str
    oom_patterns: tuple[re.Pattern[bytes], ...]
    binds: tuple[Bind, ...]
    env: tuple[tuple[str, str], ...]
    options: OptionRules
    extra_files: tuple[tuple[str, bytes], ...]
    compile_limits: StageLimits
    run_limits: StageLimits
    path: str = ""
    version: str = ""
    toolchain: str = ""  # toolchain_fingerprint(): changes when a toolchain file is replaced

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    def missing(self) -> list[str]:
        """Required toolchain paths (binaries, jars) that do not exist on this host."""
        return [p for p in self.requires if not os.path.exists(p)]


# --------------------------------------------------------------------------- parsing


class _Fields:
    """Reads typed fields out of one parsed TOML table, naming file and field on error."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix

    def fail(self, key: str, why: str) -> LanguageError:
        return LanguageError(f"{self.path}: field '{self.prefix}{key}': {why}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if value is None:
            raise self.fail(key, "missing (a string is required)")
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def argv(self, key: str, required: bool = True) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            if required:
                raise self.fail(key, "missing (a list of strings, argv form, is required)")
            return None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"must be a non-empty list of non-empty strings, got {value!r}")
        return tuple(value)

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def regexes(self, key: str) -> tuple[re.Pattern[str], ...]:
        out = []
        for i, pattern in enumerate(self.strings(key)):
            try:
                out.append(re.compile(pattern))
            except re.error as e:
                raise self.fail(f"{key}[{i}]", f"invalid regex {pattern!r}: {e}") from None
        return tuple(out)

    def sub(self, key: str, required: bool = False) -> _Fields:
        value = self.table.get(key)
        if value is None:
            if required:
                raise self.fail(key, "missing table")
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {value!r}")
        return _Fields(self.path, value, f"{self.prefix}{key}.")


def _parse_size(f: _Fields, key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError:
            pass
    raise f.fail(key, f"must be a positive size in bytes or like '256M', got {value!r}")


def _parse_limits(f: _Fields, base: Limits) -> Limits:
    values: dict[str, Any] = {}
    for key, value in f.table.items():
        if key not in _LIMIT_FIELDS:
            raise f.fail(key, f"unknown limit; known: {', '.join(_LIMIT_FIELDS)}")
        if key in _SIZE_FIELDS:
            values[key] = _parse_size(f, key, value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            values[key] = type(getattr(base, key))(value)
        else:
            raise f.fail(key, f"must be a positive number, got {value!r}")
    return record.replace(base, **values)


def _parse_stage(f: _Fields) -> StageLimits:
    default = _parse_limits(f.sub("default", required=True), Limits())
    maximum = _parse_limits(f.sub("max"), default)
    for stage, limits in (("default", default), ("max", maximum)):
        for name, why in limits.problems():  # the jail could not honour it: refuse the file, not a run
            raise f.sub(stage).fail(name, why)
    over = StageLimits(default, maximum).check(default)
    if over:
        raise f.fail("default", f"above max for: {', '.join(over)}")
    return StageLimits(default, maximum)


def parse_language(path: Path) -> Language:
    """Parse and validate one definition file. Raises LanguageError naming file and field."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise LanguageError(f"{path}: invalid TOML: {e}") from None
    f = _Fields(path, data)
    for key in data:
        if key not in _TOP_KEYS:
            raise f.fail(key, f"unknown field; known: {', '.join(sorted(_TOP_KEYS))}")

    lang_id = f.text("id")
    if not _ID_RE.match(lang_id):
        raise f.fail("id", f"must match {_ID_RE.pattern}, got {lang_id!r}")
    if lang_id != path.stem:
        raise f.fail("id", f"{lang_id!r} differs from the file name {path.stem!r}")
    source = f.text("source")
    if "/" in source or source.startswith("."):
        raise f.fail("source", f"must be a plain file name, got {source!r}")

    compile_argv = f.argv("compile", required=False)
    run_argv = f.argv("run")
    assert run_argv is not None
    artifacts = f.strings("artifacts")
    if compile_argv is not None and not artifacts:
        raise f.fail("artifacts", "a compiled language must name what the compile leaves")
    for i, a in enumerate(artifacts):
        if a.startswith("/") or ".." in a.split("/"):
            raise f.fail(f"artifacts[{i}]", f"must be relative to /box, got {a!r}")

    version = f.argv("version", required=False) or ()
    vp = None
    if "version_pattern" in data:
        try:
            vp = re.compile(f.text("version_pattern"))
        except re.error as e:
            raise f.fail("version_pattern", f"invalid regex: {e}") from None

    requires = f.strings("requires") or tuple(
        dict.fromkeys(a[0] for a in (compile_argv, run_argv, version) if a and a[0].startswith("/"))
    )

    binds = []
    raw_binds = data.get("binds", [])
    if not isinstance(raw_binds, list):
        raise f.fail("binds", "must be a list of {source, target} tables")
    for i, b in enumerate(raw_binds):
        bf = _Fields(path, b if isinstance(b, dict) else {}, f"binds[{i}].")
        src, dst = bf.text("source"), bf.text("target")
        if not (src.startswith("/") and dst.startswith("/")):
            raise bf.fail("source", "source and target must be absolute paths")
        if b.get("writable", False):
            raise bf.fail("writable", "language binds are read-only")
        binds.append(Bind(src, dst))

    extra_f = f.sub("extra_files")
    extra = tuple((k, extra_f.text(k).encode()) for k in extra_f.table)
    for name, _ in extra:
        if "/" in name or name.startswith("."):
            raise extra_f.fail(name, "must be a plain file name")

    env_f = f.sub("env")
    env = tuple((k, env_f.text(k)) for k in env_f.table)

    opt_f = f.sub("options")
    max_count = opt_f.table.get("max_count", 16)
    if not isinstance(max_count, int) or max_count < 0:
        raise opt_f.fail("max_count", "must be a non-negative integer")
    options = OptionRules(opt_f.strings("allowed"), opt_f.regexes("patterns"), max_count)
    if options.allowed or options.patterns:
        if compile_argv is None or "{options}" not in compile_argv:
            raise f.fail("compile", "options are allowed but compile has no '{options}' element")

    oom = tuple(re.compile(p.pattern.encode()) for p in f.regexes("oom_patterns"))

    limits_f = f.sub("limits", required=True)
    run_limits = _parse_stage(limits_f.sub("run", required=True))
    if compile_argv is not None:
        compile_limits = _parse_stage(limits_f.sub("compile", required=True))
    else:
        compile_limits = StageLimits(Limits(), Limits())

    profile = f.text("profile", "default")
    if not re.fullmatch(r"[a-z0-9_-]+", profile) or not (SECCOMP_DIRECTORY / f"{profile}.toml").is_file():
        raise f.fail("profile", f"no seccomp profile {SECCOMP_DIRECTORY}/{profile}.toml")

    return Language(
        id=lang_id,
        name=f.text("name"),
        source=source,
        version_command=version,
        version_pattern=vp,
        compile=compile_argv,
        artifacts=artifacts,
        run=run_argv,
        requires=requires,
        profile=profile,
        oom_patterns=oom,
        binds=tuple(binds),
        env=env,
        options=options,
        extra_files=extra,
        compile_limits=compile_limits,
        run_limits=run_limits,
        path=str(path),
    )


@functools.cache
def _load(directory: Path) -> dict[str, Language]:
    if not directory.is_dir():
        raise LanguageError(f"{directory}: language directory does not exist")
    languages: dict[str, Language] = {}
    for path in sorted(directory.glob("*.toml")):
        lang = parse_language(path)
        languages[lang.id] = lang
    return languages


def load_languages(directory: str | Path | None = None) -> dict[str, Language]:
    """All definitions under `directory` (default: policies/languages/), parsed once."""
    return dict(_load(_directory(directory)))


def detect_version(lang: Language, timeout: float = 30.0) -> str:
    """Run the language's version command bare on the host; '' if it cannot be told."""
    if not lang.version_command:
        return "n/a"
    try:
        proc = subprocess.run(
            list(lang.version_command),
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env={"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (proc.stdout + b"\n" + proc.stderr).decode(errors="replace")
    if lang.version_pattern is not None:
        m = lang.version_pattern.search(text)
        return (m.group(1) if m.groups() else m.group(0)) if m else ""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def toolchain_fingerprint(paths: tuple[str, ...]) -> str:
    """What identifies the installed toolchain, beyond its version string: the real path, size
    and modification time of each required file. A package update (a Debian patch release keeps
    "12.2.0") replaces the files, and with them this; the compile cache keys on it."""
    h = hashlib.sha256()
    for p in paths:
        real = os.path.realpath(p)
        st = os.stat(real)
        h.update(f"{real}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:16]


@functools.cache
def _available(directory: Path) -> dict[str, Language]:
    present = [lang for lang in _load(directory).values() if not lang.missing()]
    # Version commands are independent and some are slow (a JVM start): run them at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(detect_version, present))
    return {
        lang.id: dataclasses.replace(lang, version=v, toolchain=toolchain_fingerprint(lang.requires))
        for lang, v in zip(present, versions, strict=True)
    }


def _directory(directory: str | Path | None) -> Path:
    """The cache key: the resolved directory (the default is resolved already: no syscalls per call)."""
    return DEFAULT_DIRECTORY if directory is None else Path(directory).resolve()


def available_languages(directory: str | Path | None = None) -> dict[str, Language]:
    """Languages whose toolchain exists on this host, with the detected version (cached)."""
    return dict(_available(_directory(directory)))
