"""A Judge0 request -> cellblock's: the switches (`base64_encoded`, `wait`, `fields`) and a
submission body, loosely typed as Rails casts it, translated into a /v1 body and validated by
the same rules (api/validation.py: parse_submission); refusals in Judge0's field names.

What Judge0 has and cellblock stores only to echo back (Submission.compat): the limits in
Judge0's units, `cpu_extra_time`, `number_of_runs`, `redirect_stderr_to_stdout`, the original
`compiler_options`, `command_line_arguments` and `additional_files`.
"""

from __future__ import annotations

import base64
import binascii
import io
import lzma
import math
import re
import shlex
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.judge0.catalog import Judge0Language
from api.judge0.errors import error, field_error, from_api_error
from api.validation import Accepted, parse_submission
from core import inputs
from core.apikeys import Principal
from core.limits import run_limits
from core.models import b64
from core.settings import Config
from jail.spec import BOUNDS, Limits
from policies.languages import Language

# Judge0 limit field -> (cellblock limit, cellblock units in one Judge0 unit): seconds and KB.
LIMITS = {
    "cpu_time_limit": ("cpu_time", 1),
    "wall_time_limit": ("wall_time", 1),
    "memory_limit": ("memory", 1024),
    "stack_limit": ("stack", 1024),
    "max_processes_and_or_threads": ("pids", 1),
    "max_file_size": ("file_size", 1024),
}
MAX_CPU_EXTRA_TIME = 5.0  # accepted and echoed; the jail stops a run at its CPU limit, no extra
MAX_RUNS = 20
MAX_SHELL_TEXT = 512
# What reading a damaged or unusual zip raises (bad headers, truncated or corrupt members of each
# compression method, encryption).
_UNREADABLE = (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, OSError, zlib.error, lzma.LZMAError)
_SHELL_STRIPPED = str.maketrans("", "", "$&;<>|`")  # Judge0 strips these before splitting
_TRUE = frozenset({"true", "1", "t", "on", "yes"})
_FALSE = frozenset({"false", "0", "f", "off", "no", ""})

# /v1 field (its first part) -> the Judge0 field a refusal names.
_FIELD = {
    "source": "source_code",
    "files": "additional_files",
    "language": "language_id",
    "stdin": "stdin",
    "args": "command_line_arguments",
    "compile_options": "compiler_options",
    "callback_url": "callback_url",
    "checker": "expected_output",
}
_LIMIT_FIELD = {name: field for field, (name, _unit) in LIMITS.items()}

DEFAULT_FIELDS = ("token", "time", "memory", "stdout", "stderr", "compile_output", "message", "status")
# Exactly what Judge0 1.13.1 answers for fields=*: the official SDK refuses any other key.
ALL_FIELDS = (
    "source_code", "language_id", "stdin", "expected_output", "stdout", "status_id", "created_at",
    "finished_at", "time", "memory", "stderr", "token", "number_of_runs", "cpu_time_limit",
    "cpu_extra_time", "wall_time_limit", "memory_limit", "stack_limit", "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit", "enable_per_process_and_thread_memory_limit",
    "max_file_size", "compile_output", "exit_code", "exit_signal", "message", "wall_time",
    "compiler_options", "command_line_arguments", "redirect_stderr_to_stdout", "callback_url",
    "additional_files", "enable_network", "status", "language",
)  # fmt: skip


def judge0_field(v1_field: str) -> str:
    """The Judge0 field a /v1 field came from: `limits.memory` -> `memory_limit`, ..."""
    head = re.split(r"[.\[]", v1_field, maxsplit=1)[0]
    if head == "limits":
        return _LIMIT_FIELD.get(v1_field.partition(".")[2], "memory_limit")
    if head == "tests":
        return "expected_output" if v1_field.endswith("expected_output") else "stdin"
    return _FIELD.get(head, head)


