"""Load test: start the stack, find its saturation throughput, load it at a share of that for
a fixed time, check that nothing was lost and that no process grew, write a report.

    .venv/bin/python load/run_load.py                                 # 60 s at 80 % of saturation
    .venv/bin/python load/run_load.py --duration 600                  # the 10-minute run
    .venv/bin/python load/run_load.py --saturation 0 --rate 20        # a fixed offered load

Starts `cellblock up` (own Redis with AOF, API on a free 127.0.0.1 port, --workers
workers) in a temp dir and waits for /v1/ready. Then:
1. saturation: locust with --users clients in a closed loop (no pause) for --saturation
   seconds; its throughput (requests/s of the whole mix) is the saturation S;
2. load: --load-factor x S requests/s offered (constant_throughput per client) for
   --duration seconds, the stack's API and worker RSS sampled every few seconds;
3. drain: wait for the queue to empty, then read the state of every submission the API
   accepted in both phases: one not `finished` is lost.

Writes to --out (default load/report/): report.md (the verdict lines, a table per request
type: requests, throughput, error rate, p50/p95/p99; RSS per process; the stack's
/metrics stage means), latency.png (p50/p95/p99 and throughput over time) and locust's
CSVs. Talks only to 127.0.0.1; bounded by the phases' durations + start-up, drain (at
most DRAIN_S) and a 60 s stop grace.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stack import ROOT, Stack, running

# After the load, how long the queue may take to empty before unfinished submissions count as lost.
DRAIN_S = 180
# RSS samples: this often, and the first minute (start-up, caches filling) is not judged.
SAMPLE_EVERY_S = 5.0
WARM_S = 60.0
# Ids per GET /v1/submissions?ids=... (the default CELLBLOCK_MAX_BATCH is 50).
ID_BATCH = 50


def read_stats(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_stats.csv") as f:
        return list(csv.DictReader(f))


def stage_means(base: str) -> dict[str, float]:
    """Mean seconds per stage from the stack's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "cellblock_stage_seconds_sum":
                sums[s.labels["stage"]] = s.value
            elif s.name == "cellblock_stage_seconds_count":
                counts[s.labels["stage"]] = s.value
    return {k: sums[k] / counts[k] for k in sums if counts.get(k)}


