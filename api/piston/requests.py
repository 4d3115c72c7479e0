"""A Piston `/execute` body -> cellblock's submission, through the same validation as /v1
(api/validation.py: parse_submission); refusals as Piston words them (400 {"message"}).

Piston's units: times in milliseconds, memory in bytes. -1 and 0 (what clients send when they
mean "no limit") take the language's default; values above cellblock's ceiling for the
language are refused, never clamped. compile_* limits are checked the same way but not
applied: a language's compile limits are its policy's.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError, TooMany
from api.piston.runtimes import Runtime, find
from api.validation import Accepted, parse_submission
from core.apikeys import Principal
from core.models import b64
from core.settings import Config
from jail.spec import Limits
from policies.languages import Language

# Piston limit field -> (cellblock limit, Piston units in one cellblock unit): ms and bytes.
RUN_LIMITS = {"run_timeout": ("wall_time", 1000), "run_cpu_time": ("cpu_time", 1000), "run_memory_limit": ("memory", 1)}
COMPILE_LIMITS = {
    "compile_timeout": ("wall_time", 1000),
    "compile_cpu_time": ("cpu_time", 1000),
    "compile_memory_limit": ("memory", 1),
}
_FIELD = {"source": "files", "files": "files", "stdin": "stdin", "args": "args", "language": "language"}
_LIMIT_FIELD = {name: field for field, (name, _unit) in RUN_LIMITS.items()}
# Java: Piston runs the source launcher, so the class may have any name; cellblock runs Main.
# Comments and literals, each matched in one pass (an unclosed one runs to the end), so that the
# scan stays linear in the source's size whatever the source.
_JAVA_NOISE = re.compile(
    r'//[^\n]*|/\*.*?(?:\*/|\Z)|""".*?(?:"""|\Z)|"(?:\\.|[^"\\\n])*"?|\'(?:\\.|[^\'\\\n])*\'?', re.S
)
_JAVA_TYPE = re.compile(r"\b(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)")
_JAVA_PUBLIC = re.compile(r"\bpublic\b")
_JAVA_MAIN = re.compile(r"\bstatic\b[^;{}()=]{0,200}?\bvoid\s+main\s*\(")
# `[ \t]*`, not `\s*`: from every line start `\s*` would scan all the blank lines below it again.
_JAVA_PACKAGE = re.compile(r"^[ \t]*package\s+[\w.]+\s*;", re.M)
_LAUNCHER = "class Main {{ public static void main(String[] a) throws Throwable {{ {main}.main(a); }} }}\n"


class PistonError(Exception):
    """A refusal: `status` (400 unless cellblock's own says otherwise) and Piston's message."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.headers = headers or {}


def piston_field(v1_field: str) -> str:
    head = re.split(r"[.\[]", v1_field, maxsplit=1)[0]
    if head == "limits":
        return _LIMIT_FIELD.get(v1_field.partition(".")[2], "run_memory_limit")
    return _FIELD.get(head, head)


@dataclass(slots=True)
class Execution:
    accepted: Accepted
    runtime: Runtime


def _string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise PistonError(f"{field} is required as a string")
    return value


def _decode(file: dict[str, Any], i: int) -> tuple[bytes, bool]:
    """A file's bytes, and whether it counts as utf8 (Piston: an unknown encoding is written
    as utf8 but does not count)."""
    content, encoding = file.get("content"), file.get("encoding", "utf8")
    if not isinstance(content, str):
        raise PistonError(f"files[{i}].content is required as a string")
    try:
        if encoding == "base64":
            return base64.b64decode(content, validate=True), False
        if encoding == "hex":
            return bytes.fromhex(content), False
        return _utf8(content, f"files[{i}].content"), encoding in ("utf8", None)
    except (binascii.Error, ValueError):
        raise PistonError(f"files[{i}].content is not valid {encoding}") from None


def _utf8(text: str, field: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise PistonError(f"{field} is not valid UTF-8") from None


def _java_types(source: str) -> list[tuple[str, bool, str]]:
    """The top-level types of a Java source: (name, public, body), comments and literals aside."""
    code = _JAVA_NOISE.sub(" ", source)
    found, depth, head_at, body_at, head = [], 0, 0, 0, ""
    for brace in re.finditer(r"[{}]", code):
        if brace.group() == "{":
            if depth == 0:
                head, body_at = code[head_at : brace.start()], brace.end()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                declared = _JAVA_TYPE.findall(head)
                if declared:
                    found.append((declared[-1], bool(_JAVA_PUBLIC.search(head)), code[body_at : brace.start()]))
                head_at = brace.end()
    return found


def _java_main(text: bytes) -> str:
    """The class Piston's launcher would run: the top-level one that declares `main` (public
    first, then Main), else the public one, else Main."""
    types = _java_types(text.decode("utf-8", errors="replace"))
    with_main = [t for t in types if _JAVA_MAIN.search(t[2])]
    for group in (with_main, types):
        for pick in (lambda t: t[1], lambda t: t[0] == "Main", lambda t: True):
            chosen = [t for t in group if pick(t)]
            if chosen:
                return chosen[0][0]
    return "Main"


def _files(body: dict[str, Any], runtime: Runtime, cfg: Config) -> dict[str, bytes]:
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise PistonError("files is required as an array")
    language = runtime.cellblock
    out: dict[str, bytes] = {}
    utf8 = False
    main = ""  # files[0]'s own name: Piston runs the file of that name
    for i, file in enumerate(files):
        if not isinstance(file, dict):
            raise PistonError(f"files[{i}].content is required as a string")
        data, counts = _decode(file, i)
        utf8 |= counts
        given = file.get("name")
        name = given if isinstance(given, str) and given else f"file{i}.code"
        if i == 0:
            main = name
        elif name != main and name == language.source:
            raise PistonError(f"files[{i}].name {name} is the name the main file (files[0]) runs under here")
        # Piston writes the files in order: a later one of the same name replaces the earlier,
        # the main file's included (pistonpy sends it twice).
        out[language.source if name == main else name] = data
    if not utf8 and runtime.language != "file":
        raise PistonError("files must include at least one utf8 encoded file")
    total = sum(len(data) for data in out.values())
    if total > cfg.max_source:  # before any look into them
        raise PistonError(f"files are {total} bytes together, at most {cfg.max_source} (CELLBLOCK_MAX_SOURCE)")
    if language.id == "java":
        if _JAVA_PACKAGE.search(_JAVA_NOISE.sub(" ", out[language.source].decode("utf-8", errors="replace"))):
            raise PistonError("files[0]: a package declaration is not supported here: remove it")
        main = _java_main(out[language.source])
        if main != "Main" and f"{main}.java" not in out:  # run it through a Main that calls it
            out[f"{main}.java"] = out.pop(language.source)
            out[language.source] = _LAUNCHER.format(main=main).encode()
    return out


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer may have any number of digits
        return False


def _limit(body: dict[str, Any], field: str, ceiling: float) -> float | None:
    """A Piston limit: None when not given, 0 or -1 (the default); else checked by Piston's rules."""
    value = body.get(field)
    if not value or value == -1:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise PistonError(f"If specified, {field} must be a number")
    if value < 0:
        raise PistonError(f"{field} must be non-negative")
    if value > ceiling:
        raise PistonError(f"{field} cannot exceed the configured limit of {ceiling:g}")
    return float(value)


def _limits(body: dict[str, Any], language: Language) -> dict[str, float]:
    run = language.run_limits.maximum
    out: dict[str, float] = {}
    for field, (name, unit) in RUN_LIMITS.items():
        value = _limit(body, field, getattr(run, name) * unit)
        if value is not None:
            out[name] = value / unit if name != "memory" else int(value)
    compile_max: Limits | None = language.compile_limits.maximum if language.compiled else None
    for field, (name, unit) in COMPILE_LIMITS.items():
        if compile_max is not None:
            _limit(body, field, getattr(compile_max, name) * unit)
    return out


def parse(body: Any, cfg: Config, available: dict[str, Language], principal: Principal | None) -> Execution:
    if not isinstance(body, dict):
        raise PistonError("the body must be a JSON object")
    name, selector = _string(body, "language"), _string(body, "version")
    if not isinstance(body.get("files"), list):
        raise PistonError("files is required as an array")
    runtime = find(available, name, selector)
    if runtime is None:
        raise PistonError(f"{name}-{selector} runtime is unknown")
    stdin = body.get("stdin") or ""
    if not isinstance(stdin, str):
        raise PistonError("stdin must be a string")
    if not stdin.endswith("\n"):  # as Piston does
        stdin += "\n"
    args = body.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise PistonError("args must be an array of strings")
    v1 = {
        "language": runtime.cellblock.id,
        "encoding": "base64",
        "files": {n: b64(data) for n, data in _files(body, runtime, cfg).items()},
        "stdin": b64(_utf8(stdin, "stdin")),
        "args": args,
        "limits": _limits(body, runtime.cellblock),
    }
    try:
        accepted = parse_submission(v1, cfg, available, principal)
    except ApiError as exc:
        raise refusal(exc) from None
    accepted.submission.compat = {"api": "piston", "language": runtime.language, "version": runtime.version}
    return Execution(accepted, runtime)


def refusal(exc: ApiError) -> PistonError:
    """cellblock's refusal as Piston words it: 400 for what the request got wrong."""
    status = 400 if exc.status in (403, 422) else exc.status
    where = f"{piston_field(exc.field)}: " if exc.field and exc.status in (400, 403, 422) else ""
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooMany) else None
    return PistonError(where + exc.reason, status, headers)
