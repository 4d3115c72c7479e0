"""The compatibility layers' cost: hello-world submissions through /v1, the Judge0 layer and the
Piston layer of one stack, side by side, each client waiting for its result (/v1 `wait`, Judge0
`?wait=true`, Piston's synchronous `/execute`); rounds interleaved so machine noise hits every
API alike. Prints submissions/s (median of the rounds), latency percentiles, the ratio to /v1,
and the API process's CPU per submission.

    .venv/bin/python load/bench_compat.py [--duration 5] [--repeat 3] [--clients 8] [--language python3]

Needs root (the workers run the jail). Uses its own Redis in a temp dir and a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from bench_service import PROGRAMS, cpu_by_role
from stack import Stack, running

JUDGE0_IDS = {"c": 50, "python3": 71}
PISTON_NAMES = {"c": "c", "python3": "python"}


def v1(language: str) -> tuple[str, dict[str, Any], Callable[[int, Any], bool]]:
    body = {"language": language, "source": PROGRAMS[language], "wait": 30}
    return "/v1/submissions", body, lambda status, out: status == 200 and out.get("verdict") == "accepted"


def judge0(language: str) -> tuple[str, dict[str, Any], Callable[[int, Any], bool]]:
    body = {"language_id": JUDGE0_IDS[language], "source_code": PROGRAMS[language]}
    return "/judge0/submissions?wait=true", body, lambda status, out: status == 201 and out["status"]["id"] == 3


def piston(language: str) -> tuple[str, dict[str, Any], Callable[[int, Any], bool]]:
    body = {"language": PISTON_NAMES[language], "version": "*", "files": [{"content": PROGRAMS[language]}]}
    return "/piston/api/v2/execute", body, lambda status, out: status == 200 and out["run"]["code"] == 0


APIS = {"/v1": v1, "judge0": judge0, "piston": piston}


@dataclass
class Row:
    api: str
    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    errors: int = 0
    api_cpu: float = 0.0  # CPU seconds of the API process

    def pct(self, p: float) -> float:
        lat = sorted(self.latencies)
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else float("nan")


async def client(session: aiohttp.ClientSession, base: str, api: str, language: str, stop_at: float, row: Row) -> None:
    path, body, ok = APIS[api](language)
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        try:
            async with session.post(base + path, json=body) as resp:
                out = await resp.json()
                status = resp.status
        except aiohttp.ClientError:
            row.errors += 1
            continue
        if ok(status, out):
            row.latencies.append(time.monotonic() - t0)
        else:
            row.errors += 1


async def measure(stack: Stack, api: str, language: str, clients: int, duration: float, row: Row) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients + 4)) as session:
        await client(session, stack.base, api, language, time.monotonic() + 0.5, Row(api))  # warm-up
        done = len(row.latencies)
        before = cpu_by_role(stack)["api"]
        stop_at = time.monotonic() + duration
        await asyncio.gather(*(client(session, stack.base, api, language, stop_at, row) for _ in range(clients)))
        row.api_cpu += cpu_by_role(stack)["api"] - before
        row.rates.append((len(row.latencies) - done) / duration)


def table(rows: list[Row]) -> str:
    base = statistics.median(rows[0].rates)
    lines = [
        "| API | subs/s | vs /v1 | p50 ms | p99 ms | errors | API CPU ms/sub |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rate = statistics.median(r.rates)
        cpu = r.api_cpu / max(1, len(r.latencies)) * 1000
        lines.append(
            f"| {r.api} | {rate:.1f} | {rate / base:.2f} | {r.pct(50):.1f} | {r.pct(99):.1f} | {r.errors} | {cpu:.2f} |"
        )
    lines.append("\nsubs/s of each round, in order:\n")
    lines += [f"- {r.api}: " + ", ".join(f"{x:.1f}" for x in r.rates) for r in rows]
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> None:
    rows = {api: Row(api) for api in APIS}
    with running(args.workers) as stack:
        await asyncio.to_thread(stack.wait_ready, args.workers)
        for n in range(args.repeat):
            for api in APIS:
                await measure(stack, api, args.language, args.clients, args.duration, rows[api])
                print(f"  round {n + 1}: {api}: {rows[api].rates[-1]:.1f} subs/s", file=sys.stderr)
    print(
        f"\n{args.language} hello world, {args.clients} clients, {args.workers} workers, {os.cpu_count()} CPUs, "
        f"{args.duration:.0f}s per row, {args.repeat} rounds\n"
    )
    print(table(list(rows.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per API and round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; subs/s is their median")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--language", choices=sorted(PROGRAMS), default="python3")
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
