"""`cellblock submit FILE`: send one program (and stdin or a directory of tests) to the API,
wait for the result, print it. Exit status 0 when accepted, 1 otherwise, 2 on a refused request.

The API key comes from --key or CELLBLOCK_API_KEY. A 429 or 503 is retried after its
Retry-After, RETRIES times. Files that are not UTF-8 go as base64 (`encoding`), and the
outputs come back and are printed as the bytes they are. `--interactive` is a live session
instead: cli/session.py.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# 429 (rate limit) and 503 (queue full, Redis away) are worth another try, this many times,
# each after the answer's Retry-After (at most RETRY_MAX_S seconds).
RETRIES = 5
RETRY_MAX_S = 10.0

# Used when GET /v1/languages (the authoritative source names) does not name the extension.
FALLBACK_EXTENSIONS = {
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".py": "python3",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".js": "javascript",
    ".ts": "typescript",
    ".rb": "ruby",
    ".php": "php",
    ".lua": "lua",
    ".sh": "bash",
    ".kt": "kotlin",
}


class SubmitError(Exception):
    pass


def _request(method: str, url: str, body: Any = None, timeout: float = 120.0, key: str = "") -> tuple[int, Any]:
    """One request; 429 and 503 are retried after Retry-After. Returns (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    retries = 0
    while True:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
            if exc.code not in (429, 503) or retries == RETRIES:
                return exc.code, answer
            retries += 1
            pause = min(RETRY_MAX_S, float(exc.headers.get("Retry-After") or 1))
            print(f"cellblock submit: HTTP {exc.code}, trying again in {pause:g}s", file=sys.stderr)
            time.sleep(pause)
        except urllib.error.URLError as exc:
            raise SubmitError(f"cannot reach the API at {url}: {exc.reason} (is `cellblock up` running?)") from None


def guess_language(path: Path, base: str) -> str:
    ext = path.suffix.lower()
    status, body = _request("GET", f"{base}/v1/languages", timeout=10)  # open: no key needed
    if status == 200:
        for lang in body["languages"]:
            if Path(lang["source_name"]).suffix.lower() == ext:
                return str(lang["id"])
    if ext in FALLBACK_EXTENSIONS:
        return FALLBACK_EXTENSIONS[ext]
    raise SubmitError(f"cannot guess the language of {path.name}: give --language")


def read_tests(directory: Path) -> list[dict[str, bytes]]:
    """Pairs NAME.in with NAME.out (or .ans / .expected), sorted by name."""
    tests = []
    for inp in sorted(directory.glob("*.in")):
        for ext in (".out", ".ans", ".expected"):
            exp = inp.with_suffix(ext)
            if exp.exists():
                tests.append({"input": inp.read_bytes(), "expected_output": exp.read_bytes()})
                break
        else:
            raise SubmitError(f"{inp}: no matching .out/.ans/.expected file")
    if not tests:
        raise SubmitError(f"{directory}: no *.in files")
    return tests


def submit(
    file: Path, language: str | None, stdin: Path | None, tests: Path | None, as_json: bool, url: str, key: str = ""
) -> int:
    base = url.rstrip("/")
    try:
        source = file.read_bytes()
        stdin_data = stdin.read_bytes() if stdin is not None else None
        cases = read_tests(tests) if tests is not None else None
        blobs = [
            source,
            *([stdin_data] if stdin_data is not None else []),
            *(v for case in cases or [] for v in case.values()),
        ]
        encoding = encoding_of(blobs)
        body: dict[str, Any] = {
            "language": language or guess_language(file, base),
            "source": as_text(source, encoding),
            "encoding": encoding,
            "wait": True,
        }
        if stdin_data is not None:
            body["stdin"] = as_text(stdin_data, encoding)
        if cases is not None:
            body["tests"] = [{k: as_text(v, encoding) for k, v in case.items()} for case in cases]
        status, result = _request("POST", f"{base}/v1/submissions", body, key=key)
        while status < 400 and result.get("state") != "finished":
            time.sleep(0.2)
            status, result = _request("GET", f"{base}/v1/submissions/{result['id']}", key=key)
        if status >= 400:
            print(json.dumps(result, indent=2), file=sys.stderr)
            return 2
    except (SubmitError, OSError) as exc:
        print(f"cellblock submit: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_human(_decoded(result))
    return 0 if result.get("verdict") == "accepted" else 1


def encoding_of(blobs: list[bytes]) -> str:
    """The request's `encoding`: utf-8 when every one of `blobs` is UTF-8, else base64."""
    return "utf-8" if all(_is_utf8(b) for b in blobs) else "base64"


def as_text(data: bytes, encoding: str) -> str:
    """`data` as a JSON string of a request in `encoding` (utf-8 or base64)."""
    return data.decode() if encoding == "utf-8" else base64.b64encode(data).decode("ascii")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _decoded(result: dict[str, Any]) -> dict[str, Any]:
    """The result with its base64 output fields as text (undecodable bytes replaced)."""
    if result.get("encoding") != "base64":
        return result

    def text(value: Any) -> Any:
        return base64.b64decode(value).decode(errors="replace") if isinstance(value, str) else value

    out = {k: text(v) if k in ("compile_output", "stdout", "stderr") else v for k, v in result.items()}
    out["tests"] = [
        {k: text(v) if k in ("stdout", "stderr") else v for k, v in t.items()} for t in result.get("tests", [])
    ]
    return out


def _print_human(result: dict[str, Any]) -> None:
    print(f"verdict: {result['verdict']}")
    if result.get("compile_output"):
        print("compiler output:\n" + result["compile_output"].rstrip())
    if result.get("message"):
        print(result["message"])
    tests = result.get("tests", [])
    if "stdout" in result:
        sys.stdout.write(result["stdout"])
        sys.stdout.flush()
        if result.get("stderr"):
            sys.stderr.write(result["stderr"])
        t = tests[0] if tests else {}
        print(
            f"(exit {t.get('exit_code')}, {t.get('cpu_time', 0):.3f}s cpu, {t.get('peak_memory', 0) // 1024} KiB)",
            file=sys.stderr,
        )
        return
    for t in tests:
        print(
            f"test {t['index']}: {t['verdict']} ({t['cpu_time']:.3f}s cpu, {t['peak_memory'] // 1024} KiB)"
            + (f" {t['message']}" if t.get("message") else "")
        )
