"""Reading a runtime's own out-of-memory death as memory_limit (no jail needed)."""

from __future__ import annotations

from jail.spec import Limits, MiB, RunResult, Status
from policies.languages import load_languages
from worker.toolchain import is_runtime_oom

LIMITS = Limits(memory=256 * MiB)


def test_known_messages_count_as_oom() -> None:
    langs = load_languages()
    cases = {
        "java": b'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\n',
        "kotlin": b"java.lang.OutOfMemoryError: Java heap space",
        "javascript": b"FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
        "go": b"fatal error: runtime: out of memory\n",
        "rust": b"memory allocation of 1048576 bytes failed\n",
        "python3": b"Traceback (most recent call last):\nMemoryError\n",
        "php": b"PHP Fatal error:  Allowed memory size of 134217728 bytes exhausted",
        "lua": b"lua5.4: not enough memory",
        "ruby": b"main.rb:3: failed to allocate memory (NoMemoryError)",
    }
    for lang_id, stderr in cases.items():
        res = RunResult(Status.NONZERO_EXIT, exit_code=1, stderr=stderr, peak_memory=10 * MiB)
        assert is_runtime_oom(langs[lang_id], res, LIMITS), lang_id


def test_peak_near_limit_counts_as_oom() -> None:
    res = RunResult(Status.SIGNALED, signal="SIGABRT", peak_memory=250 * MiB)
    assert is_runtime_oom(load_languages()["c"], res, LIMITS)


def test_ordinary_errors_are_not_oom() -> None:
    langs = load_languages()
    res = RunResult(Status.NONZERO_EXIT, exit_code=1, stderr=b"ValueError: boom", peak_memory=20 * MiB)
    assert not is_runtime_oom(langs["python3"], res, LIMITS)
    ok = RunResult(Status.OK, stderr=b"MemoryError", peak_memory=255 * MiB)
    assert not is_runtime_oom(langs["python3"], ok, LIMITS)
