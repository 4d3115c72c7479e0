"""Service benchmark: start the whole stack, submit hello-world C and Python with `wait` at
1/8/32 concurrent clients for a fixed time each, print throughput, latency percentiles and
where the time went (HTTP+API / queue / worker / jail).

    .venv/bin/python load/bench_service.py [--duration 5] [--repeat 1] [--workers N] [--mode simple|fork]

Needs root (the workers run the jail). Uses its own Redis in a temp dir and a free port.
Shares: `queue` = validated -> the job function started (enqueue transaction, waiting for a
free worker, RQ's dequeue bookkeeping); `jail` = time inside jail.run (compile +
runs); `worker` = the rest of the job (Redis writes, checks); `http` = the client's latency
minus all of those (request parsing, validation, enqueue transaction, wait wake-up, response).
The C source is the same every time, so after the first run the compile cache answers.

A second table gives the CPU time each part of the stack spent per submission in the same
rows, read from /proc before and after each row: `jail` = the workers' container builders
with the containers they reaped (building, the container's init, the program, teardown),
`worker`, `api`, `redis`, `client` = this benchmark. Kernel threads (network namespace
teardown, RCU) are nobody's and are left out; `busy` is the share of all CPUs in use.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from stack import Stack, running

PROGRAMS = {
    "c": '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n',
    "python3": "print('hello')\n",
}


@dataclass
class Sample:
    latency: float
    queue: float
    worker: float
    jail: float


ROLES = ("jail", "worker", "api", "redis", "client")


def cpu_by_role(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the stack's processes by role, and of this process (`client`).
    A builder's figure includes its reaped children: the containers it ran."""
    tick = os.sysconf("SC_CLK_TCK")
    out = dict.fromkeys(ROLES, 0.0)
    mine = os.times()
    out["client"] = mine.user + mine.system
    for pid, role in stack.members():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out["jail" if role == "builder" else role] += sum(int(x) for x in fields[11:15]) / tick
    return out


@dataclass
class Row:
    language: str
    clients: int
    duration: float
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # role -> CPU seconds during the row
    rates: list[float] = field(default_factory=list)  # submissions/s of each round, set by merge

    def pct(self, p: float) -> float:
        lat = sorted(s.latency for s in self.samples)
        if not lat:
            return float("nan")
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000

    def shares(self) -> tuple[float, float, float, float]:
        total = sum(s.latency for s in self.samples) or 1.0
        q = sum(s.queue for s in self.samples) / total
        w = sum(s.worker for s in self.samples) / total
        j = sum(s.jail for s in self.samples) / total
        return max(0.0, 1 - q - w - j), q, w, j


async def client(session: aiohttp.ClientSession, url: str, language: str, stop_at: float, row: Row) -> None:
    body = {"language": language, "source": PROGRAMS[language], "wait": 30}
    while time.monotonic() < stop_at:
        t0 = time.time()
        try:
            async with session.post(url, json=body) as resp:
                view: dict[str, Any] = await resp.json()
        except aiohttp.ClientError:
            row.errors += 1
            continue
        t1 = time.time()
        if resp.status != 200 or view.get("verdict") != "accepted":
            row.errors += 1
            continue
        tm = view["timings"]
        queue = tm["started_at"] - tm["enqueued_at"]
        jail = tm.get("jail", 0.0)
        worker = max(0.0, tm["finished_at"] - tm["started_at"] - jail)
        row.samples.append(Sample(t1 - t0, queue, worker, jail))


async def measure(stack: Stack, language: str, clients: int, duration: float) -> Row:
    row = Row(language, clients, duration)
    conn = aiohttp.TCPConnector(limit=clients + 4)
    async with aiohttp.ClientSession(connector=conn) as session:
        # warm-up: first compile, imports, connection pool
        url = f"{stack.base}/v1/submissions"
        await client(session, url, language, time.monotonic() + 0.5, Row(language, 1, 0))
        stop_at = time.monotonic() + duration
        before = cpu_by_role(stack)
        await asyncio.gather(*(client(session, url, language, stop_at, row) for _ in range(clients)))
        after = cpu_by_role(stack)
    row.cpu = {k: after[k] - before[k] for k in ROLES}
    return row


def merge(rounds: list[Row]) -> Row:
    """One row from the rounds of the same language and clients: samples and CPU pooled,
    throughput the median round's."""
    first = rounds[0]
    out = Row(first.language, first.clients, sum(r.duration for r in rounds))
    for r in rounds:
        out.samples += r.samples
        out.errors += r.errors
        out.rates.append(len(r.samples) / r.duration)
        for k, v in r.cpu.items():
            out.cpu[k] = out.cpu.get(k, 0.0) + v
    return out


def cpu_table(rows: list[Row]) -> str:
    lines = [
        "| language | clients | " + " | ".join(f"{r} ms" for r in ROLES) + " | total ms | busy |",
        "|---|---:|" + "---:|" * (len(ROLES) + 2),
    ]
    for r in rows:
        n = max(1, len(r.samples))
        per = [r.cpu[k] / n * 1000 for k in ROLES]
        busy = sum(r.cpu.values()) / (r.duration * (os.cpu_count() or 1))
        lines.append(
            f"| {r.language} | {r.clients} | "
            + " | ".join(f"{x:.2f}" for x in per)
            + f" | {sum(per):.2f} | {busy:.0%} |"
        )
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    head = (
        "| language | clients | subs/s | p50 ms | p95 ms | p99 ms | errors | http | queue | worker | jail |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for r in rows:
        h, q, w, j = r.shares()
        lines.append(
            f"| {r.language} | {r.clients} | {statistics.median(r.rates):.1f} | {r.pct(50):.1f} | "
            f"{r.pct(95):.1f} | {r.pct(99):.1f} | {r.errors} | {h:.0%} | {q:.0%} | {w:.0%} | {j:.0%} |"
        )
    if any(len(r.rates) > 1 for r in rows):
        lines.append("\nsubs/s is the median of the rounds; each round's, in order:\n")
        lines += [f"- {r.language} x{r.clients}: " + ", ".join(f"{x:.1f}" for x in r.rates) for r in rows]
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> None:
    with running(args.workers, CELLBLOCK_WORKER_MODE=args.mode) as stack:
        await asyncio.to_thread(stack.wait_ready, args.workers)
        rounds: dict[tuple[str, int], list[Row]] = {}
        for n in range(args.repeat):  # rounds interleaved, so that machine noise hits every row alike
            for language in args.languages:
                for clients in args.clients:
                    row = await measure(stack, language, clients, args.duration)
                    rounds.setdefault((language, clients), []).append(row)
                    print(f"  round {n + 1}: {language} x{clients}: {len(row.samples)} done", file=sys.stderr)
    rows = [merge(r) for r in rounds.values()]
    print(
        f"\n{args.workers} workers ({args.mode} mode), {os.cpu_count()} CPUs, {args.duration:.0f}s per row, "
        f"{args.repeat} round(s)\n"
    )
    print(table(rows))
    print("\nCPU per submission by part of the stack (ms):\n")
    print(cpu_table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per row")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--mode", choices=["simple", "fork"], default="simple")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--languages", nargs="+", default=["c", "python3"])
    parser.add_argument("--repeat", type=int, default=1, help="rounds over every row; subs/s is their median")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
