"""Turn a request body into a Submission, or refuse it with a 4xx naming the field and reason.

Pure functions over parsed JSON: no I/O, so tests (and hypothesis) can call them directly.
Limits above the language's ceilings are refused (422), never silently clamped.
"""

from __future__ import annotations

import binascii
import dataclasses
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.errors import ApiError, invalid
from jail.spec import Limits
from worker.config import Config
from worker.judge import job_timeout
from worker.models import Checker, CheckerKind, Submission, TestCase, unb64
from worker.toolchain import MAX_ARG_LEN, MAX_ARGS, InputError, normalize_files

_LIMIT_FIELDS = {f.name: f for f in dataclasses.fields(Limits)}
MAX_FILES = 32
_KNOWN = {
    "language", "source", "files", "stdin", "args", "compile_options", "limits", "tests",
    "checker", "encoding", "wait", "callback_url", "stop_on_first_failure",
}


@dataclass(slots=True)
class Accepted:
    """A valid request: the submission, its language, and how long the client will wait."""

    submission: Submission
    language: Any
    grace: int  # seconds added to the job's computed timeout
    wait: float  # 0: answer 201 at once

    @property
    def job_timeout(self) -> int:
        """Computed when asked, not at parsing: an API key's ceilings may lower the limits since."""
        return job_timeout(self.submission, self.language, self.grace)


def _text(value: Any, field: str, encoding: str) -> bytes:
    if not isinstance(value, str):
        raise invalid(field, f"must be a string, got {type(value).__name__}")
    if encoding == "base64":
        try:
            return unb64(value)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise invalid(field, "is not valid base64", "invalid_base64") from None
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, "is not valid UTF-8 (lone surrogate)") from None


