"""The compile and run stages of a submission, for any language definition.

Owns: turning a `policies.languages.Language` plus user input (files, compiler options,
program arguments) into jail RunSpecs, under the rules of core/inputs.py (argv lists
only, a whitelist of compiler options, plain file names); the compile cache lookup; and
reading the runtime's own out-of-memory deaths (JVM, Node, Go, Rust...) as
`memory_limit` rather than a runtime error.

A failing compile — including one that runs out of time or memory — is a compilation
error (CompileOutcome.ok False with the compiler's output), never a runtime error. A
sandbox fault raises jail.JailError (or comes back as status internal_error) and is for
the caller to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from core import settings
from core.inputs import InputError, check_args, check_collect, check_options, normalize_files
from core.limits import COLLECT_BYTES, COLLECT_FILES
from jail import run, start
from jail.sink import OutputSink
from jail.spec import DEFAULT_ENV, Limits, MiB, Pipe, RunResult, RunSpec, Status
from policies.languages import Language
from worker.compile_cache import CompileCache, cache_key

log = logging.getLogger(__name__)

BOX = "/box"
OUTPUT_CAP = 64 * 1024  # compiler output handed back to the user
# The compiler's warnings are cached with the artifact under a name no file can have.
_OUTPUT_ENTRY = "\0compiler-output"

BASE_ENV = {**DEFAULT_ENV, "HOME": BOX, "LC_ALL": "C.UTF-8"}

_COMPILE_FAILURE_MESSAGES = {
    Status.TIME_LIMIT: "compilation exceeded its CPU time limit",
    Status.WALL_TIME_LIMIT: "compilation exceeded its wall time limit",
    Status.MEMORY_LIMIT: "compilation exceeded its memory limit",
    Status.OUTPUT_LIMIT: "compiler output exceeded its limit",
    Status.FILE_SIZE_LIMIT: "compilation produced a file above the size limit",
    Status.SECURITY_VIOLATION: "the compiler made a forbidden system call",
    Status.SIGNALED: "the compiler was killed by a signal",
}


@dataclass(slots=True)
class CompileOutcome:
    """Result of the compile stage. `artifact` is what run_program takes for each test."""

    ok: bool
    artifact: dict[str, bytes] = field(default_factory=dict)
    output: str = ""
    result: RunResult | None = None  # None when nothing ran (interpreted, cached, refused)
    cached: bool = False


# --------------------------------------------------------------------------- argv building


def heap_mib(memory: int) -> int:
    """Heap for a self-sizing runtime (JVM -Xmx, V8 old space) under a cgroup cap of
    `memory` bytes: the rest is left for thread stacks, JIT code, metaspace and the
    runtime's own C heap, so a hog ends with the runtime's OOM message, not SIGKILL."""
    mib = memory // MiB
    return max(16, mib * 3 // 4 - 48)


def _subst(text: str, limits: Limits) -> str:
    if "{" not in text:
        return text
    return text.replace("{heap_mib}", str(heap_mib(limits.memory))).replace("{memory_mib}", str(limits.memory // MiB))


def build_argv(
    template: Sequence[str], limits: Limits, options: Sequence[str] = (), args: Sequence[str] = ()
) -> list[str]:
    """Expand a definition's argv: "{options}"/"{args}" splice lists, numbers substitute."""
    argv: list[str] = []
    for item in template:
        if item == "{options}":
            argv.extend(options)
        elif item == "{args}":
            argv.extend(args)
        else:
            argv.append(_subst(item, limits))
    return argv


def build_env(language: Language, limits: Limits) -> dict[str, str]:
    env = dict(BASE_ENV)
    env.update((k, _subst(v, limits)) for k, v in language.env)
    return env


# --------------------------------------------------------------------------- cache


_cache: CompileCache | None = None
_cache_chosen = False