def table(rows: list[dict[str, str]], duration: float) -> str:
    out = [
        "| request | requests | req/s | errors | error rate | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(rows, key=lambda r: (r["Name"] == "Aggregated", r["Name"])):
        n, fails = int(r["Request Count"]), int(r["Failure Count"])
        name = "**all**" if r["Name"] == "Aggregated" else r["Name"]
        out.append(
            f"| {name} | {n} | {n / duration:.1f} | {fails} | {100 * fails / max(1, n):.2f}% | "
            f"{r['50%']} | {r['95%']} | {r['99%']} |"
        )
    return "\n".join(out)


def plot(prefix: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(f"{prefix}_stats_history.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    if not rows:
        return
    t0 = int(rows[0]["Timestamp"])
    t = [int(r["Timestamp"]) - t0 for r in rows]

    def col(name: str) -> list[float]:
        return [float(r[name]) if r[name] not in ("", "N/A") else float("nan") for r in rows]

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for p in ("50%", "95%", "99%"):
        ax1.plot(t, col(p), label=f"p{p.rstrip('%')}")
    ax1.set_ylabel("latency (ms, rolling window)")
    ax1.set_yscale("log")
    ax1.legend()
    ax1.grid(True, alpha=0.3)
    ax2.plot(t, col("Requests/s"), label="requests/s")
    ax2.plot(t, col("Failures/s"), label="failures/s")
    ax2.set_ylabel("per second")
    ax2.set_xlabel("seconds")
    ax2.legend()
    ax2.grid(True, alpha=0.3)
    fig.suptitle("cellblock load: latency percentiles and throughput over time")
    fig.tight_layout()
    fig.savefig(png, dpi=100)


@dataclass
class Phase:
    """One locust run: its stats rows, the ids it created and its count of 5xx answers."""

    name: str
    duration: int
    rows: list[dict[str, str]]
    created: list[str]
    server_errors: int

    @property
    def throughput(self) -> float:
        total = next((r for r in self.rows if r["Name"] == "Aggregated"), None)
        return int(total["Request Count"]) / self.duration if total else 0.0


def run_locust(
    base: str, out: Path, name: str, duration: int, users: int, spawn_rate: float, user_rate: float
) -> Phase:
    prefix = out / name
    record = out / f"{name}_record.json"
    env = dict(os.environ, CELLBLOCK_LOAD_RECORD=str(record), CELLBLOCK_LOAD_USER_RATE=str(user_rate))
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
    cmd = [
        locust,
        "-f",
        str(ROOT / "load" / "locustfile.py"),
        "--headless",
        "--host",
        base,
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        f"{duration}s",
        "--csv",
        str(prefix),
        "--csv-full-history",
        "--only-summary",
        "--stop-timeout",
        "30",
        "--loglevel",
        "WARNING",
    ]
    print(f"{name}: {users} users, {user_rate or 'no pause'} tasks/s each, {duration}s", file=sys.stderr)
    subprocess.run(cmd, cwd=ROOT, env=env, timeout=duration + 120, check=False)
    rec = json.loads(record.read_text())
    record.unlink()
    return Phase(name, duration, read_stats(prefix), rec["created"], rec["server_errors"])


@dataclass
class RssSampler:
    """Samples VmRSS of the stack's processes (load/stack.py: Stack.members) in a thread."""

    stack: Stack
    samples: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.wait(SAMPLE_EVERY_S):
            for pid, name in self.stack.members():
                try:
                    rss = next(
                        int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:")
                    )
                except (OSError, StopIteration):
                    continue
                self.samples.setdefault(f"{name} {pid}", []).append((time.monotonic() - t0, rss))

    def table(self) -> str:
        out = [
            "| process | RSS at 1 min MiB | RSS at end MiB | growth MiB | slope MiB/10 min (after 1 min) |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, pts in sorted(self.samples.items()):
            judged = [(t, kb / 1024) for t, kb in pts if t >= WARM_S]
            if len(judged) < 2:
                continue
            slope = statistics.linear_regression(*zip(*judged, strict=True)).slope * 600  # MiB per 600 s
            out.append(
                f"| {name} | {judged[0][1]:.1f} | {judged[-1][1]:.1f} | {judged[-1][1] - judged[0][1]:+.1f} | "
                f"{slope:+.2f} |"
            )
        return "\n".join(out)


def unfinished(base: str, ids: list[str]) -> list[str]:
    """The ids among `ids` whose submission is not finished (or unknown: lost)."""
    from urllib.parse import quote

    left = []
    for i in range(0, len(ids), ID_BATCH):
        chunk = ids[i : i + ID_BATCH]
        with urllib.request.urlopen(f"{base}/v1/submissions?ids={quote(','.join(chunk))}", timeout=30) as resp:
            found = {s["id"]: s for s in json.load(resp)["submissions"] if s}
        left += [sid for sid in chunk if found.get(sid, {}).get("state") != "finished"]
    return left


def drain(base: str) -> None:
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/v1/health", timeout=10) as resp:
            if json.load(resp)["queue_depth"] == 0:
                return
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (600: the 10-minute run)")
    parser.add_argument(
        "--saturation",
        type=int,
        default=60,
        help="seconds of the closed-loop run that measures saturation (0: skip, give --rate)",
    )
    parser.add_argument("--load-factor", type=float, default=0.8, help="share of saturation to offer")
    parser.add_argument("--rate", type=float, default=0.0, help="offered requests/s (instead of a share)")
    parser.add_argument("--users", type=int, default=16, help="clients of the saturation run")
    parser.add_argument("--user-rate", type=float, default=0.5, help="tasks/s per client in the load run")
    parser.add_argument("--spawn-rate", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "report")
    args = parser.parse_args()
    if not args.saturation and not args.rate:
        parser.error("give --rate when --saturation is 0")

    args.out.mkdir(parents=True, exist_ok=True)
    phases: list[Phase] = []
    with running(args.workers, args.out / "stack.log", CELLBLOCK_MAX_QUEUE="0") as stack:
        stack.wait_ready(args.workers)
        base = stack.base
        saturation = 0.0
        if args.saturation:
            phases.append(run_locust(base, args.out, "saturation", args.saturation, args.users, args.spawn_rate, 0))
            saturation = phases[-1].throughput
            drain(base)
        rate = args.rate or args.load_factor * saturation
        users = max(1, round(rate / args.user_rate))
        sampler = RssSampler(stack)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        try:
            phases.append(run_locust(base, args.out, "locust", args.duration, users, args.spawn_rate, rate / users))
        finally:
            sampler.stop.set()
        drain(base)
        created = [sid for p in phases for sid in p.created]
        lost = unfinished(base, created)
        stages = stage_means(base)

    load = phases[-1]
    plot(args.out / "locust", args.out / "latency.png")
    five = sum(p.server_errors for p in phases)
    report = [
        "# cellblock load report\n",
        f"{args.workers} workers, {os.cpu_count()} CPUs (locust, API, Redis and workers on the same host), "
        "mix in load/locustfile.py\n",
        f"- saturation (closed loop, {args.users} clients, {args.saturation} s): {saturation:.1f} requests/s"
        if args.saturation
        else "- saturation: not measured (--rate given)",
        f"- offered load: {rate:.1f} requests/s ({users} clients x {rate / users:.2f}/s) for {load.duration} s; "
        f"achieved {load.throughput:.1f} requests/s",
        f"- submissions accepted: {len(created)}; not finished after the drain (lost): {len(lost)}",
        f"- 5xx answers: {five}",
        "",
        table(load.rows, load.duration),
        "",
        "RSS of the stack's processes (sampled every 5 s; the first minute is start-up):\n",
        sampler.table(),
        "",
        "Mean seconds per stage (the stack's /metrics): "
        + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(stages.items())),
        "",
        "![latency and throughput](latency.png)",
        "",
    ]
    (args.out / "report.md").write_text("\n".join(report))
    print("\n".join(report))
    if lost or five:
        raise SystemExit(f"{len(lost)} submissions lost, {five} 5xx answers")


if __name__ == "__main__":
    main()
