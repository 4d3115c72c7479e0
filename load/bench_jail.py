"""Jail overhead benchmark: /bin/true through every sandbox side by side, in one run.

Two tables:
- latency: median, p90, p99 wall milliseconds of one run, rounds interleaved (one run
  of each sandbox per round) so that machine noise hits all alike. cellblock appears
  twice: with its builder process (CELLBLOCK_JAIL_WARM=2: a container is ready when
  the job comes, as in a worker between jobs) and building each container in the
  calling process (WARM=0).
- throughput: the same sandboxes back to back, runs per second and median wall per
  run (for the builder, this is bound by how fast it builds containers).

Compared: a bare fork+exec, `unshare` with six namespaces, bubblewrap --unshare-all,
and isolate and nsjail when found on PATH.

    sudo .venv/bin/python load/bench_jail.py --runs 300
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable

from jail import Jail, Limits, RunSpec, Status
from jail.config import JailConfig

TRUE = "/bin/true"
WARM = "cellblock jail.run, container ready"


def spawn(argv: list[str]) -> Callable[[], None]:
    def go() -> None:
        pid = os.posix_spawn(argv[0], argv, {})
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit(f"{argv} failed with wait status {status}")

    return go


def jail_run(jail: Jail) -> Callable[[], None]:
    spec = RunSpec(argv=[TRUE], limits=Limits())

    def go() -> None:
        result = jail.run(spec)
        if result.status is not Status.OK:
            raise SystemExit(f"jail.run failed: {result}")

    return go


def candidates() -> dict[str, Callable[[], None]]:
    found: dict[str, Callable[[], None]] = {"bare fork+exec": spawn([TRUE])}
    unshare = shutil.which("unshare")
    if unshare:
        found["unshare (6 namespaces)"] = spawn(
            [unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount", "--net", "--ipc", "--uts", TRUE]
        )
    bwrap = shutil.which("bwrap")
    if bwrap:
        found["bubblewrap --unshare-all"] = spawn(
            [
                bwrap,
                "--unshare-all",
                "--ro-bind",
                "/usr",
                "/usr",
                "--symlink",
                "usr/lib",
                "/lib",
                "--symlink",
                "usr/lib64",
                "/lib64",
                "--symlink",
                "usr/bin",
                "/bin",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                TRUE,
            ]
        )
    nsjail = shutil.which("nsjail")
    if nsjail:
        found["nsjail"] = spawn(
            [nsjail, "-Mo", "--quiet", "-R", "/usr", "-R", "/lib", "-R", "/lib64", "-R", "/bin", "--", TRUE]
        )
    isolate = shutil.which("isolate")
    if isolate:

        def isolate_cycle() -> None:
            for args in (["--cg", "--init"], ["--cg", "--run", "--", TRUE], ["--cg", "--cleanup"]):
                subprocess.run([isolate, *args], check=True, capture_output=True)

        found["isolate --cg init+run+cleanup"] = isolate_cycle
    found[WARM] = jail_run(Jail(JailConfig(warm=2)))
    found["cellblock jail.run, built per run"] = jail_run(Jail(JailConfig(warm=0)))
    return found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    subjects = candidates()
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for round_no in range(args.warmup + args.runs):
        for name, go in subjects.items():
            t0 = time.perf_counter()
            go()
            elapsed = (time.perf_counter() - t0) * 1000
            if round_no >= args.warmup:
                samples[name].append(elapsed)
    base = statistics.median(samples[WARM])
    width = max(map(len, subjects))
    print(f"latency: /bin/true, {args.runs} runs each, interleaved, {os.cpu_count()} CPUs\n")
    print(f"| {'sandbox':{width}} | median ms | p90 ms | p99 ms | median / cellblock |")
    print(f"|{'-' * (width + 2)}|-----------|--------|--------|--------------------|")
    for name, values in samples.items():
        med = statistics.median(values)
        print(
            f"| {name:{width}} | {med:9.2f} | {percentile(values, 90):6.2f} | {percentile(values, 99):6.2f} "
            f"| {med / base:17.2f}x |"
        )
    print(f"\nthroughput: /bin/true, {args.runs} runs back to back per sandbox\n")
    print(f"| {'sandbox':{width}} | runs/s | median ms |")
    print(f"|{'-' * (width + 2)}|--------|-----------|")
    for name, go in subjects.items():
        walls = []
        t_start = time.perf_counter()
        for _ in range(args.runs):
            t0 = time.perf_counter()
            go()
            walls.append((time.perf_counter() - t0) * 1000)
        rate = args.runs / (time.perf_counter() - t_start)
        print(f"| {name:{width}} | {rate:6.0f} | {statistics.median(walls):9.2f} |")


if __name__ == "__main__":
    main()