def _strings(value: Any, field: str, most: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(field, "must be a list of strings")
    if len(value) > most:
        raise invalid(field, f"at most {most} items, got {len(value)}")
    if any("\x00" in v or len(v) > MAX_ARG_LEN for v in value):
        raise invalid(field, f"items must be at most {MAX_ARG_LEN} characters, without NUL")
    return list(value)


def _bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise invalid(field, "must be a positive number")
    return float(value)


def _limits(value: Any, language: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("limits", "must be an object")
    out: dict[str, float] = {}
    maximum: Limits = language.run_limits.maximum
    for key, raw in value.items():
        field = f"limits.{key}"
        if key not in _LIMIT_FIELDS:
            raise invalid(field, f"unknown limit; known: {', '.join(_LIMIT_FIELDS)}")
        number = _number(raw, field)
        if _LIMIT_FIELDS[key].type in ("int", int) and number != int(number):
            raise invalid(field, "must be an integer")
        ceiling = getattr(maximum, key)
        if number > ceiling:
            raise invalid(field, f"{raw} is above the ceiling {ceiling} for {language.id}", "above_ceiling")
        out[key] = number
    return out


def _bounded(total: int, most: int, setting: str, field: str, what: str) -> None:
    if total > most:
        raise invalid(field, f"{what} is {total} bytes, at most {most} ({setting})", "too_large")


def _files(body: dict[str, Any], language: Any, cfg: Config, encoding: str) -> dict[str, bytes]:
    source, files = body.get("source"), body.get("files")
    if source is not None and files is not None:
        raise invalid("source", "give either source or files, not both")
    if source is not None:
        text = _text(source, "source", encoding)
        _bounded(len(text), cfg.max_source, "CELLBLOCK_MAX_SOURCE", "source", "the source")
        return {language.source: text}
    if files is None:
        raise invalid("source", "missing: give source (a string) or files (an object)", "missing")
    if not isinstance(files, dict) or not files:
        raise invalid("files", "must be a non-empty object of file name -> content")
    if len(files) > MAX_FILES:
        raise invalid("files", f"at most {MAX_FILES} files")
    decoded = {k: _text(v, f"files.{k}", encoding) for k, v in files.items()}
    _bounded(sum(len(v) for v in decoded.values()), cfg.max_source, "CELLBLOCK_MAX_SOURCE", "files",
             "the files together")
    try:
        return normalize_files(language, decoded)
    except InputError as exc:
        raise invalid("files", str(exc)) from None


def _tests(body: dict[str, Any], cfg: Config, encoding: str) -> list[TestCase]:
    tests, stdin = body.get("tests"), body.get("stdin")
    if tests is None:
        text = _text(stdin, "stdin", encoding) if stdin is not None else b""
        _bounded(len(text), cfg.max_input, "CELLBLOCK_MAX_INPUT", "stdin", "stdin")
        return [TestCase(input=text)]
    if stdin is not None:
        raise invalid("stdin", "give either stdin (run mode) or tests (judge mode), not both")
    if not isinstance(tests, list) or not tests:
        raise invalid("tests", "must be a non-empty list")
    if len(tests) > cfg.max_tests:
        raise invalid("tests", f"at most {cfg.max_tests} tests, got {len(tests)}", "too_many_tests")
    out = []
    for i, t in enumerate(tests):
        if not isinstance(t, dict):
            raise invalid(f"tests[{i}]", "must be an object {input, expected_output}")
        unknown = set(t) - {"input", "expected_output"}
        if unknown:
            raise invalid(f"tests[{i}].{sorted(unknown)[0]}", "unknown field")
        inp = _text(t.get("input", ""), f"tests[{i}].input", encoding)
        if "expected_output" not in t:
            raise invalid(f"tests[{i}].expected_output", "missing", "missing")
        out.append(TestCase(inp, _text(t["expected_output"], f"tests[{i}].expected_output", encoding)))
    _bounded(sum(len(t.input) + len(t.expected_output or b"") for t in out), cfg.max_input,
             "CELLBLOCK_MAX_INPUT", "tests", "every test's input and expected output together")
    return out


def _checker(value: Any, languages: dict[str, Any], encoding: str) -> Checker:
    if value is None:
        return Checker()
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise invalid("checker", "must be a name (exact, tokens, float) or an object {type, ...}")
    kind_raw = value.get("type")
    try:
        kind = CheckerKind(str(kind_raw))
    except ValueError:
        raise invalid("checker.type", f"must be one of {', '.join(k.value for k in CheckerKind)}") from None
    checker = Checker(kind=kind)
    if "tolerance" in value:
        if kind is not CheckerKind.FLOAT:
            raise invalid("checker.tolerance", "only for the float checker")
        tol = value["tolerance"]
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol < 1e6):
            raise invalid("checker.tolerance", "must be a number in [0, 1e6)")
        checker.tolerance = float(tol)
    if kind is CheckerKind.CUSTOM:
        lang_id = value.get("language")
        lang = languages.get(lang_id) if isinstance(lang_id, str) else None
        if lang is None:
            raise invalid("checker.language", f"unknown language {lang_id!r}", "unknown_language")
        checker.language = lang.id
        checker.files = {lang.source: _text(value.get("source"), "checker.source", encoding)}
    return checker


def _wait(value: Any, cfg: Config) -> float:
    if value is None or value is False:
        return 0.0
    if value is True:
        return cfg.max_wait
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise invalid("wait", "must be true, false or a number of seconds")
    if value > cfg.max_wait:
        raise invalid("wait", f"{value} s is above the ceiling {cfg.max_wait} s", "above_ceiling")
    return float(value)


def _callback(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise invalid("callback_url", "must be a URL string")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("callback_url", "must be an absolute http(s) URL")
    return value


def parse_submission(body: Any, cfg: Config, languages: dict[str, Any], prefix: str = "") -> Accepted:
    """Validate one submission object. `prefix` (e.g. "submissions[3].") prefixes field names."""
    try:
        return _parse(body, cfg, languages)
    except ApiError as exc:
        if prefix:
            exc.field = prefix + (exc.field or "")
        raise


def _parse(body: Any, cfg: Config, languages: dict[str, Any]) -> Accepted:
    if not isinstance(body, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object", "body")
    unknown = set(body) - _KNOWN
    if unknown:
        raise invalid(sorted(unknown)[0], f"unknown field; known: {', '.join(sorted(_KNOWN))}", "unknown_field")
    lang_id = body.get("language")
    if lang_id is None:
        raise invalid("language", "missing", "missing")
    if not isinstance(lang_id, str):
        raise invalid("language", "must be a string")
    language = languages.get(lang_id)
    if language is None:
        raise invalid("language", f"unknown language {lang_id!r}; see GET /v1/languages", "unknown_language")
    encoding = body.get("encoding", "utf-8")
    if encoding not in ("utf-8", "base64"):
        raise invalid("encoding", "must be utf-8 or base64")
    files = _files(body, language, cfg, encoding)
    options = _strings(body.get("compile_options"), "compile_options", MAX_ARGS)
    if options and not language.compiled:
        raise invalid("compile_options", f"{language.id} is not compiled")
    if len(options) > language.options.max_count:
        raise invalid("compile_options", f"at most {language.options.max_count} options")
    for i, opt in enumerate(options):
        if not language.options.permits(opt):
            raise invalid(f"compile_options[{i}]", f"option {opt!r} is not allowed for {language.id}")
    sub = Submission(
        id=uuid.uuid4().hex,
        language=language.id,
        files=files,
        tests=_tests(body, cfg, encoding),
        args=_strings(body.get("args"), "args", MAX_ARGS),
        compile_options=options,
        limits=_limits(body.get("limits"), language),
        checker=_checker(body.get("checker"), languages, encoding),
        encoding=encoding,
        callback_url=_callback(body.get("callback_url")),
        stop_on_first_failure=_bool(body.get("stop_on_first_failure"), "stop_on_first_failure"),
        created_at=time.time(),
    )
    if sub.checker.kind is not CheckerKind.EXACT and not sub.judge_mode:
        raise invalid("checker", "a checker needs tests with expected_output")
    return Accepted(sub, language, cfg.job_grace, _wait(body.get("wait"), cfg))
