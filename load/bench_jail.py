"""Jail overhead benchmark: /bin/true through every sandbox side by side, in one run.

Two tables, each with median, p90 and p99 wall milliseconds of one run and runs per second:
- interleaved: one run of each sandbox per round, in an order shuffled every round, so that
  machine noise hits all alike (the latency a lone run sees);
- back to back: each sandbox's runs one after another (what a judge running many tests, or a
  batch of small runs, sees), with the machine's CPU time per run over the stretch (every
  process and kernel thread, from /proc/stat: on an otherwise idle machine, what a run costs).
  The runs come in blocks (`--block` in a row, after a few unmeasured ones that bring the
  block to its steady pace), and the blocks of all sandboxes take turns in an order shuffled
  every round: the speed of this kind of machine drifts by a third within a minute, which a
  whole sandbox's stretch after another's would take for a difference between them.

Then the builder alone: containers taken and given back with nothing run, back to back, the
rate at which it builds and tears them down (what bounds a judge's runs when CPUs are free).

cellblock appears three ways: with its builder process (CELLBLOCK_JAIL_WARM=2: a container
is ready when the job comes, as in a worker between jobs), building each container in the
calling process (WARM=0), and as a command (`python -m jail run -- /bin/true`, a whole
process: interpreter, imports, one run), the way bwrap, isolate and nsjail are used.

Compared: a bare fork+exec, `unshare` with six namespaces, bubblewrap --unshare-all,
and isolate and nsjail when found on PATH.

    sudo .venv/bin/python load/bench_jail.py --runs 300
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from jail import Jail, Limits, RunSpec, Status
from jail.config import JailConfig
from jail.sandbox import Shape
from jail.zygote import Builder

TRUE = "/bin/true"
# What the kernel finishes after a run has returned (a network namespace's cleanup, a cgroup's
# freeing) is done well within this.
DRAIN = 0.05
WARM = "cellblock jail.run, container ready"


def spawn(argv: list[str], quiet: bool = False) -> Callable[[], None]:
    """argv run to its end; `quiet`: its stdout and stderr to /dev/null."""
    silence = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)] if quiet else []

    def go() -> None:
        pid = os.posix_spawn(argv[0], argv, dict(os.environ), file_actions=silence)
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
    found["cellblock python -m jail run (process)"] = spawn(
        [sys.executable, "-m", "jail", "run", "--", TRUE], quiet=True
    )
    return found


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def table(
    title: str, samples: dict[str, list[float]], seconds: dict[str, float], cpu: dict[str, float] | None = None
) -> None:
    """One table: median, p90, p99 ms of a run and runs/s, for each sandbox (and the machine's
    CPU ms per run, if given)."""
    base = statistics.median(samples[WARM])
    width = max(map(len, samples))
    extra = (" CPU ms/run |", "------------|") if cpu else ("", "")
    print(f"{title}\n")
    print(f"| {'sandbox':{width}} | median ms | p90 ms | p99 ms | runs/s | median / cellblock ready |{extra[0]}")
    print(f"|{'-' * (width + 2)}|-----------|--------|--------|--------|--------------------------|{extra[1]}")
    for name, values in samples.items():
        med = statistics.median(values)
        print(
            f"| {name:{width}} | {med:9.2f} | {percentile(values, 90):6.2f} | {percentile(values, 99):6.2f} "
            f"| {len(values) / seconds[name]:6.0f} | {med / base:23.2f}x |" + (f" {cpu[name]:10.2f} |" if cpu else "")
        )
    print()


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat, all but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def timed(go: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    go()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--block", type=int, default=30, help="back to back: measured runs in a row per turn")
    args = parser.parse_args()
    subjects = candidates()
    names = list(subjects)
    # Interleaved: a round runs each sandbox once, in a new order each round. runs/s here is
    # 1 / the mean time of a run (runs of the others come between).
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for round_no in range(args.warmup + args.runs):
        random.shuffle(names)
        for name in names:
            elapsed = timed(subjects[name])
            if round_no >= args.warmup:
                samples[name].append(elapsed * 1000)
    spent = {name: sum(values) / 1000 for name, values in samples.items()}
    print(f"/bin/true, {args.runs} runs of each sandbox, {os.cpu_count()} CPUs\n")
    table("interleaved (order shuffled every round)", samples, spent)
    # Back to back: each sandbox's runs in a row, a block at a time, the sandboxes' blocks in
    # turns; runs/s and CPU count the measured stretches.
    cpu = dict.fromkeys(subjects, 0.0)
    spent = dict.fromkeys(subjects, 0.0)
    samples = {name: [] for name in subjects}
    settle = max(2, args.block // 6)  # runs a block needs to reach its pace (the builder's ready ones used up)
    for turn in range(-(-args.runs // args.block)):
        random.shuffle(names)
        for name in names:
            go, count = subjects[name], min(args.block, args.runs - turn * args.block)
            for _ in range(settle):
                go()
            start, busy = time.perf_counter(), machine_cpu()
            samples[name] += [timed(go) * 1000 for _ in range(count)]
            spent[name] += time.perf_counter() - start
            time.sleep(DRAIN)  # the kernel's deferred work of these runs counts to them, not the next block
            cpu[name] += machine_cpu() - busy
    table("back to back", samples, spent, {name: busy / args.runs * 1000 for name, busy in cpu.items()})
    builder = Builder(JailConfig(warm=2))
    try:
        for _ in range(args.warmup):
            builder.take(Shape()).release()
        start = time.perf_counter()
        for _ in range(args.runs):
            builder.take(Shape()).release()
        rate = args.runs / (time.perf_counter() - start)
    finally:
        builder.close()
    print(f"builder alone: {rate:.0f} containers/s taken and given back, nothing run, back to back")


if __name__ == "__main__":
    main()
