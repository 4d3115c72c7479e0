"""Load test: start the stack, run locust headless against it for a fixed time, write a report.

    .venv/bin/python load/run_load.py                      # 60 s, 16 users
    .venv/bin/python load/run_load.py --duration 600       # the 10-minute run

Starts `cellblock up` (own Redis with AOF, API on a free 127.0.0.1 port, --workers
workers) in a temp dir, waits for /v1/ready, runs `locust --headless` with
load/locustfile.py for --duration seconds, then stops the stack (SIGTERM) and writes to
--out (default load/report/): report.md (a table per request type: requests,
throughput, error rate, p50/p95/p99, and the stack's /metrics stage histograms' means),
latency.png (p50/p95/p99 and throughput over time) and locust's CSVs. Talks only to
127.0.0.1; bounded by --duration (+ start-up and a 60 s stop grace).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, workers: int, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/v1/ready", timeout=5) as resp:
                if json.load(resp)["workers"] >= workers:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"stack at {base} not ready after {seconds}s")


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
    out = ["| request | requests | req/s | errors | error rate | p50 ms | p95 ms | p99 ms |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["Name"] == "Aggregated", r["Name"])):
        n, fails = int(r["Request Count"]), int(r["Failure Count"])
        name = "**all**" if r["Name"] == "Aggregated" else r["Name"]
        out.append(f"| {name} | {n} | {n / duration:.1f} | {fails} | {100 * fails / max(1, n):.2f}% | "
                   f"{r['50%']} | {r['95%']} | {r['99%']} |")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (600: the 10-minute run)")
    parser.add_argument("--users", type=int, default=16, help="concurrent simulated clients")
    parser.add_argument("--spawn-rate", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "load" / "report")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cellblock-load-"))
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBLOCK_")}
    env.update({"CELLBLOCK_VAR_DIR": str(tmp / "var"), "CELLBLOCK_PORT": str(port), "CELLBLOCK_HOST": "127.0.0.1",
                "CELLBLOCK_WORKERS": str(args.workers), "CELLBLOCK_CACHE_DIR": str(tmp / "cache"),
                "CELLBLOCK_LOG_LEVEL": "WARNING", "CELLBLOCK_MAX_QUEUE": "0", "PYTHONPATH": str(ROOT)})
    with open(args.out / "stack.log", "wb") as log:
        stack = subprocess.Popen([sys.executable, "-m", "cli", "up"], cwd=ROOT, env=env, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    prefix = args.out / "locust"
    try:
        wait_ready(base, args.workers)
        locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or "locust"
        cmd = [locust, "-f", str(ROOT / "load" / "locustfile.py"), "--headless", "--host", base,
               "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
               "--csv", str(prefix), "--csv-full-history", "--only-summary", "--stop-timeout", "30",
               "--loglevel", "WARNING"]
        print("running:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, cwd=ROOT, timeout=args.duration + 120, check=False)
        stages = stage_means(base)
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = read_stats(prefix)
    plot(prefix, args.out / "latency.png")
    report = ["# cellblock load report\n",
              f"{args.duration} s, {args.users} users, {args.workers} workers, {os.cpu_count()} CPUs "
              f"(locust, API, Redis and workers on the same host), mix in load/locustfile.py\n",
              table(rows, args.duration), "",
              "Mean seconds per stage (the stack's /metrics): " +
              ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(stages.items())), "",
              "![latency and throughput](latency.png)", ""]
    (args.out / "report.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