def flag(value: Any) -> bool | None:
    """A Rails boolean: true/false, "true"/"false", 1/0, ...; None when absent; else ValueError."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)


@dataclass(frozen=True, slots=True)
class Switches:
    """The query switches (Rails also takes them from the body)."""

    base64: bool
    wait: bool
    fields: tuple[str, ...]


def switches(query: Mapping[str, str], body: Any = None, fields: bool = True) -> Switches:
    """`base64_encoded` and `wait` are true only when they say "true" (v1.13.1); `fields`: names,
    `*` for all, default the 8 of DEFAULT_FIELDS; an unknown name is 400 `invalid fields`
    (`fields=False`: not read, as a batch POST ignores it)."""
    extra = body if isinstance(body, dict) else {}

    def switch(name: str) -> Any:
        return query.get(name, extra.get(name))

    names = [n.strip() for n in str(switch("fields") or "").split(",") if n.strip()] if fields else []
    unknown = [n for n in names if n not in ALL_FIELDS and n != "*"]
    if unknown:
        raise error(400, f"invalid fields: [{', '.join(unknown)}]")
    chosen = ALL_FIELDS if "*" in names else tuple(dict.fromkeys(names)) or DEFAULT_FIELDS
    return Switches(str(switch("base64_encoded")).lower() == "true", str(switch("wait")).lower() == "true", chosen)


def _number(body: dict[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise field_error(field, "is not a number")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # a JSON integer may have any number of digits
        raise field_error(field, "is not a number") from None
    if not math.isfinite(number):
        raise field_error(field, "is not a number")
    return number


def _flag(body: dict[str, Any], field: str) -> bool:
    try:
        return bool(flag(body.get(field)))
    except ValueError:
        raise field_error(field, "is not a boolean") from None


def _text(body: dict[str, Any], field: str, encoded: bool) -> bytes | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise field_error(field, "is invalid")
    if encoded:
        return _unbase64(value, field)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise field_error(field, "is not valid UTF-8") from None


def _unbase64(value: str, field: str) -> bytes:
    """Strict base64 but for line breaks (Ruby's encode64 puts one every 60 characters)."""
    try:
        return base64.b64decode(re.sub(r"\s+", "", value).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise field_error(field, "is not valid base64") from None


def _language(body: dict[str, Any], table: Mapping[int, Judge0Language]) -> Judge0Language:
    number = _number(body, "language_id") if body.get("language_id") is not None else None
    if number is None:
        raise field_error("language_id", "can't be blank")
    found = table.get(int(number)) if number.is_integer() else None
    if found is None:
        raise field_error("language_id", f"language with id {body['language_id']} doesn't exist")
    return found


def _shell_words(body: dict[str, Any], field: str) -> tuple[str | None, list[str]]:
    value = body.get(field)
    if value is None or value == "":
        return None, []
    if not isinstance(value, str):
        raise field_error(field, "is invalid")
    if len(value) > MAX_SHELL_TEXT:
        raise field_error(field, f"is too long (maximum is {MAX_SHELL_TEXT} characters)")
    try:
        return value, shlex.split(value.translate(_SHELL_STRIPPED))
    except ValueError as exc:
        raise field_error(field, f"cannot be split into arguments: {exc}") from None


def _additional_files(body: dict[str, Any], cfg: Config, main: str) -> tuple[str | None, dict[str, bytes]]:
    """The base64 zip of `additional_files` (always base64, whatever `base64_encoded` says),
    extracted in memory (names by core.inputs' rules, directories included), at most
    CELLBLOCK_MAX_SOURCE bytes unpacked."""
    value = body.get("additional_files")
    if value is None or value == "":
        return None, {}
    if not isinstance(value, str):
        raise field_error("additional_files", "is invalid")
    raw = _unbase64(value, "additional_files")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) >= inputs.MAX_FILES:
                raise field_error("additional_files", f"at most {inputs.MAX_FILES - 1} files")
            if sum(m.file_size for m in members) > cfg.max_source:
                raise field_error("additional_files", f"unpacks to more than {cfg.max_source} bytes")
            files: dict[str, bytes] = {}
            for m in members:
                if m.filename == main:
                    raise field_error("additional_files", f"{m.filename!r}: would replace the source")
                with archive.open(m) as member:
                    files[m.filename] = member.read(cfg.max_source + 1)
                if len(files[m.filename]) > m.file_size:  # the header lied about the size
                    raise field_error("additional_files", f"unpacks to more than {cfg.max_source} bytes")
    except _UNREADABLE as exc:
        raise field_error("additional_files", f"is not a zip archive we can read: {exc}") from None
    return value, files


def _limits(body: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for field, (name, unit) in LIMITS.items():
        number = _number(body, field)
        if number is not None:
            value = number * unit
            out[name] = int(value) if BOUNDS[name].integer and value.is_integer() else value
    return out


def _refuse_switched_on(body: dict[str, Any]) -> None:
    for field, why in (
        ("enable_network", "enabling network is not allowed"),
        ("enable_per_process_and_thread_time_limit", "setting per process and thread time limit is not allowed"),
        ("enable_per_process_and_thread_memory_limit", "setting per process and thread memory limit is not allowed"),
    ):
        if _flag(body, field):
            raise field_error(field, why)


def _runs(body: dict[str, Any], cfg: Config, stdin: bytes) -> int:
    number = _number(body, "number_of_runs")
    if number is None:
        return 1
    most = min(MAX_RUNS, cfg.max_tests)
    if not number.is_integer() or not 1 <= number <= most:
        raise field_error("number_of_runs", f"must be a whole number from 1 to {most}")
    if len(stdin) * number > cfg.max_input:
        raise field_error("number_of_runs", f"times the stdin is above {cfg.max_input} bytes (CELLBLOCK_MAX_INPUT)")
    return int(number)


def _cpu_extra_time(body: dict[str, Any]) -> float:
    number = _number(body, "cpu_extra_time")
    if number is None:
        return 0.0
    if not 0 <= number <= MAX_CPU_EXTRA_TIME:
        raise field_error("cpu_extra_time", f"must be from 0 to {MAX_CPU_EXTRA_TIME}")
    return number


def judge0_limits_of(limits: Limits) -> dict[str, float]:
    """`limits` in Judge0's fields and units (seconds, KB, counts)."""
    return {field: getattr(limits, name) // unit if BOUNDS[name].integer else getattr(limits, name) / unit
            for field, (name, unit) in LIMITS.items()}  # fmt: skip


def parse(
    body: Any,
    encoded: bool,
    cfg: Config,
    table: Mapping[int, Judge0Language],
    available: dict[str, Language],
    principal: Principal | None,
) -> Accepted:
    """A Judge0 submission (a JSON object; unknown fields ignored) -> a validated submission;
    Judge0Error (422 naming the field) when refused."""
    if not isinstance(body, dict):
        body = {}
    lang = _language(body, table)
    language = lang.language
    source = _text(body, "source_code", encoded)
    if not source:
        raise field_error("source_code", "can't be blank")
    stdin = _text(body, "stdin", encoded) or b""
    expected = _text(body, "expected_output", encoded)
    options_text, options = _shell_words(body, "compiler_options")
    if options and not language.compiled:
        raise field_error("compiler_options", "setting compiler options is only allowed for compiled languages")
    args_text, args = _shell_words(body, "command_line_arguments")
    _refuse_switched_on(body)
    runs = _runs(body, cfg, stdin)
    merged = _flag(body, "redirect_stderr_to_stdout")
    if merged and expected is not None:  # cellblock's checkers compare stdout alone
        raise field_error("redirect_stderr_to_stdout", "cannot be combined with expected_output here")
    zipped, extra = _additional_files(body, cfg, language.source)
    v1: dict[str, Any] = {
        "language": language.id,
        "encoding": "base64",
        "args": args,
        "compile_options": options,
        "limits": _limits(body),
        "callback_url": body.get("callback_url") or None,
    }
    if extra:
        v1["files"] = {language.source: b64(source), **{name: b64(data) for name, data in extra.items()}}
    else:
        v1["source"] = b64(source)
    if expected is None:
        v1["stdin"] = b64(stdin)
    else:
        v1["tests"] = [{"input": b64(stdin), "expected_output": b64(expected)}]
        v1["checker"] = "lines"
    try:
        accepted = parse_submission(v1, cfg, available, principal)
    except ApiError as exc:
        raise from_api_error(exc, judge0_field) from None
    sub = accepted.submission
    if runs > 1:  # Judge0 runs it that many times and stops at the first that is not accepted
        sub.tests = sub.tests * runs
        sub.stop_on_first_failure = True
    sub.compat = {
        "api": "judge0",
        "language_id": lang.id,
        "language_name": lang.name,
        "source_file": language.source,
        "number_of_runs": runs,
        "cpu_extra_time": _cpu_extra_time(body),
        "redirect_stderr_to_stdout": merged,
        "compiler_options": options_text,
        "command_line_arguments": args_text,
        "additional_files": zipped,
        "limits": judge0_limits_of(run_limits(language, sub.limits)),
    }
    return accepted
