"""The OpenAPI 3.1 description of the API and a small readable docs page built from it."""

from __future__ import annotations

import html as _html
import json
from typing import Any

from api.validation import CHECKER_FIELDS
from core.inputs import MAX_COLLECT, MAX_COLLECT_LEN
from core.limits import COLLECT_BYTES, COLLECT_FILES
from core.models import SUBMISSION_ID
from jail.spec import BOUNDS, format_size

_ERROR = {"$ref": "#/components/schemas/Error"}


def _resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    return out


_ERRORS = {
    "400": _resp("malformed JSON", _ERROR),
    "413": _resp("body too large (CELLBLOCK_MAX_BODY)", _ERROR),
    "422": _resp(
        "invalid field: unknown language, missing source, limit above ceiling, source or input too large, "
        "invalid base64, too many tests...",
        _ERROR,
    ),
    "401": _resp("missing, unknown or revoked API key (when CELLBLOCK_AUTH requires one)", _ERROR),
    "403": _resp("language not allowed for this API key", _ERROR),
    "429": _resp("the key's rate limit or in-flight quota; see Retry-After", _ERROR),
    "503": _resp("queue above CELLBLOCK_MAX_QUEUE (see Retry-After) or Redis unavailable", _ERROR),
}

_SUBMISSION: dict[str, Any] = {
    "type": "object",
    "required": ["language"],
    "anyOf": [{"required": ["source"]}, {"required": ["files"]}],
    "additionalProperties": False,
    "properties": {
        "language": {"type": "string", "description": "id from GET /v1/languages"},
        "source": {"type": "string", "description": "the main file (or give `files`)"},
        "files": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "file name -> content; must include the language's main file",
        },
        "stdin": {"type": "string", "description": "run mode: the input of the single run"},
        "args": {"type": "array", "items": {"type": "string"}},
        "compile_options": {
            "type": "array",
            "items": {"type": "string"},
            "description": "allowed per language (e.g. -O2, -std=c11)",
        },
        "limits": {
            "type": "object",
            "additionalProperties": False,
            "description": "each at most the language's maximum (GET /v1/languages)",
            # The jail's own bounds (jail.spec.BOUNDS), stated there once.
            "properties": {
                name: {
                    "type": "integer" if bound.integer else "number",
                    "minimum": bound.low,
                    "maximum": bound.high,
                    **({"description": {"s": "seconds", "bytes": "bytes"}[bound.unit]} if bound.unit else {}),
                }
                for name, bound in BOUNDS.items()
            },
        },
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"input": {"type": "string"}, "expected_output": {"type": "string"}},
            },
            "description": "judge mode: every test runs with the one compiled program",
        },
        "checker": {
            "description": "exact (default) | lines (Judge0's rule) | tokens | float | {type: float, tolerance} | "
            "{type: custom, language, source}",
            "oneOf": [
                {"enum": ["exact", "lines", "tokens", "float"]},
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {key: {} for key in sorted(CHECKER_FIELDS)},
                    "additionalProperties": False,
                },
            ],
        },
        "encoding": {"enum": ["utf-8", "base64"], "description": "of source/files/stdin/tests and outputs"},
        "wait": {
            "oneOf": [{"type": "boolean"}, {"type": "number", "minimum": 0}],
            "description": "hold the request until finished (at most CELLBLOCK_MAX_WAIT s)",
        },
        "callback_url": {
            "type": "string",
            "description": "POSTed the result when finished (retried; signed with Standard Webhooks headers; "
            "public addresses only, unless CELLBLOCK_CALLBACK_ALLOW; redirects are not followed)",
        },
        "stop_on_first_failure": {"type": "boolean"},
        "collect": {
            "type": "array",
            "maxItems": MAX_COLLECT,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_COLLECT_LEN},
            "description": "files to return from each test's run, e.g. report.json, out/*.png: paths "
            "relative to the work dir /box, each component a shell-style glob (*, ?, [...]; * stays within one "
            "component), a directory collected whole; no '..', no leading '/'. Symbolic links, FIFOs and devices "
            "are never followed nor read. Each test's result carries `files` (path -> base64, whatever the "
            f"`encoding`) and `files_truncated`: at most {COLLECT_FILES} files and {format_size(COLLECT_BYTES)} "
            "per test, within CELLBLOCK_MAX_RESULT with the outputs",
        },
        "stream_output": {
            "type": "boolean",
            "description": "send `output` events (test, stream, offset, size, data) on the event stream "
            "while each test runs",
        },
        "interactor": {
            "type": "object",
            "required": ["language", "source"],
            "additionalProperties": False,
            "properties": {"language": {"type": "string"}, "source": {"type": "string"}},
            "description": "an interactor problem (needs tests; expected_output may be left out): the "
            "interactor runs as `interactor input.txt output.txt answer.txt`, its stdin the program's stdout "
            "and back; exit 0 accepted, 1/2/4/8 wrong answer, anything else checker_error",
        },
    },
}

