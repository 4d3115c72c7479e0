"""Every offered language, end to end in the real jail: hello world, stdin, compile and
runtime errors, CPU and memory limits, and a 1 MiB output.

A language whose toolchain is missing fails, naming the package list to install
(see language_fixtures.language); `make test` installs core and extra languages.
"""

from __future__ import annotations

import pytest
from language_fixtures import Built, language
from language_programs import BROKEN, CORE, EXTRA, SUM_EXPECTED, SUM_INPUT

from jail.record import replace
from jail.spec import Limits, MiB, RunResult, Status
from policies.languages import available_languages
from worker.toolchain import compile_source, run_program

ALL = CORE + EXTRA
COMPILED_BROKEN = sorted(BROKEN)
# Languages whose runtime reports an uncaught error with our message on stderr.
SAYS_BOOM = {"cpp", "python3", "java", "kotlin", "javascript", "typescript", "ruby", "php", "bash", "lua"}


def limits_for(lang_id: str, **changes: float) -> Limits:
    base = language(lang_id).run_limits.default
    return replace(base, **changes)


def show(res: RunResult) -> str:
    return (
        f"status={res.status} exit={res.exit_code} signal={res.signal} cpu={res.cpu_time:.2f} "
        f"peak={res.peak_memory // MiB}MiB stderr={res.stderr[-600:]!r}"
    )


def test_core_languages_present() -> None:
    avail = available_languages()
    missing = [lid for lid in CORE if lid not in avail]
    assert not missing, f"core languages missing on this host: {missing}"


def test_every_definition_is_tested() -> None:
    from policies.languages import load_languages

    assert sorted(load_languages()) == sorted(ALL)


@pytest.mark.parametrize("lang_id", ALL)
def test_hello_world(lang_id: str, built: Built) -> None:
    lang, artifact = built(lang_id)
    res = run_program(lang, artifact, b"", ["hello"], limits_for(lang_id))
    assert res.status is Status.OK, show(res)
    assert res.stdout == b"Hello, World!\n"


@pytest.mark.parametrize("lang_id", ALL)
def test_sum_from_stdin(lang_id: str, built: Built) -> None:
    lang, artifact = built(lang_id)
    res = run_program(lang, artifact, SUM_INPUT, ["sum"], limits_for(lang_id))
    assert res.status is Status.OK, show(res)
    assert res.stdout.strip().decode() == SUM_EXPECTED


@pytest.mark.parametrize("lang_id", ALL)
def test_runtime_error(lang_id: str, built: Built) -> None:
    lang, artifact = built(lang_id)
    res = run_program(lang, artifact, b"", ["crash"], limits_for(lang_id))
    assert res.status in (Status.NONZERO_EXIT, Status.SIGNALED), show(res)
    if lang_id in SAYS_BOOM:
        assert b"boom" in res.stderr, show(res)


@pytest.mark.parametrize("lang_id", ALL)
def test_infinite_loop_hits_cpu_limit(lang_id: str, built: Built) -> None:
    lang, artifact = built(lang_id)
    res = run_program(lang, artifact, b"", ["loop"], limits_for(lang_id, cpu_time=1.0, wall_time=5.0))
    assert res.status is Status.TIME_LIMIT, show(res)
    assert 0.9 <= res.cpu_time < 3.0, show(res)


@pytest.mark.parametrize("lang_id", ALL)
def test_memory_hog_hits_memory_limit(lang_id: str, built: Built) -> None:
    lang, artifact = built(lang_id)
    memory = 256 * MiB if lang_id in ("java", "kotlin") else 128 * MiB
    res = run_program(lang, artifact, b"", ["hog"], limits_for(lang_id, memory=memory, cpu_time=10.0, wall_time=20.0))
    assert res.status is Status.MEMORY_LIMIT, show(res)


@pytest.mark.parametrize("lang_id", ALL)
def test_prints_one_mebibyte(lang_id: str, built: Built) -> None:
    lang, artifact = built(lang_id)
    res = run_program(lang, artifact, b"", ["big"], limits_for(lang_id, output=2 * MiB))
    assert res.status is Status.OK, show(res)
    assert not res.stdout_truncated
    assert res.stdout == (b"x" * 1023 + b"\n") * 1024


@pytest.mark.parametrize("lang_id", COMPILED_BROKEN)
def test_compile_error_returns_compiler_message(lang_id: str) -> None:
    lang = language(lang_id)
    source, fragment = BROKEN[lang_id]
    outcome = compile_source(lang, {lang.source: source.encode()}, [])
    assert not outcome.ok
    assert outcome.result is not None and outcome.result.status is Status.NONZERO_EXIT, outcome.output
    assert fragment.lower() in outcome.output.lower(), outcome.output
    assert not outcome.artifact


def test_compiled_languages_have_broken_programs() -> None:
    compiled = {lid for lid, lang in available_languages().items() if lang.compiled}
    assert compiled <= set(BROKEN)


@pytest.mark.parametrize("lang_id", ["c", "java"])
def test_identical_compile_is_cached(lang_id: str, built: Built) -> None:
    lang, _ = built(lang_id)
    from language_programs import MULTI

    # Not the source `built` compiled: the first compile here must really run.
    src = MULTI[lang_id].encode() + b"\n\n"
    first = compile_source(lang, {lang.source: src}, [])
    second = compile_source(lang, {lang.source: src}, [])
    assert first.ok and not first.cached
    assert second.ok and second.cached and second.result is None
    assert second.artifact == first.artifact
    assert second.output == first.output
    other = compile_source(lang, {lang.source: MULTI[lang_id].encode() + b"\n"}, [])
    assert other.ok and not other.cached


