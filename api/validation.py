"""Turn a request body into a Submission, or refuse it with a 4xx naming the field and reason.

Pure functions over parsed JSON: no I/O, so tests (and hypothesis) can call them directly.
The rules themselves are core's: file names, arguments and options (core/inputs.py), limits
(core/limits.py: the jail's bounds, the language's maximum, the key's ceilings; refused with
422, never silently clamped). This module reads the JSON's shape and names the fields.
"""

from __future__ import annotations

import binascii
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.errors import ApiError, invalid, refused
from core import destinations, inputs, limits
from core.apikeys import Principal
from core.inputs import InputError
from core.models import Checker, CheckerKind, Interactor, Submission, TestCase, unb64
from core.settings import Config
from policies.languages import Language

SUBMISSION_FIELDS = {
    "language",
    "source",
    "files",
    "stdin",
    "args",
    "compile_options",
    "limits",
    "tests",
    "checker",
    "encoding",
    "wait",
    "callback_url",
    "stop_on_first_failure",
    "collect",
    "stream_output",
    "interactor",
}
CHECKER_FIELDS = {"type", "tolerance", "language", "source"}  # what a `checker` object may hold
BATCH_FIELDS = {"submissions"}  # POST /v1/submissions/batch's body
# What the first message of an interactive session (api/sessions.py) may hold: one run, its
# stdin typed live.
SESSION_FIELDS = {"language", "source", "files", "args", "compile_options", "limits", "encoding", "idle_timeout"}


@dataclass(slots=True)
class Accepted:
    """A valid request: the submission, its language, and how long the client will wait."""

    submission: Submission
    language: Language
    grace: int  # seconds added to the job's computed timeout
    wait: float  # 0: answer 201 at once

    @property
    def job_timeout(self) -> int:
        return limits.job_timeout(self.submission, self.language, self.grace)


def _text(value: Any, field: str, encoding: str) -> bytes:
    if not isinstance(value, str):
        raise invalid(field, f"must be a string, got {type(value).__name__}")
    if encoding == "base64":
        try:
            return unb64(value)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise invalid(field, "is not valid base64", "invalid_base64") from None
    return _utf8(value, field)