_QUANTILES: dict[str, Any] = {
    q: {"type": ["number", "null"], "description": f"{q[1:]}th percentile in seconds, from the buckets (null: none)"}
    for q in ("p50", "p95", "p99")
}
_COUNT = {"type": "integer", "minimum": 0}
_DASHBOARD: dict[str, Any] = {
    "type": "object",
    "required": ["now", "auth", "quantile_ceiling", "queue", "workers", "minutes", "verdicts", "totals", "stages"],
    "properties": {
        "now": {"type": "number", "description": "epoch seconds of this answer"},
        "auth": {"type": "boolean", "description": "whether API keys are required"},
        "quantile_ceiling": {
            "type": "number",
            "description": "the latency histograms' highest bound (s): a quantile equal to it means at least that",
        },
        "queue": {
            "type": "object",
            "properties": {"depth": _COUNT, "oldest_age": {"type": "number", "description": "seconds (0: none)"}},
        },
        "workers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "hostname": {"type": ["string", "null"]},
                    "pid": {"type": ["integer", "null"]},
                    "state": {"type": "string", "description": "busy, idle or another RQ worker state"},
                    "current_job": {"type": ["string", "null"], "description": "the submission it runs"},
                    "successful_jobs": _COUNT,
                    "failed_jobs": _COUNT,
                    "last_heartbeat_age": {"type": ["number", "null"], "description": "seconds"},
                    "started_at": {"type": ["number", "null"], "description": "epoch seconds"},
                },
            },
        },
        "minutes": {
            "type": "array",
            "minItems": 60,
            "maxItems": 60,
            "description": "the last 60 minutes, oldest first, the current one last",
            "items": {
                "type": "object",
                "properties": {
                    "t": {"type": "integer", "description": "epoch seconds of the minute's start"},
                    "finished": _COUNT,
                    **_QUANTILES,
                    "internal_errors": _COUNT,
                    "sandbox_faults": _COUNT,
                },
            },
        },
        "verdicts": {
            "type": "object",
            "description": "language -> verdict -> finished submissions, all time",
            "additionalProperties": {"type": "object", "additionalProperties": _COUNT},
        },
        "totals": {
            "type": "object",
            "properties": {
                "finished": _COUNT,
                "internal_errors": {"type": "object", "properties": {"worker": _COUNT, "api": _COUNT}},
                "sandbox_faults": _COUNT,
                "compile_cache": {
                    "type": "object",
                    "properties": {
                        "hits": _COUNT,
                        "misses": _COUNT,
                        "hit_rate": {"type": ["number", "null"], "description": "null: no compile yet"},
                    },
                },
            },
        },
        "stages": {
            "type": "object",
            "description": "queue_wait, compile, run, total, jail_overhead: observations and quantiles, all time",
            "additionalProperties": {"type": "object", "properties": {"count": _COUNT, **_QUANTILES}},
        },
    },
}

