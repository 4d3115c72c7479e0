"""Judge benchmark: one C program judged on many tests, the jail's time per test against a bare
exec of the same binary on the same inputs.

A judge runs its tests back to back, each in a fresh container, so its cost per test is the
jail's back-to-back cost, not a warm run's. This starts the whole stack with one worker,
submits a C program (it squares the number it reads) with `--tests` tests, `--rounds` times
after one warm-up (the compile cache then answers), and reads what the worker measured from
its stage histograms (core/metrics.py, what /metrics shows): `run` (time in jail.run over
the submission's tests) and `jail_overhead` (per test, jail.run minus the program's own wall
time). The bare figure: the same binary, compiled here with the language's compile command,
started with posix_spawn from Python on each test's input (stdin a file, stdout a pipe read
to its end) and waited for.

    sudo .venv/bin/python load/bench_judge.py [--tests 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from stack import running

from core.keys import Keys
from core.metrics import read_histograms
from core.redis_client import sync_client

SQUARE = """#include <stdio.h>
int main(void) {
    long x;
    if (scanf("%ld", &x) != 1) return 1;
    printf("%ld\\n", x * x);
    return 0;
}
"""
# The C language's compile command (policies/languages/c.toml), here outside the jail.
COMPILE = ["/usr/bin/gcc", "-O2", "-pipe", "-std=gnu17", "-o", "main", "main.c", "-lm"]


def judged(base: str, tests: int) -> list[float]:
    """Judge SQUARE on `tests` tests once; the programs' wall times (s), each test accepted."""
    body = {
        "language": "c",
        "source": SQUARE,
        "tests": [{"input": f"{i}\n", "expected_output": f"{i * i}\n"} for i in range(tests)],
        "wait": 60,
    }
    request = urllib.request.Request(
        f"{base}/v1/submissions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=90) as reply:
            status, view = reply.status, json.load(reply)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"the judge answered {e.code}: {e.read()[:500]!r}") from None
    if status != 200 or view.get("verdict") != "accepted" or len(view["tests"]) != tests:
        raise SystemExit(f"the judge did not accept every test: {status} {str(view)[:500]}")
    return [t["wall_time"] for t in view["tests"]]


def bare(binary: Path, tests: int, work: Path) -> list[float]:
    """Seconds of each test run bare: spawn with the input on stdin, read stdout to EOF, wait."""
    inputs = []
    for i in range(tests):
        path = work / f"in{i}"
        path.write_text(f"{i}\n")
        inputs.append(str(path))
    spent = []
    for i, name in enumerate(inputs):
        t0 = time.perf_counter()
        stdin = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        r, w = os.pipe2(os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, w, 1)]
        pid = os.posix_spawn(str(binary), [str(binary)], {}, file_actions=actions)
        os.close(w)
        os.close(stdin)
        out = b""
        while chunk := os.read(r, 65536):
            out += chunk
        os.close(r)
        _, status = os.waitpid(pid, 0)
        spent.append(time.perf_counter() - t0)
        if status != 0 or out != f"{i * i}\n".encode():
            raise SystemExit(f"the bare program failed on test {i}: {status} {out!r}")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp:
        work = Path(tmp)
        (work / "main.c").write_text(SQUARE)
        subprocess.run(COMPILE, cwd=work, check=True)
        with running(1) as stack:
            stack.wait_ready(1)
            judged(stack.base, args.tests)  # warm-up: the compile, then the cache answers
            redis = sync_client(f"unix://{stack.var}/redis/redis.sock?db=0")
            before = read_histograms(redis, Keys())
            walls = []
            jail_bare = []
            for _ in range(args.rounds):  # judge and bare in turns: machine noise hits both
                walls += judged(stack.base, args.tests)
                jail_bare += bare(work / "main", args.tests, work)
            after = read_histograms(redis, Keys())
    done = after["run"].count - before["run"].count
    if done != args.rounds:
        raise SystemExit(f"{done} submissions in the histograms, {args.rounds} expected")
    per_test = (after["run"].sum - before["run"].sum) / (done * args.tests) * 1000
    overhead = (after["jail_overhead"].sum - before["jail_overhead"].sum) / done * 1000
    program = statistics.mean(walls) * 1000
    base = statistics.mean(jail_bare) * 1000
    print(f"\nC judge: {args.tests} tests x {args.rounds} submissions, one worker, {os.cpu_count()} CPUs\n")
    print("| per test, ms (mean) | in the jail (`run`) | program's wall | jail overhead | bare exec | jail - bare |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| C, square a number | {per_test:.2f} | {program:.2f} | {overhead:.2f} | {base:.2f} | {per_test - base:.2f} |"
    )
    print(
        f"\nbare exec per test: median {statistics.median(jail_bare) * 1000:.2f} ms, "
        f"p99 {sorted(jail_bare)[int(0.99 * (len(jail_bare) - 1))] * 1000:.2f} ms",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