def test_cached_compile_keeps_compiler_warnings() -> None:
    lang = language("c")
    src = b"int main(void) { int unused; return 0; } /* unique: warning test */\n"
    first = compile_source(lang, {"main.c": src}, ["-Wall"])
    second = compile_source(lang, {"main.c": src}, ["-Wall"])
    assert first.ok and not first.cached and "unused" in first.output
    assert second.ok and second.cached and second.output == first.output
    assert set(second.artifact) == {"main"}


def test_compile_over_time_limit_is_a_compilation_error() -> None:
    lang = language("cpp")
    # A long constexpr loop: many seconds of compiler CPU for a few lines.
    src = b"""
constexpr long f() { long s = 0; for (long i = 0; i < 90000000; i++) s += i % 7; return s; }
constexpr long v = f();
int main() { return v == 0; }
// unique: compile-time-limit test
"""
    lim = replace(lang.compile_limits.default, cpu_time=0.3, wall_time=5.0)
    outcome = compile_source(lang, {lang.source: src}, ["-fconstexpr-loop-limit=99999999"], limits=lim)
    assert not outcome.ok
    assert outcome.result is not None and outcome.result.status is Status.TIME_LIMIT, outcome.output
    assert outcome.output.startswith("compilation exceeded its CPU time limit")


@pytest.mark.parametrize("lang_id", ["cpp", "java"])
def test_compile_over_memory_limit_is_a_compilation_error(lang_id: str) -> None:
    lang = language(lang_id)
    from language_programs import MULTI

    src = MULTI[lang_id].encode() + b"\n// unique: compile-memory-limit test\n"
    memory = {"cpp": 48, "java": 16}[lang_id] * MiB
    lim = replace(lang.compile_limits.default, memory=memory)
    outcome = compile_source(lang, {lang.source: src}, [], limits=lim)
    assert not outcome.ok
    assert outcome.result is not None and outcome.result.status is Status.MEMORY_LIMIT, outcome.output
    assert outcome.output.startswith("compilation exceeded its memory limit"), outcome.output


def test_any_single_file_name_is_the_source(built: Built) -> None:
    lang, _ = built("python3")
    res = run_program(lang, {"solution.py": b"print(6 * 7)"}, b"", [], limits_for("python3"))
    assert res.status is Status.OK and res.stdout == b"42\n", show(res)
    outcome = compile_source(lang, {"a.py": b"1", "b.py": b"2"}, [])
    assert not outcome.ok and "main.py" in outcome.output


def test_refused_option_is_a_compilation_error() -> None:
    lang = language("c")
    outcome = compile_source(lang, {"main.c": b"int main(){return 0;}"}, ["-Wl,-rpath,/x"])
    assert not outcome.ok and outcome.result is None
    assert "not allowed" in outcome.output


def test_arguments_are_not_shell_text(built: Built) -> None:
    lang, artifact = built("bash")
    res = run_program(lang, artifact, b"", ["hello", "$(touch /box/pwned)", "; exit 7"], limits_for("bash"))
    assert res.status is Status.OK and res.stdout == b"Hello, World!\n", show(res)


@pytest.mark.parametrize(("lang_id", "pids"), [("java", 16), ("kotlin", 16), ("javascript", 8), ("go", 8)])
def test_threaded_runtimes_fit_a_small_pids_cap(lang_id: str, pids: int, built: Built) -> None:
    # The JVM starts a thread per CPU for GC and JIT unless told otherwise (SerialGC,
    # one C1 thread, ActiveProcessorCount=1): this is what keeps it under the pids cap.
    lang, artifact = built(lang_id)
    res = run_program(lang, artifact, SUM_INPUT, ["sum"], limits_for(lang_id, pids=pids))
    assert res.status is Status.OK, show(res)
    assert res.stdout.strip().decode() == SUM_EXPECTED


LINE_BY_LINE = {
    # Interactive-style programs: prompt, read one line, answer, until end of input.
    "python3": (
        b"import sys\nwhile True:\n    try:\n        line = input('? ')\n    except EOFError:\n"
        b"        break\n    print(int(line) * 2, flush=True)\n"
    ),
    "javascript": (
        b"const rl = require('readline').createInterface({ input: process.stdin });\n"
        b"rl.on('line', (l) => console.log(String(Number(l) * 2)));\n"
    ),
    "java": (
        b"import java.util.Scanner;\npublic class Main { public static void main(String[] a) {\n"
        b"Scanner s = new Scanner(System.in); while (s.hasNextLine()) {\n"
        b"System.out.println(Integer.parseInt(s.nextLine().trim()) * 2); } } }\n"
    ),
    "c": (
        b'#include <stdio.h>\nint main(void) { int x; while (scanf("%d", &x) == 1) {\n'
        b'printf("%d\\n", 2 * x); fflush(stdout); } return 0; }\n'
    ),
}


@pytest.mark.parametrize("lang_id", sorted(LINE_BY_LINE))
def test_line_by_line_stdin(lang_id: str) -> None:
    lang = language(lang_id)
    outcome = compile_source(lang, {lang.source: LINE_BY_LINE[lang_id]}, [])
    assert outcome.ok, outcome.output
    res = run_program(lang, outcome.artifact, b"1\n2\n21\n", [], limits_for(lang_id))
    assert res.status is Status.OK, show(res)
    assert res.stdout.replace(b"? ", b"") == b"2\n4\n42\n"