_RESULT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "state": {"enum": ["queued", "compiling", "running", "finished"]},
        "verdict": {
            "enum": [
                None,
                "accepted",
                "wrong_answer",
                "time_limit_exceeded",
                "memory_limit_exceeded",
                "output_limit_exceeded",
                "runtime_error",
                "compilation_error",
                "security_violation",
                "checker_error",
                "internal_error",
            ]
        },
        "compile_output": {"type": "string"},
        "tests": {
            "type": "array",
            "items": {"type": "object"},
            "description": "per test: verdict, outputs, accounting, and `files` / `files_truncated` (collect)",
        },
        "stdout": {"type": "string", "description": "run mode only"},
        "stderr": {"type": "string", "description": "run mode only"},
        "exit_code": {"type": ["integer", "null"], "description": "run mode only"},
        "files": {
            "type": "object",
            "additionalProperties": {"type": "string", "contentEncoding": "base64"},
            "description": "run mode only: what `collect` matched, path under /box -> base64 (in judge mode "
            "each test carries its own `files`)",
        },
        "files_truncated": {"type": "boolean", "description": "run mode only: a collect cap left files out"},
        "request": {
            "type": "object",
            "description": "with ?include=request: the submission as it was asked, in POST's shape (a session's: "
            "its first message's, with idle_timeout)",
        },
    },
}

_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": f"^{SUBMISSION_ID}$"},
    "description": "the id POST /v1/submissions answered with",
}

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "cellblock",
        "version": "1",
        "description": "Run untrusted code: submit a program and inputs, get output and verdicts.",
    },
    "paths": {
        "/v1/submissions": {
            "post": {
                "summary": "Create a submission",
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submission"}}}
                },
                "responses": {
                    "201": _resp("queued: {id, state}"),
                    "200": _resp("finished within `wait`", {"$ref": "#/components/schemas/Result"}),
                    **_ERRORS,
                },
            },
            "get": {
                "summary": "Several submissions: ?ids=a,b,c",
                "parameters": [
                    {
                        "name": "ids",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "comma-separated ids, at most CELLBLOCK_MAX_BATCH",
                    }
                ],
                "responses": {"200": _resp("{submissions: [...]}"), "422": _ERRORS["422"]},
            },
        },
        "/v1/submissions/batch": {
            "post": {
                "summary": "Create up to CELLBLOCK_MAX_BATCH submissions: {submissions: [...]}; all or none",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["submissions"],
                                "properties": {
                                    "submissions": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Submission"},
                                    }
                                },
                                "additionalProperties": False,
                            }
                        }
                    }
                },
                "responses": {"201": _resp("{ids: [...]}"), **_ERRORS},
            },
        },
        "/v1/submissions/{id}": {
            "get": {
                "summary": "State and, once finished, the result; include=request adds what was asked",
                "parameters": [
                    _ID,
                    {
                        "name": "include",
                        "in": "query",
                        "required": False,
                        "description": "request: add `request`, the submission as it was asked (POST's shape)",
                        "schema": {"type": "string", "enum": ["request"]},
                    },
                ],
                "responses": {
                    "200": _resp("the submission", {"$ref": "#/components/schemas/Result"}),
                    "404": _resp("unknown or expired", _ERROR),
                    "422": _resp("unknown include", _ERROR),
                },
            },
        },
        "/v1/submissions/{id}/events": {
            "get": {
                "summary": "Server-Sent Events: state (queued, compiling, running k of n), output (with "
                "stream_output), test (per-test verdict), finished. Replays from the start; honours Last-Event-ID.",
                "parameters": [_ID],
                "responses": {"200": {"description": "text/event-stream"}, "404": _resp("unknown or expired", _ERROR)},
            },
        },
        "/v1/sessions": {
            "get": {
                "summary": "WebSocket: an interactive run. First message: the session as JSON (language, "
                "source or files, args, compile_options, limits, encoding, idle_timeout). Then binary frames or "
                "{type: stdin, data} to the program's stdin, {type: eof}, {type: kill}; the server sends "
                "{type: session, id}, {type: state}, {type: output, stream, data, offset}, {type: error, error} "
                "and {type: result, result}, then closes (a refused session: close 4000 + HTTP status). A browser, "
                "which cannot send a header, offers its key as the subprotocol cellblock.key.<token> beside "
                "cellblock.v1.",
                "responses": {
                    "101": {"description": "switching to the WebSocket"},
                    "426": _resp("not a WebSocket upgrade", _ERROR),
                    "429": _resp("CELLBLOCK_MAX_SESSIONS open sessions for this key", _ERROR),
                },
            }
        },
        "/v1/languages": {
            "get": {
                "summary": "Languages, versions, default and maximum limits",
                "responses": {"200": _resp("{languages: [...], limit_units: {limit: seconds|bytes|items}}")},
            }
        },
        "/v1/health": {
            "get": {
                "summary": "Redis reachable, workers alive, queue depth",
                "responses": {"200": _resp("healthy"), "503": _resp("degraded")},
            }
        },
        "/v1/ready": {
            "get": {
                "summary": "Readiness: Redis reachable AND at least one live worker",
                "responses": {"200": _resp("{ready: true, redis, workers}"), "503": _resp("not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text format: submissions by language and verdict, stage "
                "latency histograms, queue depth and oldest age, workers and busy share",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}},
            }
        },
        "/v1/dashboard": {
            "get": {
                "summary": "The operators' dashboard as JSON (polled by its page): queue, workers, the last 60 "
                "minutes (finished, total-latency quantiles, internal errors, sandbox faults), verdicts per "
                "language, totals with the compile cache's hit rate, per-stage quantiles. Read from the counters "
                "/metrics shows. With keys required it needs an admin key (cellblock keys create --admin)",
                "responses": {
                    "200": _resp("the dashboard", _DASHBOARD),
                    "401": _resp("missing, unknown or revoked API key (when CELLBLOCK_AUTH requires one)", _ERROR),
                    "403": _resp("the key is not an admin key", _ERROR),
                    "503": _resp("Redis unavailable", _ERROR),
                },
            }
        },
        "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": _resp("OpenAPI")}}},
    },
    "security": [{"bearer": []}, {"xAuthToken": []}, {}],
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "API key from `cellblock keys create`"},
            "xAuthToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
        },
        "schemas": {
            "Submission": _SUBMISSION,
            "Result": _RESULT,
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "integer"},
                            "code": {"type": "string"},
                            "field": {"type": ["string", "null"]},
                            "reason": {"type": "string"},
                        },
                    }
                },
            },
        },
    },
}

