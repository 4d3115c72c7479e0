"""Judge0's fixed tables as cellblock answers them: language ids and names, the 14 statuses,
and which status and message a cellblock outcome is."""

from __future__ import annotations

from dataclasses import dataclass

from api.versions import semver
from core.models import EXEC_FAILED, Result, TestResult, Verdict, signal_number
from policies.languages import Language

VERSION = "1.13.1"  # the Judge0 CE release whose behaviour this layer follows

# cellblock language -> the id Judge0 CE 1.13.1 gives it, and how its name reads there.
PRIMARY_IDS = {
    "bash": 46, "c": 50, "cpp": 54, "executable": 44, "go": 60, "java": 62, "javascript": 63,
    "kotlin": 78, "lua": 64, "php": 68, "python3": 71, "ruby": 72, "rust": 73, "typescript": 74,
}  # fmt: skip
# Listed too: the official SDK maps judge0.CPP to 52 and refuses an id /languages lacks.
ALSO_LISTED = {52: "cpp"}
# Accepted in a submission and by /languages/{id}, not listed: older releases' ids of the same
# language, and the ids the hosted ce.judge0.com uses (clients copy them from there).
ALIASES = {
    48: "c", 49: "c", 103: "c", 53: "cpp", 105: "cpp", 95: "go", 106: "go", 107: "go", 91: "java",
    93: "javascript", 97: "javascript", 102: "javascript", 111: "kotlin", 98: "php", 92: "python3",
    100: "python3", 109: "python3", 113: "python3", 108: "rust", 94: "typescript", 101: "typescript",
}  # fmt: skip
_FAMILY = {
    "bash": ("Bash", ""), "c": ("C", "GCC "), "cpp": ("C++", "GCC "), "go": ("Go", ""),
    "java": ("Java", "OpenJDK "), "javascript": ("JavaScript", "Node.js "), "kotlin": ("Kotlin", ""),
    "lua": ("Lua", ""), "php": ("PHP", ""), "python3": ("Python", ""), "ruby": ("Ruby", ""),
    "rust": ("Rust", ""), "typescript": ("TypeScript", ""),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Judge0Language:
    id: int
    name: str
    language: Language
    listed: bool


def name_of(language: Language) -> str:
    """Judge0's style, the real toolchain: `C (GCC 12.2.0)`, `Python (3.11.2)`, `Executable`."""
    family = _FAMILY.get(language.id)
    if family is None:
        return language.name
    return f"{family[0]} ({family[1]}{semver(language.version)})"


def languages(available: dict[str, Language]) -> dict[int, Judge0Language]:
    """Every Judge0 id this host answers to, for the languages it has."""
    ids = [(jid, lid, True) for lid, jid in PRIMARY_IDS.items()]
    ids += [(jid, lid, True) for jid, lid in ALSO_LISTED.items()]
    ids += [(jid, lid, False) for jid, lid in ALIASES.items()]
    return {
        jid: Judge0Language(jid, name_of(available[lid]), available[lid], listed)
        for jid, lid, listed in ids
        if lid in available
    }


STATUSES = {
    1: "In Queue", 2: "Processing", 3: "Accepted", 4: "Wrong Answer", 5: "Time Limit Exceeded",
    6: "Compilation Error", 7: "Runtime Error (SIGSEGV)", 8: "Runtime Error (SIGXFSZ)",
    9: "Runtime Error (SIGFPE)", 10: "Runtime Error (SIGABRT)", 11: "Runtime Error (NZEC)",
    12: "Runtime Error (Other)", 13: "Internal Error", 14: "Exec Format Error",
}  # fmt: skip
IN_QUEUE, PROCESSING = 1, 2
_SIGNAL_STATUS = {"SIGSEGV": 7, "SIGXFSZ": 8, "SIGFPE": 9, "SIGABRT": 10}
_VERDICT_STATUS = {
    Verdict.ACCEPTED: 3,
    Verdict.WRONG_ANSWER: 4,
    Verdict.TIME_LIMIT_EXCEEDED: 5,
    Verdict.COMPILATION_ERROR: 6,
    Verdict.OUTPUT_LIMIT_EXCEEDED: 8,
    Verdict.MEMORY_LIMIT_EXCEEDED: 12,
    Verdict.SECURITY_VIOLATION: 12,
    Verdict.CHECKER_ERROR: 13,
    Verdict.INTERNAL_ERROR: 13,
}


def status_of(result: Result, shown: TestResult | None) -> tuple[int, str | None]:
    """A finished submission's status id and isolate-style message (None for a clean run)."""
    verdict = result.verdict
    if verdict is Verdict.RUNTIME_ERROR and shown is not None:
        if shown.status == EXEC_FAILED:
            return 14, shown.message or "Exec format error"
        if shown.signal:
            return _SIGNAL_STATUS.get(shown.signal, 12), f"Caught fatal signal {signal_number(shown.signal)}"
        return 11, f"Exited with error status {shown.exit_code}"
    status = _VERDICT_STATUS[verdict]
    if verdict is Verdict.TIME_LIMIT_EXCEEDED:
        wall = shown is not None and shown.status == "wall_time_limit"
        return status, "Wall time limit exceeded" if wall else "Time limit exceeded"
    if verdict is Verdict.MEMORY_LIMIT_EXCEEDED:
        return status, "Memory limit exceeded"
    if verdict is Verdict.OUTPUT_LIMIT_EXCEEDED:
        return status, "Output limit exceeded"
    if verdict is Verdict.SECURITY_VIOLATION:
        return status, (shown.message if shown is not None and shown.message else "Forbidden system call")
    if status == 13:
        return status, result.message or "Internal Error"
    return status, None