def configured_cache(cfg: settings.Config) -> CompileCache | None:
    """The compile cache the settings describe (CELLBLOCK_CACHE_DIR, CELLBLOCK_COMPILE_CACHE_MAX);
    None when its directory is unusable: that slows compiles down but must not fail them."""
    try:
        return CompileCache(cfg.cache_dir, cfg.compile_cache_max)
    except OSError as e:
        log.warning("compile cache disabled: %s", e)
        return None


def _get_cache() -> CompileCache | None:
    global _cache, _cache_chosen
    if not _cache_chosen:
        _cache, _cache_chosen = configured_cache(settings.load()), True
    return _cache


def set_cache(cache: CompileCache | None) -> None:
    """Use `cache` (None: none) instead of the one configured from the environment."""
    global _cache, _cache_chosen
    _cache, _cache_chosen = cache, True


# --------------------------------------------------------------------------- stages


def stage_spec(
    language: Language,
    argv: list[str],
    limits: Limits,
    files: Mapping[str, bytes],
    stdin: bytes | Pipe | None = None,
    collect: Sequence[str] = (),
    collect_files: int | None = None,
    collect_bytes: int | None = None,
) -> RunSpec:
    """One compile or run stage's RunSpec: the language's env, binds and profile; `collect`
    and its caps as jail.spec.RunSpec takes them (None: the jail's own bounds)."""
    return RunSpec(
        argv=argv,
        limits=limits,
        stdin=stdin,
        files={f"{BOX}/{n}": d for n, d in files.items()},
        collect=list(collect),
        collect_files=collect_files,
        collect_bytes=collect_bytes,
        env=build_env(language, limits),
        binds=list(language.binds),
        profile=language.profile,
    )


def settled(language: Language, res: RunResult, limits: Limits) -> RunResult:
    """A stage's result, with a runtime that died of its own out-of-memory error (javac/kotlinc's
    OutOfMemoryError, cc1's "out of memory", V8's heap limit...) reported as memory_limit."""
    if is_runtime_oom(language, res, limits):
        res.status = Status.MEMORY_LIMIT
    return res


def _run_stage(
    language: Language,
    argv: list[str],
    limits: Limits,
    files: Mapping[str, bytes],
    stdin: bytes | None = None,
    collect: Sequence[str] = (),
) -> RunResult:
    """One compile or run stage in the jail."""
    return settled(language, run(stage_spec(language, argv, limits, files, stdin, collect)), limits)


def _has_artifacts(language: Language, collected: Mapping[str, bytes]) -> bool:
    return all(any(name == a or name.startswith(a.rstrip("/") + "/") for name in collected) for a in language.artifacts)


def _cap(text: bytes) -> str:
    if len(text) > OUTPUT_CAP:
        text = text[:OUTPUT_CAP] + b"\n[... compiler output truncated ...]\n"
    return text.decode(errors="replace")


