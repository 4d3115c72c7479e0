"""Jail overhead benchmark: /bin/true through every sandbox side by side, in one run.

Prints median, p90 and p99 wall milliseconds per run for a bare fork+exec, the
`unshare` command with all namespaces, bubblewrap --unshare-all, isolate and nsjail
when found on PATH, and cellblock's jail.run with full isolation. Rounds are
interleaved (one run of each per round) so that machine noise hits all alike.

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

from jail import Limits, RunSpec, Status, run

TRUE = "/bin/true"


def spawn(argv: list[str]) -> Callable[[], None]:
    def go() -> None:
        pid = os.posix_spawn(argv[0], argv, {})
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit(f"{argv} failed with wait status {status}")

    return go


def jail_run(limits: Limits) -> Callable[[], None]:
    spec = RunSpec(argv=[TRUE], limits=limits)

    def go() -> None:
        result = run(spec)
        if result.status is not Status.OK:
            raise SystemExit(f"jail.run failed: {result}")

    return go


def candidates() -> dict[str, Callable[[], None]]:
    found: dict[str, Callable[[], None]] = {"bare fork+exec": spawn([TRUE])}
    unshare = shutil.which("unshare")
    if unshare:
        found["unshare (6 namespaces)"] = spawn([unshare, "--user", "--map-root-user", "--pid", "--fork", "--mount",
                                                 "--net", "--ipc", "--uts", TRUE])
    bwrap = shutil.which("bwrap")
    if bwrap:
        found["bubblewrap --unshare-all"] = spawn([bwrap, "--unshare-all", "--ro-bind", "/usr", "/usr",
                                                   "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                                                   "--symlink", "usr/bin", "/bin", "--proc", "/proc", "--dev", "/dev",
                                                   "--tmpfs", "/tmp", TRUE])
    nsjail = shutil.which("nsjail")
    if nsjail:
        found["nsjail"] = spawn([nsjail, "-Mo", "--quiet", "-R", "/usr", "-R", "/lib", "-R", "/lib64", "-R", "/bin",
                                 "--", TRUE])
    isolate = shutil.which("isolate")
    if isolate:
        def isolate_cycle() -> None:
            for args in (["--cg", "--init"], ["--cg", "--run", "--", TRUE], ["--cg", "--cleanup"]):
                subprocess.run([isolate, *args], check=True, capture_output=True)

        found["isolate --cg init+run+cleanup"] = isolate_cycle
    found["cellblock jail.run (full)"] = jail_run(Limits())
    return found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


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
    base = statistics.median(samples["cellblock jail.run (full)"])
    print(f"/bin/true, {args.runs} runs each, interleaved, {os.cpu_count()} CPUs\n")
    print(f"| {'sandbox':32} | median ms | p90 ms | p99 ms | median vs jail.run |")
    print(f"|{'-' * 34}|-----------|--------|--------|--------------------|")
    for name, values in samples.items():
        med = statistics.median(values)
        print(f"| {name:32} | {med:9.2f} | {percentile(values, 90):6.2f} | {percentile(values, 99):6.2f} "
              f"| {med / base:17.2f}x |")


if __name__ == "__main__":
    main()
