"""The rules a submission's own inputs obey: file names, program arguments, compiler options,
the patterns of the files it wants back (`collect`).

Stated once here; the API refuses what breaks them (422 naming the field), and the worker's
toolchain applies the same functions to whatever enters a compile or a run. The jail guards
its own paths on top (jail/rootfs.py: sandbox_path), as a boundary of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from policies.languages import Language

MAX_FILES = 32
MAX_FILE_DEPTH = 8  # directories a file name may go down: `lib/util.py` goes down one
MAX_ARGS = 64
MAX_ARG_LEN = 4096
MAX_OPTION_LEN = 128
MAX_COLLECT = 16  # patterns in `collect`
MAX_COLLECT_LEN = 256  # characters of one pattern
_FILE_NAME = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_.+$-]{0,99}")  # `$`: Java class names (My$Main.java)


class InputError(ValueError):
    """User input that the rules refuse: `field` names it (e.g. "files", "args"), `reason` says why."""

    def __init__(self, field: str, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.code = code


def normalize_files(language: Language, files: Mapping[str, bytes]) -> dict[str, bytes]:
    """Check file names; a single file of any name becomes the language's source file.

    A name is a path relative to the work directory: up to MAX_FILE_DEPTH directories and the
    file, separated by `/`, each a plain name of [A-Za-z0-9_.+$-] that starts with neither `.`
    nor `-` (so no `..`, no hidden file, nothing an option parser would take). A directory is
    made by naming a file in it; a name may not be both a file and another one's directory."""
    if not files:
        raise InputError("files", "no source files")
    if len(files) > MAX_FILES:
        raise InputError("files", f"at most {MAX_FILES} files")
    if len(files) == 1 and language.source not in files:
        return {language.source: next(iter(files.values()))}
    for name in files:
        parts = name.split("/")
        if len(parts) > MAX_FILE_DEPTH + 1 or not all(_FILE_NAME.fullmatch(part) for part in parts):
            raise InputError(
                "files",
                f"invalid file name {name!r}: names of [A-Za-z0-9_.+$-], not starting with . or -,"
                f" in at most {MAX_FILE_DEPTH} directories separated by /",
            )
    # The language's own files (a compile's extra_files) go into the same directory.
    every = {*files, *(name for name, _ in language.extra_files)}
    directories = {name.rsplit("/", i)[0] for name in every for i in range(1, name.count("/") + 1)}
    both = sorted(directories & every)
    if both:
        raise InputError("files", f"{both[0]!r} is a file and the directory of another file")
    if language.source not in files:
        raise InputError("files", f"{language.name} needs a file named {language.source!r}")
    return dict(files)


def check_args(args: Sequence[str], field: str = "args") -> list[str]:
    """Program arguments (or compiler options, by `field`): argv elements, never shell text."""
    if len(args) > MAX_ARGS:
        raise InputError(field, f"at most {MAX_ARGS} items, got {len(args)}")
    for a in args:
        if not isinstance(a, str) or len(a) > MAX_ARG_LEN or "\0" in a:
            raise InputError(field, f"items must be strings of at most {MAX_ARG_LEN} characters, without NUL")
    return list(args)


def check_options(language: Language, options: Sequence[str]) -> list[str]:
    """Compiler options: the language's whitelist, at most its count."""
    options = check_args(options, "compile_options")
    if options and not language.compiled:
        raise InputError("compile_options", f"{language.id} is not compiled")
    if len(options) > language.options.max_count:
        raise InputError("compile_options", f"at most {language.options.max_count} options")
    for i, opt in enumerate(options):
        if not opt or len(opt) > MAX_OPTION_LEN or not language.options.permits(opt):
            raise InputError(f"compile_options[{i}]", f"option {opt!r} is not allowed for {language.id}")
    return options


def check_collect(patterns: Sequence[str]) -> list[str]:
    """The `collect` patterns: each a path relative to /box (no leading '/', no '..' component,
    no NUL, not empty, at most MAX_COLLECT_LEN characters) whose components may be shell-style
    globs (`*`, `?`, `[...]` by fnmatch's rules, within one component); at most MAX_COLLECT.
    The jail reads what they match (jail/rootfs.py: collect) and checks the same on its side."""
    if len(patterns) > MAX_COLLECT:
        raise InputError("collect", f"at most {MAX_COLLECT} patterns, got {len(patterns)}")
    for i, p in enumerate(patterns):
        field = f"collect[{i}]"
        if not isinstance(p, str) or not p or len(p) > MAX_COLLECT_LEN or "\0" in p:
            raise InputError(field, f"must be a non-empty string of at most {MAX_COLLECT_LEN} characters, without NUL")
        parts = p.split("/")
        if p.startswith("/") or ".." in parts:
            raise InputError(field, f"{p!r} must be relative to the work directory /box, without '..'")
        if all(part in ("", ".") for part in parts):
            raise InputError(field, f"{p!r} names no file: give a name or a pattern such as '*.json'")
    return list(patterns)
