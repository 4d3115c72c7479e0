"""Where `python -m jail run -- /bin/true` spends its work, counted in instructions.

Each row is a fresh interpreter under `valgrind --tool=callgrind` that imports one more
group of modules than the row before (and ends with os._exit, as the command does).
Instructions, not milliseconds: valgrind counts the same whatever else the machine is
doing, where this kind of machine's speed drifts by a third within a minute. The wall
times of a bare start, of all those imports and of the whole command, measured in turns,
put the counts in milliseconds for this machine at this moment; the run itself (valgrind
cannot run it: it lacks pidfd_open) is the command less its imports.

    sudo .venv/bin/python load/bench_cli.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time

# Cumulative: each group adds to those before it.
GROUPS = [
    ("the interpreter's start", "os"),
    (
        "standard library the command needs whatever it is written with",
        "re, enum, functools, collections, contextlib, importlib.util, argparse, json, ctypes, threading, "
        "signal, select, struct, fcntl, fnmatch, zlib, resource, math, errno, weakref",
    ),
    ("jail's modules on a run's path (their classes made)", "jail.cli, jail.runner, jail.cgroup_v1, jail.cgroup_v2"),
]
COMMAND = ["-m", "jail", "run", "--", "/bin/true"]


def instructions(args: list[str]) -> int:
    """Instructions `python ARGS` executes, as callgrind counts them."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if not found:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr}")
    return int(found.group(1))


def wall_ms(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="wall-time runs of each, in turns")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed (apt install valgrind)")
    rows, imports = [], []
    for name, modules in GROUPS:
        imports.append(modules)
        rows.append((name, instructions(["-c", f"import {', '.join(imports)}; os._exit(0)"])))
    all_imports = ["-c", f"import {', '.join(imports)}; os._exit(0)"]
    bare, imported, command = [], [], []
    for _ in range(args.runs):
        bare.append(wall_ms(["-c", "pass"]))
        imported.append(wall_ms(all_imports))
        command.append(wall_ms(COMMAND))
    start_ms, imports_ms, command_ms = map(statistics.median, (bare, imported, command))
    per_ms = (rows[-1][1] - rows[0][1]) / (imports_ms - start_ms)  # the rate the imports ran at
    print(f"`python {' '.join(COMMAND)}`, Python {sys.version.split()[0]}, median of {args.runs} in turns\n")
    print("| step (cumulative) | M instructions | added | ~ms here now | share of the command |")
    print("|---|---:|---:|---:|---:|")
    before = 0
    for name, count in rows:
        added = count - before
        ms = start_ms if before == 0 else added / per_ms  # a start is also the kernel's exec: its time as measured
        print(f"| {name} | {count / 1e6:.1f} | {added / 1e6:+.1f} | {ms:.1f} | {ms / command_ms:.0%} |")
        before = count
    run_ms = command_ms - imports_ms
    print(f"| the run itself (arguments, the container, its teardown) | | | {run_ms:.1f} | {run_ms / command_ms:.0%} |")
    print(
        f"\nwall: the command {command_ms:.1f} ms, its imports alone {imports_ms:.1f} ms, `python -c pass` "
        f"{start_ms:.1f} ms (valgrind cannot run the command itself: it lacks pidfd_open)"
    )


if __name__ == "__main__":
    main()
