"""Benchmark: hello world per language, end to end in the jail versus bare on the host.

Owns nothing but measurement. For each available language it prints the median of
`--repeat` runs of:

  jail compile+run   compile_source (compile cache off) then run_program, in the jail
  jail cached+run    compile_source hitting the compile cache, then run_program
  bare compile+run   the same compile and run argv as plain subprocesses on the host
  bare run           the run argv alone on the host
  overhead           jail cached+run / bare run (what a judged test pays for the jail)

Usage (as root, from the repository root):
    python -m load.bench_languages [--repeat 5] [--lang c --lang java ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from policies.languages import Language, available_languages  # noqa: E402
from worker import toolchain  # noqa: E402
from worker.compile_cache import CompileCache  # noqa: E402

HELLO: dict[str, str] = {
    "c": '#include <stdio.h>\nint main(void) { puts("Hello, World!"); return 0; }\n',
    "cpp": '#include <iostream>\nint main() { std::cout << "Hello, World!\\n"; }\n',
    "python3": 'print("Hello, World!")\n',
    "java": 'public class Main { public static void main(String[] a) { System.out.println("Hello, World!"); } }\n',
    "kotlin": 'fun main() { println("Hello, World!") }\n',
    "javascript": 'console.log("Hello, World!");\n',
    "typescript": 'const greeting: string = "Hello, World!";\nconsole.log(greeting);\n',
    "go": 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("Hello, World!") }\n',
    "rust": 'fn main() { println!("Hello, World!"); }\n',
    "ruby": 'puts "Hello, World!"\n',
    "php": '<?php echo "Hello, World!\\n";\n',
    "bash": 'echo "Hello, World!"\n',
    "lua": 'print("Hello, World!")\n',
}


JAIL_FAULTS = 0


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of `repeat` successful calls. A sandbox fault (JailError) is what
    the worker retries: here too it is retried, counted, and left out of the timings."""
    global JAIL_FAULTS
    from jail import JailError

    times: list[float] = []
    while len(times) < repeat:
        t0 = time.perf_counter()
        try:
            fn()
        except JailError as e:
            JAIL_FAULTS += 1
            print(f"  (jail fault, retried: {e})", file=sys.stderr)
            if JAIL_FAULTS > 20:
                raise
            continue
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def static_hello(tmp: Path) -> bytes:
    (tmp / "hello.c").write_text(HELLO["c"])
    subprocess.run(["/usr/bin/gcc", "-O2", "-static", "-o", str(tmp / "hello"), str(tmp / "hello.c")], check=True)
    return (tmp / "hello").read_bytes()


def bare_env(lang: Language, box: Path) -> dict[str, str]:
    limits = lang.run_limits.default
    env = toolchain.build_env(lang, limits)
    # The jail's /box and /tmp are fresh per run: give the bare run fresh ones too.
    return {k: v.replace("/tmp", str(box / "tmp")).replace("/box", str(box)) for k, v in env.items()}


def bare(lang: Language, sources: dict[str, bytes], compile_too: bool, artifact_dir: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as d:
        box = Path(d)
        (box / "tmp").mkdir()
        env = bare_env(lang, box)
        if compile_too or artifact_dir is None:
            for name, data in {**dict(lang.extra_files), **sources}.items():
                (box / name).write_bytes(data)
                (box / name).chmod(0o755)
        if lang.compile is not None and compile_too:
            argv = toolchain.build_argv(lang.compile, lang.compile_limits.default)
            subprocess.run(argv, cwd=box, env=env, check=True, capture_output=True)
        elif artifact_dir is not None:
            subprocess.run(["cp", "-a", f"{artifact_dir}/.", str(box)], check=True)
        argv = toolchain.build_argv(lang.run, lang.run_limits.default)
        out = subprocess.run(argv, cwd=box, env=env, capture_output=True, check=True, stdin=subprocess.DEVNULL)
        assert out.stdout == b"Hello, World!\n", out


def bench(lang: Language, repeat: int, cache_dir: Path, tmp: Path) -> dict[str, float]:
    if lang.id == "executable":
        sources = {"main": static_hello(tmp)}
    else:
        sources = {lang.source: HELLO[lang.id].encode()}
    limits = lang.run_limits.default

    def jail_once() -> None:
        outcome = toolchain.compile_source(lang, sources, [])
        assert outcome.ok, outcome.output
        res = toolchain.run_program(lang, outcome.artifact, b"", [], limits)
        assert res.stdout == b"Hello, World!\n", res

    toolchain.set_cache(None)
    full = median_time(jail_once, repeat)
    toolchain.set_cache(CompileCache(cache_dir, 256 << 20))
    jail_once()  # fill the cache
    cached = median_time(jail_once, repeat)

    # A compiled copy of the artifact for the bare run-only measurement.
    artifact_dir = tmp / f"artifact-{lang.id}"
    artifact_dir.mkdir()
    outcome = toolchain.compile_source(lang, sources, [])
    for name, data in outcome.artifact.items():
        (artifact_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (artifact_dir / name).write_bytes(data)
        (artifact_dir / name).chmod(0o755)
    bare_full = median_time(lambda: bare(lang, sources, compile_too=True), repeat)
    bare_run = median_time(lambda: bare(lang, sources, compile_too=False, artifact_dir=artifact_dir), repeat)
    return {"full": full, "cached": cached, "bare_full": bare_full, "bare_run": bare_run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lang", action="append", help="only these language ids")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the jail needs root", file=sys.stderr)
        return 2
    langs = available_languages()
    ids = args.lang or sorted(langs)
    ms = lambda s: f"{s * 1000:9.1f}"  # noqa: E731
    print(
        f"{'language':<12} {'version':<14} {'jail c+r ms':>11} {'jail cached+r':>13} "
        f"{'bare c+r ms':>11} {'bare run ms':>11} {'overhead':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-langs-") as d:
        for lang_id in ids:
            lang = langs[lang_id]
            r = bench(lang, args.repeat, Path(d) / "cache", Path(d))
            print(
                f"{lang_id:<12} {lang.version[:14]:<14} {ms(r['full']):>11} {ms(r['cached']):>13} "
                f"{ms(r['bare_full']):>11} {ms(r['bare_run']):>11} {r['cached'] / r['bare_run']:>7.2f}x",
                flush=True,
            )
    print(f"jail faults retried: {JAIL_FAULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
