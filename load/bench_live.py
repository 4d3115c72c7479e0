"""Live runs' figures: how soon what a program writes reaches its client, and how many
interactive sessions one worker holds.

    .venv/bin/python load/bench_live.py [--lines 200] [--queries 20000] [--sessions 8,32,48] [--rounds 5]

1. Write-to-client latency, no other load: a Python program prints its clock (time.time())
   every 20 ms; the client takes its own clock when the line arrives. Through streamed output
   (`stream_output`, read over SSE) and through a session's WebSocket (/v1/sessions), one
   after the other on the same stack; p50/p99/max of every line.
2. Interactor round trips: a C program asks a C interactor N questions, one line each way;
   the test's wall time over N (the program and the interactor relay through the worker's
   watch loops, each turn costing both of them a wake-up).
3. Sessions held by one worker: N sessions at once (an echo loop in bash, each waiting on
   its user), then `rounds` rounds of one line to every session in turn, timed to its echo;
   and what holding them costs while they idle: the worker's and its builder's memory, the
   CPU the stack spends per second doing nothing but holding them.

Needs root (the worker runs the jail). Uses its own Redis in a temp dir and a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from bench_service import cpu_by_role
from stack import Stack, running

CLOCK = "import time\nfor _ in range({n}):\n    print(repr(time.time()), flush=True)\n    time.sleep(0.02)\n"
ECHO = "while IFS= read -r line; do printf '%s\\n' \"$line\"; done\n"
IDLE_S = 5.0
ASKER = r"""
#include <stdio.h>
int main(void) {
    int n, answer;
    if (scanf("%d", &n) != 1) return 1;
    for (int i = 0; i < n; i++) {
        printf("%d\n", i);
        fflush(stdout);
        if (scanf("%d", &answer) != 1 || answer != i + 1) return 2;
    }
    return 0;
}
"""
ANSWERER = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    FILE *in = fopen(argv[1], "r");
    int n, q;
    if (!in || fscanf(in, "%d", &n) != 1) return 3;
    printf("%d\n", n);
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        if (scanf("%d", &q) != 1) return 1;
        printf("%d\n", q + 1);
        fflush(stdout);
    }
    return 0;
}
"""


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] * 1000 if s else float("nan")


def lags(text: str, at: float) -> list[float]:
    """The lag of every whole clock line in `text`, received at `at`."""
    return [at - float(line) for line in text.splitlines() if line.strip()]


async def sse_latency(http: aiohttp.ClientSession, base: str, n: int) -> list[float]:
    body = {"language": "python3", "source": CLOCK.format(n=n), "stream_output": True,
            "limits": {"wall_time": 60}}  # fmt: skip
    async with http.post(f"{base}/v1/submissions", json=body) as resp:
        sid = (await resp.json())["id"]
    out, partial, kind = [], "", ""
    async with http.get(f"{base}/v1/submissions/{sid}/events") as resp:
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "output":
                partial += json.loads(line[6:])["data"]
                whole, _, partial = partial.rpartition("\n")
                out += lags(whole, time.time())
    return out


async def session_latency(http: aiohttp.ClientSession, base: str, n: int) -> list[float]:
    spec = {"language": "python3", "source": CLOCK.format(n=n), "limits": {"wall_time": 60}}
    out, partial = [], ""
    async with http.ws_connect(f"{base}/v1/sessions") as ws:
        await ws.send_json(spec)
        async for msg in ws:
            m = json.loads(msg.data)
            if m["type"] == "output":
                partial += m["data"]
                whole, _, partial = partial.rpartition("\n")
                out += lags(whole, time.time())
            elif m["type"] == "result":
                break
    return out


async def interactor_turns(http: aiohttp.ClientSession, base: str, n: int) -> tuple[float, float, float]:
    """(wall seconds of the test, the program's CPU seconds, the interactor's) for n questions."""
    body = {"language": "c", "source": ASKER, "tests": [{"input": str(n)}], "wait": 60,
            "limits": {"wall_time": 30, "cpu_time": 10},
            "interactor": {"language": "c", "source": ANSWERER}}  # fmt: skip
    async with http.post(f"{base}/v1/submissions", json=body) as resp:
        view = await resp.json()
    test = view["tests"][0]
    if view["verdict"] != "accepted":
        raise SystemExit(f"the interactor run failed: {view['verdict']} {test['message']}")
    return test["wall_time"], test["cpu_time"], test["interactor"]["cpu_time"]


