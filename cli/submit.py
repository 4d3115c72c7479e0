"""`cellblock submit FILE`: send one program (and stdin or a directory of tests) to the API,
wait for the result, print it. Exit status 0 when accepted, 1 otherwise, 2 on a refused request."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

# Used when the API cannot be asked (GET /v1/languages gives the authoritative source names).
FALLBACK_EXTENSIONS = {
    ".c": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".py": "python3", ".go": "go", ".rs": "rust",
    ".java": "java", ".js": "javascript", ".ts": "typescript", ".rb": "ruby", ".php": "php",
    ".lua": "lua", ".sh": "bash", ".kt": "kotlin",
}


class SubmitError(Exception):
    pass


def _request(method: str, url: str, body: Any = None, timeout: float = 120.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise SubmitError(f"cannot reach the API at {url}: {exc.reason} (is `cellblock up` running?)") from None


def guess_language(path: Path, base: str) -> str:
    ext = path.suffix.lower()
    try:
        status, body = _request("GET", f"{base}/v1/languages", timeout=10)
        if status == 200:
            for lang in body["languages"]:
                if Path(lang["source_name"]).suffix.lower() == ext:
                    return str(lang["id"])
    except SubmitError:
        raise
    if ext in FALLBACK_EXTENSIONS:
        return FALLBACK_EXTENSIONS[ext]
    raise SubmitError(f"cannot guess the language of {path.name}: give --language")


def read_tests(directory: Path) -> list[dict[str, str]]:
    """Pairs NAME.in with NAME.out (or .ans / .expected), sorted by name."""
    tests = []
    for inp in sorted(directory.glob("*.in")):
        for ext in (".out", ".ans", ".expected"):
            exp = inp.with_suffix(ext)
            if exp.exists():
                tests.append({"input": inp.read_text(), "expected_output": exp.read_text()})
                break
        else:
            raise SubmitError(f"{inp}: no matching .out/.ans/.expected file")
    if not tests:
        raise SubmitError(f"{directory}: no *.in files")
    return tests


def submit(file: Path, language: str | None, stdin: Path | None, tests: Path | None,
           as_json: bool, url: str) -> int:
    base = url.rstrip("/")
    try:
        body: dict[str, Any] = {
            "language": language or guess_language(file, base),
            "source": file.read_text(),
            "wait": True,
        }
        if stdin is not None:
            body["stdin"] = stdin.read_text()
        if tests is not None:
            body["tests"] = read_tests(tests)
        status, result = _request("POST", f"{base}/v1/submissions", body)
        if status >= 400:
            print(json.dumps(result, indent=2), file=sys.stderr)
            return 2
        while result.get("state") != "finished":
            time.sleep(0.2)
            status, result = _request("GET", f"{base}/v1/submissions/{result['id']}")
    except (SubmitError, OSError) as exc:
        print(f"cellblock submit: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        _print_human(result)
    return 0 if result.get("verdict") == "accepted" else 1


def _print_human(result: dict[str, Any]) -> None:
    print(f"verdict: {result['verdict']}")
    if result.get("compile_output"):
        print("compiler output:\n" + result["compile_output"].rstrip())
    if result.get("message"):
        print(result["message"])
    tests = result.get("tests", [])
    if "stdout" in result:
        sys.stdout.write(result["stdout"])
        if result.get("stderr"):
            sys.stderr.write(result["stderr"])
        t = tests[0] if tests else {}
        print(f"(exit {t.get('exit_code')}, {t.get('cpu_time', 0):.3f}s cpu, "
              f"{t.get('peak_memory', 0) // 1024} KiB)", file=sys.stderr)
        return
    for t in tests:
        print(f"test {t['index']}: {t['verdict']} ({t['cpu_time']:.3f}s cpu, {t['peak_memory'] // 1024} KiB)"
              + (f" {t['message']}" if t.get("message") else ""))