_EXAMPLE = {
    "language": "python3",
    "source": "a, b = map(int, input().split())\nprint(a + b)\n",
    "tests": [{"input": "1 2\n", "expected_output": "3\n"}, {"input": "5 5\n", "expected_output": "10\n"}],
    "checker": "tokens",
    "wait": True,
}


def html() -> str:
    """A plain, dependency-free page: every endpoint, the submission fields, an example."""
    esc = _html.escape
    rows = []
    for path, methods in SPEC["paths"].items():
        for method, op in methods.items():
            codes = ", ".join(op.get("responses", {}))
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{esc(path)}</code></td>"
                f"<td>{esc(op['summary'])}</td><td>{codes}</td></tr>"
            )
    fields = "".join(
        f"<tr><td><code>{esc(name)}</code></td><td>{esc(str(p.get('description', p.get('type', ''))))}</td></tr>"
        for name, p in _SUBMISSION["properties"].items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>cellblock API</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td{{padding:.2em .6em;vertical-align:top}}
pre{{background:#f4f4f4;padding:1em}}</style></head><body>
<h1>cellblock API</h1><p>{esc(SPEC["info"]["description"])} Machine-readable:
<a href="/v1/openapi.json">/v1/openapi.json</a>.</p>
<h2>Endpoints</h2><table>{"".join(rows)}</table>
<h2>Submission fields</h2><table>{fields}</table>
<h2>Example</h2><pre>curl -s localhost:8080/v1/submissions -H 'content-type: application/json' \\
  -d '{esc(json.dumps(_EXAMPLE))}'</pre>
<h2>Errors</h2><p>Every refusal is JSON: <code>{{"error": {{"status", "code", "field", "reason"}}}}</code>.</p>
</body></html>"""