async def open_session(http: aiohttp.ClientSession, base: str) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{base}/v1/sessions")
    await ws.send_json({"language": "bash", "source": ECHO, "limits": {"wall_time": 60}, "idle_timeout": 60})
    await echo(ws, "ready")
    return ws


async def echo(ws: aiohttp.ClientWebSocketResponse, text: str) -> float:
    """Send a line, wait for it to come back: the round trip in seconds."""
    t0 = time.monotonic()
    await ws.send_bytes(text.encode() + b"\n")
    seen = ""
    while text not in seen:
        m = json.loads((await ws.receive(timeout=60)).data)
        if m["type"] == "output":
            seen += m["data"]
        elif m["type"] in ("result", "error"):
            raise SystemExit(f"session ended: {m}")
    return time.monotonic() - t0


def rss_mib(stack: Stack, roles: tuple[str, ...]) -> float:
    total = 0
    for pid, role in stack.members():
        if role in roles:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


async def hold(stack: Stack, count: int, rounds: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        before = rss_mib(stack, ("worker", "builder"))
        t0 = time.monotonic()
        sockets = await asyncio.gather(*(open_session(http, stack.base) for _ in range(count)))
        opened = time.monotonic() - t0
        trips = [await echo(ws, f"round {r} session {i}") for r in range(rounds) for i, ws in enumerate(sockets)]
        cpu0 = cpu_by_role(stack)
        await asyncio.sleep(IDLE_S)
        cpu1 = cpu_by_role(stack)
        held = rss_mib(stack, ("worker", "builder"))
        for ws in sockets:
            await ws.send_json({"type": "eof"})
            await ws.close()
    idle = sum(cpu1[k] - cpu0[k] for k in ("worker", "api", "redis", "jail")) / IDLE_S
    return {"open_s": opened, "p50": pct(trips, 50), "p99": pct(trips, 99), "rss": held - before, "idle_cpu": idle}


async def main_async(stack: Stack, args: argparse.Namespace) -> None:
    async with aiohttp.ClientSession() as http:
        await session_latency(http, stack.base, 5)  # warm: the worker's first session, Python's caches
        sse = await sse_latency(http, stack.base, args.lines)
        ws = await session_latency(http, stack.base, args.lines)
    print(f"\nwrite-to-client latency, {args.lines} lines 20 ms apart, no other load (ms)\n")
    print("| path | lines | p50 | p99 | max |")
    print("|---|---:|---:|---:|---:|")
    for name, values in (("streamed output (SSE)", sse), ("session (WebSocket)", ws)):
        print(f"| {name} | {len(values)} | {pct(values, 50):.1f} | {pct(values, 99):.1f} | {max(values) * 1000:.1f} |")
    async with aiohttp.ClientSession() as http:
        await interactor_turns(http, stack.base, 10)  # compiles both (then cached)
        turns = [await interactor_turns(http, stack.base, args.queries) for _ in range(3)]
    wall, cpu, judge_cpu = (statistics.median(t[i] for t in turns) for i in range(3))
    print(f"\ninteractor round trips, {args.queries} questions, median of 3 runs\n")
    print("| questions | test wall s | per question µs | program CPU s | interactor CPU s |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {args.queries} | {wall:.2f} | {wall / args.queries * 1e6:.0f} | {cpu:.2f} | {judge_cpu:.2f} |")
    print(f"\nsessions held by one worker (bash echo loops), {args.rounds} echo rounds each\n")
    print("| sessions | opened in s | echo p50 ms | echo p99 ms | worker+builder RSS MiB | idle CPU (CPU-s/s) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in args.sessions:
        row = await hold(stack, count, args.rounds)
        print(f"| {count} | {row['open_s']:.2f} | {row['p50']:.1f} | {row['p99']:.1f} | {row['rss']:+.0f} | "
              f"{row['idle_cpu']:.3f} |")  # fmt: skip
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--sessions", default="8,32,48", help="comma-separated session counts")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    args.sessions = [int(n) for n in args.sessions.split(",")]
    most = max(args.sessions)
    env = {"CELLBLOCK_SESSIONS_PER_WORKER": str(most), "CELLBLOCK_MAX_SESSIONS": str(most + 1),
           "CELLBLOCK_AUTH": "off"}  # fmt: skip
    with running(1, **env) as stack:
        stack.wait_ready(1)
        asyncio.run(main_async(stack, args))


if __name__ == "__main__":
    main()