def compile_source(
    language: Language,
    files: Mapping[str, bytes],
    options: Sequence[str],
    limits: Limits | None = None,
    before_compiling: Callable[[], None] | None = None,
) -> CompileOutcome:
    """Compile `files` with the language's compile command in the jail (or from cache).

    Interpreted languages compile to their own sources. Refused options or file names
    come back as a failed compile with the reason, like a compiler would report them.
    `before_compiling` is called when the compiler is about to run (not on a cache hit).
    """
    try:
        sources = normalize_files(language, files)
        options = check_options(language, options)
    except InputError as e:
        return CompileOutcome(ok=False, output=f"{e.field}: {e.reason}")
    if language.compile is None:
        return CompileOutcome(ok=True, artifact=sources)

    cache = _get_cache()
    recipe = repr((language.compile, language.artifacts, language.env, language.extra_files))
    key = cache_key(language.id, f"{language.version} {language.toolchain}", sources, options, recipe)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            warnings = hit.pop(_OUTPUT_ENTRY, b"").decode(errors="replace")
            return CompileOutcome(ok=True, artifact=hit, output=warnings, cached=True)

    if before_compiling is not None:
        before_compiling()
    limits = limits or language.compile_limits.default
    res = _run_stage(
        language,
        build_argv(language.compile, limits, options=options),
        limits,
        {**dict(language.extra_files), **sources},
        collect=language.artifacts,
    )
    output = _cap(res.stderr + res.stdout)
    # A truncated collect (artifacts above the compile's disk limit, or nested too deep) would
    # be a partial program, and cached: the compile's failure, as any other it causes.
    if res.status is Status.OK and _has_artifacts(language, res.files) and not res.files_truncated:
        artifact = {n: d for n, d in res.files.items()}
        if cache is not None:
            try:
                cache.put(key, {**artifact, _OUTPUT_ENTRY: output.encode()})
            except OSError as e:
                log.warning("compile cache write failed: %s", e)
        return CompileOutcome(ok=True, artifact=artifact, output=output, result=res)
    if res.status is Status.OK and res.files_truncated:
        reason = f"the compiler's {', '.join(language.artifacts)} are too large to read back"
    elif res.status is Status.OK:
        reason = f"the compiler produced no {', '.join(language.artifacts)}"
    elif res.status is Status.NONZERO_EXIT:
        reason = ""
    else:
        reason = _COMPILE_FAILURE_MESSAGES.get(res.status, f"compilation failed: {res.status}")
        if res.status is Status.SIGNALED and res.signal:
            reason += f" ({res.signal})"
    if reason:
        output = f"{reason}\n{output}" if output else reason
    return CompileOutcome(ok=False, output=output, result=res)


def is_runtime_oom(language: Language, res: RunResult, limits: Limits) -> bool:
    """Did the program die because of memory although the jail saw an ordinary exit?

    Runtimes that size their own heap (JVM, V8) or check allocations (Go, Rust, CPython)
    print their own OOM message and exit or abort before the cgroup kills them.
    """
    if res.status not in (Status.NONZERO_EXIT, Status.SIGNALED):
        return False
    if res.peak_memory >= 0.95 * limits.memory:
        return True
    tail = res.stderr[-16384:]
    return any(p.search(tail) for p in language.oom_patterns)


def program_spec(
    language: Language,
    artifact_or_sources: Mapping[str, bytes],
    stdin: bytes | Pipe,
    args: Sequence[str],
    limits: Limits,
    collect: Sequence[str] = (),
    collect_budget: int | None = None,
) -> RunSpec:
    """The RunSpec that runs the compiled artifact (or the sources, for interpreted languages).

    `collect`: the submission's patterns of files to read back after the run (rules:
    core.inputs.check_collect), at most COLLECT_FILES files and COLLECT_BYTES bytes, or
    `collect_budget` bytes when that is less (what the result may still keep)."""
    args = check_args(args)
    files = dict(artifact_or_sources)
    if language.compile is None:
        files = normalize_files(language, files)
    most = COLLECT_BYTES if collect_budget is None else max(0, min(COLLECT_BYTES, collect_budget))
    return stage_spec(
        language,
        build_argv(language.run, limits, args=args),
        limits,
        files,
        stdin=stdin,
        collect=check_collect(collect),
        collect_files=COLLECT_FILES,
        collect_bytes=most,
    )


def run_program(
    language: Language,
    artifact_or_sources: Mapping[str, bytes],
    stdin: bytes,
    args: Sequence[str],
    limits: Limits,
    sink: OutputSink | None = None,
    collect: Sequence[str] = (),
    collect_budget: int | None = None,
) -> RunResult:
    """Run the compiled artifact (or the sources) once; its output also to `sink` as it comes;
    the files `collect` matches come back in RunResult.files (see program_spec)."""
    spec = program_spec(language, artifact_or_sources, stdin, args, limits, collect, collect_budget)
    if sink is None:
        return settled(language, run(spec), limits)
    with start(spec) as running:
        return settled(language, running.finish(sink), limits)