def _utf8(value: str, field: str) -> bytes:
    """`value` as UTF-8. JSON may carry a lone surrogate ("\\ud800"), which no UTF-8 holds: refused
    here, or it would fail later wherever the string is written (Redis, the jail's argv)."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, "is not valid UTF-8 (lone surrogate)") from None


def _strings(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(field, "must be a list of strings")
    for i, v in enumerate(value):
        _utf8(v, f"{field}[{i}]")
    return list(value)


def _bool(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def _bounded(total: int, most: int, setting: str, field: str, what: str) -> None:
    if total > most:
        raise invalid(field, f"{what} is {total} bytes, at most {most} ({setting})", "too_large")


def _language(lang_id: Any, languages: dict[str, Language], p: Principal | None, field: str) -> Language:
    """The language `lang_id` names, when it is on this host and the API key may use it."""
    if lang_id is None:
        raise invalid(field, "missing", "missing")
    if not isinstance(lang_id, str):
        raise invalid(field, "must be a string")
    language = languages.get(lang_id)
    if language is None:
        raise invalid(field, f"unknown language {lang_id!r}; see GET /v1/languages", "unknown_language")
    if p is not None and not p.may_use(language.id):
        raise ApiError(
            403, "language_not_allowed", f"this API key may use {', '.join(p.languages)}, not {language.id}", field
        )
    return language


def _files(body: dict[str, Any], language: Language, cfg: Config, encoding: str) -> dict[str, bytes]:
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
    if len(files) > inputs.MAX_FILES:
        raise invalid("files", f"at most {inputs.MAX_FILES} files")
    decoded = {k: _text(v, f"files.{k}", encoding) for k, v in files.items()}
    _bounded(
        sum(len(v) for v in decoded.values()), cfg.max_source, "CELLBLOCK_MAX_SOURCE", "files", "the files together"
    )
    return inputs.normalize_files(language, decoded)


def _tests(body: dict[str, Any], cfg: Config, encoding: str, answers_optional: bool = False) -> list[TestCase]:
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
        if "expected_output" not in t and answers_optional:  # an interactor's answer.txt: may be empty
            t = {**t, "expected_output": ""}
        if "expected_output" not in t:
            raise invalid(f"tests[{i}].expected_output", "missing", "missing")
        out.append(TestCase(inp, _text(t["expected_output"], f"tests[{i}].expected_output", encoding)))
    _bounded(
        sum(len(t.input) + len(t.expected_output or b"") for t in out),
        cfg.max_input,
        "CELLBLOCK_MAX_INPUT",
        "tests",
        "every test's input and expected output together",
    )
    return out


def _checker(value: Any, languages: dict[str, Language], encoding: str, p: Principal | None) -> Checker:
    if value is None:
        return Checker()
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict):
        raise invalid("checker", "must be a name (exact, tokens, float) or an object {type, ...}")
    try:
        kind = CheckerKind(str(value.get("type")))
    except ValueError:
        raise invalid("checker.type", f"must be one of {', '.join(k.value for k in CheckerKind)}") from None
    unknown = set(value) - CHECKER_FIELDS
    if unknown:
        known = ", ".join(sorted(CHECKER_FIELDS))
        raise invalid(f"checker.{sorted(unknown)[0]}", f"unknown field; known: {known}", "unknown_field")
    checker = Checker(kind=kind)
    if "tolerance" in value:
        if kind is not CheckerKind.FLOAT:
            raise invalid("checker.tolerance", "only for the float checker")
        tol = value["tolerance"]
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 <= tol < 1e6):
            raise invalid("checker.tolerance", "must be a number in [0, 1e6)")
        checker.tolerance = float(tol)
    if kind is CheckerKind.CUSTOM:
        # The checker runs under the same key: its language must be one the key may use, and
        # its limits within the key's ceilings.
        lang = _language(value.get("language"), languages, p, "checker.language")
        checker.language = lang.id
        checker.files = {lang.source: _text(value.get("source"), "checker.source", encoding)}
        checker.limits = limits.checker_overrides(p.max_limits if p else None)
    return checker


def _interactor(value: Any, languages: dict[str, Language], encoding: str, p: Principal | None) -> Interactor | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("interactor", "must be an object {language, source}")
    unknown = set(value) - {"language", "source"}
    if unknown:
        raise invalid(f"interactor.{sorted(unknown)[0]}", "unknown field; known: language, source", "unknown_field")
    # Like a custom checker: the key's language and ceilings bind it too.
    lang = _language(value.get("language"), languages, p, "interactor.language")
    if value.get("source") is None:
        raise invalid("interactor.source", "missing", "missing")
    source = _text(value["source"], "interactor.source", encoding)
    return Interactor(lang.id, {lang.source: source}, limits.checker_overrides(p.max_limits if p else None))


def _idle_timeout(value: Any, cfg: Config) -> float:
    if value is None:
        return cfg.session_idle_timeout
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= cfg.session_idle_timeout:
        raise invalid("idle_timeout", f"must be a number of seconds in (0, {cfg.session_idle_timeout:g}]")
    return float(value)


def _wait(value: Any, cfg: Config) -> float:
    if value is None or value is False:
        return 0.0
    if value is True:
        return cfg.max_wait
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise invalid("wait", "must be true, false or a number of seconds")
    if isinstance(value, float) and not math.isfinite(value):  # an int may be any size: compared as one
        raise invalid("wait", "must be true, false or a number of seconds")
    if value > cfg.max_wait:
        raise invalid("wait", f"above the ceiling {cfg.max_wait:g} s", "above_ceiling")
    return float(value)


def _callback(value: Any, cfg: Config) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise invalid("callback_url", "must be a URL string")
    _utf8(value, "callback_url")
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 address
        raise invalid("callback_url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("callback_url", "must be an absolute http(s) URL")
    try:
        _ = parts.port  # read only to be checked: the deliverer would trip on it
    except ValueError:
        raise invalid("callback_url", "has an invalid port") from None
    # Only what is known without a lookup (no DNS on the request path): IP addresses and localhost.
    # A name is checked where it is resolved, at each delivery (api/callbacks.py).
    for addr in destinations.literal_addresses(parts.hostname) or ():
        why = destinations.refusal(addr, cfg.callback_networks)
        if why is not None:
            raise invalid(
                "callback_url",
                f"{parts.hostname} is not a public address ({why}); callbacks go to public addresses "
                "only (CELLBLOCK_CALLBACK_ALLOW lists exceptions)",
                "forbidden_destination",
            )
    return value


def parse_submission(
    body: Any, cfg: Config, languages: dict[str, Language], principal: Principal | None = None, prefix: str = ""
) -> Accepted:
    """Validate one submission object for the API key `principal` (None: no keys). `prefix`
    (e.g. "submissions[3].") places the refused field in a batch."""
    try:
        return _parse(body, cfg, languages, principal, SUBMISSION_FIELDS)
    except InputError as exc:
        raise refused(exc, prefix) from None
    except ApiError as exc:
        if prefix:
            exc.field = prefix + (exc.field or "")
        raise


def parse_session(body: Any, cfg: Config, languages: dict[str, Language], principal: Principal | None) -> Accepted:
    """Validate the first message of an interactive session: an interactive submission."""
    try:
        accepted = _parse(body, cfg, languages, principal, SESSION_FIELDS)
    except InputError as exc:
        raise refused(exc, "") from None
    sub = accepted.submission
    sub.interactive = True
    sub.idle_timeout = _idle_timeout(body.get("idle_timeout"), cfg)
    # A session lasts while its user types: unless it asks for less, as long as the language
    # (and the key) allow, not the language's default run time of a few seconds.
    if "wall_time" not in sub.limits:
        longest = accepted.language.run_limits.maximum.wall_time
        if principal is not None and "wall_time" in principal.max_limits:
            longest = min(longest, principal.max_limits["wall_time"])
        sub.limits["wall_time"] = longest
    return accepted


def _parse(body: Any, cfg: Config, languages: dict[str, Language], p: Principal | None, fields: set[str]) -> Accepted:
    if not isinstance(body, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object", "body")
    unknown = set(body) - fields
    if unknown:
        raise invalid(sorted(unknown)[0], f"unknown field; known: {', '.join(sorted(fields))}", "unknown_field")
    language = _language(body.get("language"), languages, p, "language")
    encoding = body.get("encoding", "utf-8")
    if encoding not in ("utf-8", "base64"):
        raise invalid("encoding", "must be utf-8 or base64")
    sub = Submission(
        id=uuid.uuid4().hex,
        language=language.id,
        files=_files(body, language, cfg, encoding),
        tests=_tests(body, cfg, encoding, answers_optional=body.get("interactor") is not None),
        args=inputs.check_args(_strings(body.get("args"), "args")),
        compile_options=inputs.check_options(language, _strings(body.get("compile_options"), "compile_options")),
        limits=limits.overrides(body.get("limits"), language, p.max_limits if p else None),
        checker=_checker(body.get("checker"), languages, encoding, p),
        encoding=encoding,
        callback_url=_callback(body.get("callback_url"), cfg),
        stop_on_first_failure=_bool(body.get("stop_on_first_failure"), "stop_on_first_failure"),
        collect=inputs.check_collect(_strings(body.get("collect"), "collect")),
        created_at=time.time(),
        stream_output=_bool(body.get("stream_output"), "stream_output"),
        interactor=_interactor(body.get("interactor"), languages, encoding, p),
    )
    if sub.interactor is not None and "tests" not in body:
        raise invalid("interactor", "an interactor needs tests (each one's input is its input.txt)")
    if sub.interactor is not None and "checker" in body:
        raise invalid("checker", "give either a checker or an interactor: the interactor gives the verdict")
    if sub.checker.kind is not CheckerKind.EXACT and not sub.judge_mode:
        raise invalid("checker", "a checker needs tests with expected_output")
    return Accepted(sub, language, cfg.job_grace, _wait(body.get("wait"), cfg))
