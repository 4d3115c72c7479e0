"""Accounting and limit figures of the jail, printed as a table.

- CPU time of a program that burns exactly 1.00 s of its own CPU clock (error, %)
- 20 runs of the same CPU-bound program: coefficient of variation of cpu_time
- peak_memory of a program that touches 100 MiB (error, %)
- CPU used when a 0.5 s limit stops a spinner, single-threaded and in 8 threads
- memory overshoot of a 64 MiB cap under a 300 MiB touch
- output cap to the byte (1000-byte cap, 1001 bytes written)

    sudo .venv/bin/python load/bench_accounting.py
    python tests/vm/run.py --kernel 6.12 -- .venv/bin/python load/bench_accounting.py   # on cgroup v2
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from jail import Jail, Limits, MiB, RunSpec, Status
from jail.cgroup_v2 import is_cgroup2

PROGRAMS = Path(__file__).resolve().parents[1] / "tests" / "jail" / "programs"


def build() -> dict[str, bytes]:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in PROGRAMS.glob("*.c"):
            binary = Path(tmp) / source.stem
            subprocess.run(["gcc", "-O1", "-static", "-pthread", "-o", str(binary), str(source)], check=True)
            out[source.stem] = binary.read_bytes()
    return out


def main() -> None:
    programs = build()
    jail = Jail()
    rows: list[tuple[str, str, str]] = []

    def one(prog: str, args: list[str], limits: Limits) -> object:
        return jail.run(RunSpec(argv=[f"./{prog}", *args], files={f"/box/{prog}": programs[prog]}, limits=limits))

    burns = [one("burn", ["1.0"], Limits(cpu_time=3, wall_time=10)).cpu_time for _ in range(20)]
    mean = statistics.mean(burns)
    rows.append(
        ("1.00 s CPU burn: reported cpu_time (mean of 20)", f"{mean:.4f} s", f"error {100 * (mean - 1):+.2f} %")
    )
    rows.append(
        ("same, coefficient of variation over 20 runs", f"{100 * statistics.stdev(burns) / mean:.3f} %", "goal < 2 %")
    )
    peaks = [one("touch", ["100"], Limits(memory=256 * MiB)).peak_memory for _ in range(5)]
    peak = statistics.median(peaks)
    rows.append(
        (
            "100 MiB touch: peak_memory (median of 5)",
            f"{peak / MiB:.2f} MiB",
            f"error {100 * (peak / (100 * MiB) - 1):+.2f} %",
        )
    )
    for threads in (1, 8):
        r = one("spin_threads", [str(threads)], Limits(cpu_time=0.5, wall_time=10, cpus=2))
        rows.append(
            (f"0.5 s CPU limit, {threads} spinning thread(s): CPU used", f"{r.cpu_time:.3f} s", f"status {r.status}")
        )
    r = one("touch", ["300"], Limits(memory=64 * MiB))
    rows.append(
        (
            "64 MiB cap, 300 MiB touch: peak_memory",
            f"{r.peak_memory / MiB:.2f} MiB",
            f"over cap {100 * (r.peak_memory / (64 * MiB) - 1):+.2f} %, status {r.status}",
        )
    )
    r = jail.run(RunSpec(argv=["/usr/bin/head", "-c", "1001", "/dev/zero"], limits=Limits(output=1000)))
    rows.append(("1000-byte output cap, 1001 bytes written", f"{len(r.stdout)} bytes kept", f"status {r.status}"))
    assert r.status is Status.OUTPUT_LIMIT
    jail.close()
    width = max(len(r[0]) for r in rows)
    version = 2 if is_cgroup2("/sys/fs/cgroup") else 1
    print(f"cgroup v{version}, Linux {os.uname().release}, {os.cpu_count()} CPU(s)\n")
    print(f"| {'measure':{width}} | value | note |\n|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name:{width}} | {value} | {note} |")


if __name__ == "__main__":
    main()
