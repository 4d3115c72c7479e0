"""Hostile clients against a real stack, beside an honest one: does the honest client still
get its answers, is every attacking request stored or refused with a clear 4xx, and does
memory stay bounded?

    .venv/bin/python load/hostile.py [--idle 20] [--duration 60]

Starts `cellblock up` (keys required, 2 workers) in a temp dir. Two API keys: the honest
one has no limits; the attacker's may have one submission in flight (an operator's quota).
1. idle: the honest client alone, for --idle seconds: one C hello world at a time, `wait`.
2. attack, for --duration seconds, the honest client going on as before, while the attacker
   holds STREAMS idle event streams (SSE) open on its running submission, SLOW connections
   that send half a request's headers and nothing more (reopened when the API closes them),
   and FLOODERS loops posting maximal-output submissions (every test printing the language's
   whole output limit, then sleeping) without pause.
Then it checks every submission the API accepted from the attacker: finished, never
`internal_error`, and its stored outputs within CELLBLOCK_MAX_RESULT. It prints a table and
exits 1 when the honest p99 under attack is above twice the idle one, a 5xx other than a
503 with Retry-After was seen, or an accepted submission was lost. Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis
from stack import ROOT, Stack, running

sys.path.insert(0, str(ROOT))
from core import apikeys
from core.keys import Keys

STREAMS = 500
SLOW = 1000
FLOODERS = 4
HONEST = {"language": "c", "source": '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n', "wait": 30}
# Each test prints python3's whole output limit (64 MiB), then sleeps, so the attacker's one
# submission in flight keeps a worker and holds its event streams (idle between its events)
# for about 20 s: 8 x 64 MiB is 128 times what a result keeps (CELLBLOCK_MAX_RESULT), and
# once pushed a worker to 4 GB.
MAX_OUTPUT = 64 << 20
FLOOD = {
    "language": "python3",
    "source": f"import sys, time\nsys.stdout.write('x' * {MAX_OUTPUT})\nsys.stdout.flush()\ntime.sleep(2)\n",
    "tests": [{"input": "", "expected_output": ""}] * 8,
    "limits": {"output": MAX_OUTPUT, "wall_time": 10},
    "checker": "tokens",
}


@dataclass
class Tally:
    honest_ms: list[float] = field(default_factory=list)
    honest_errors: Counter[str] = field(default_factory=Counter)
    flood: Counter[int] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    streams_open: int = 0
    streams_peak: int = 0
    slow_open: int = 0
    slow_peak: int = 0
    server_errors: list[str] = field(default_factory=list)


async def honest(session: aiohttp.ClientSession, base: str, token: str, until: float, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        t0 = time.monotonic()
        try:
            async with session.post(f"{base}/v1/submissions", json=HONEST, headers=headers) as resp:
                body = await resp.json()
                if resp.status == 200 and body.get("verdict") == "accepted":
                    tally.honest_ms.append((time.monotonic() - t0) * 1000)
                else:
                    tally.honest_errors[
                        f"{resp.status} {body.get('verdict') or body.get('error', {}).get('code')}"
                    ] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.honest_errors[type(exc).__name__] += 1


async def flooder(session: aiohttp.ClientSession, base: str, token: str, until: float, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        try:
            async with session.post(f"{base}/v1/submissions", json=FLOOD, headers=headers) as resp:
                body = await resp.json()
                tally.flood[resp.status] += 1
                if resp.status == 201:
                    tally.accepted.append(body["id"])
                elif resp.status >= 500 and not (resp.status == 503 and "Retry-After" in resp.headers):
                    tally.server_errors.append(f"flood: {resp.status} {body}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.flood[0] += 1
            tally.server_errors.append(f"flood: {type(exc).__name__}")


async def stream(session: aiohttp.ClientSession, base: str, token: str, until: float, tally: Tally) -> None:
    """One idle SSE reader: on the attacker's newest submission, again and again."""
    while time.monotonic() < until:
        if not tally.accepted:
            await asyncio.sleep(0.2)
            continue
        url = f"{base}/v1/submissions/{tally.accepted[-1]}/events"
        try:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(sock_read=30)) as resp:
                if resp.status != 200:
                    if resp.status >= 500 and "Retry-After" not in resp.headers:
                        tally.server_errors.append(f"stream: {resp.status}")
                    await asyncio.sleep(1)
                    continue
                tally.streams_open += 1
                tally.streams_peak = max(tally.streams_peak, tally.streams_open)
                try:
                    async for _chunk in resp.content.iter_any():  # cheap: the client is not under test
                        if time.monotonic() > until:
                            break
                finally:
                    tally.streams_open -= 1
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(0.5)


async def slow(port: int, until: float, tally: Tally) -> None:
    """One half-open client: half a request's headers, then silence, reopened when closed."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        writer.write(b"POST /v1/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        tally.slow_open += 1
        tally.slow_peak = max(tally.slow_peak, tally.slow_open)
        try:
            left = until - time.monotonic()
            if left > 0:
                await asyncio.wait_for(reader.read(), left)  # returns when the API closes it
        except (TimeoutError, OSError):
            pass
        finally:
            tally.slow_open -= 1
            writer.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Memory:
    """Peak RSS per role and Redis's used memory, sampled through a phase."""

    peak: dict[str, float] = field(default_factory=dict)

    def sample(self, stack: Stack, r: redis.Redis) -> None:
        by_role: dict[str, float] = {}
        for pid, role in stack.members():
            try:
                by_role[role] = max(by_role.get(role, 0.0), rss_mib(pid))
            except OSError:
                continue
        by_role["redis used"] = int(r.info("memory")["used_memory"]) / (1 << 20)
        for role, mib in by_role.items():
            self.peak[role] = max(self.peak.get(role, 0.0), mib)


async def sampling(stack: Stack, r: redis.Redis, memory: Memory, until: float) -> None:
    while time.monotonic() < until:
        await asyncio.to_thread(memory.sample, stack, r)
        await asyncio.sleep(2)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) >= 2 else float("nan")


@dataclass
class Attackers:
    streams: int
    slow: int
    flooders: int


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90), connector=aiohttp.TCPConnector(limit=0))


async def honest_phase(stack: Stack, r: redis.Redis, token: str, seconds: float) -> tuple[Tally, Memory]:
    """The honest client, and the memory samples, for `seconds`."""
    tally, memory = Tally(), Memory()
    until = time.monotonic() + seconds
    async with session() as s:
        await asyncio.gather(honest(s, stack.base, token, until, tally), sampling(stack, r, memory, until))
    return tally, memory


async def attack(base: str, token: str, seconds: float, attackers: Attackers) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    port = int(base.rsplit(":", 1)[1])
    async with session() as s:
        jobs = [flooder(s, base, token, until, tally) for _ in range(attackers.flooders)]
        jobs += [stream(s, base, token, until, tally) for _ in range(attackers.streams)]
        jobs += [slow(port, until, tally) for _ in range(attackers.slow)]
        await asyncio.gather(*jobs)
    return tally


def attacker_process(base: str, token: str, seconds: float, attackers: Attackers, out: Any) -> None:
    """The attack in a process of its own: its event loop, busy with 1,500 sockets, must not
    delay the honest client's, or the measurement would blame the API for the client's lag."""
    out.put(asyncio.run(attack(base, token, seconds, attackers)))


def check_accepted(r: redis.Redis, keys: Keys, ids: list[str], max_result: int) -> Counter[str]:
    """Wait for the attacker's accepted submissions; count their outcomes."""
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + 120
    for sid in ids:
        while True:
            state, result = r.hmget(keys.submission(sid), ["state", "result"])
            if state == b"finished" and result is not None:
                view = json.loads(result)
                kept = sum(len(base64.b64decode(t[name])) for t in view["tests"] for name in ("stdout", "stderr"))
                outcomes[view["verdict"]] += 1
                if kept > max_result:
                    outcomes["over CELLBLOCK_MAX_RESULT"] += 1
                break
            if state is None:
                outcomes["lost"] += 1
                break
            if time.monotonic() > deadline:
                outcomes["unfinished"] += 1
                break
            time.sleep(0.2)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the honest client alone")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of attack")
    parser.add_argument("--streams", type=int, default=STREAMS, help="idle event streams")
    parser.add_argument("--slow", type=int, default=SLOW, help="half-open connections")
    parser.add_argument("--flooders", type=int, default=FLOODERS, help="loops posting maximal-output submissions")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # 1,500 sockets of our own
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    log = Path(tempfile.mkstemp(prefix="cellblock-hostile-", suffix=".log")[1])
    with running(2, log, CELLBLOCK_AUTH="required", CELLBLOCK_MAX_QUEUE="100") as stack:
        stack.wait_ready(2)
        r = redis.Redis(unix_socket_path=str(stack.var / "redis" / "redis.sock"))
        keys = Keys("cellblock")
        tokens = {
            "honest": apikeys.create_key(r, keys, name="honest")[1],
            "attacker": apikeys.create_key(r, keys, name="attacker", max_in_flight=1)[1],
        }
        idle, idle_mem = asyncio.run(honest_phase(stack, r, tokens["honest"], args.idle))
        log_before = log.stat().st_size
        attackers = Attackers(args.streams, args.slow, args.flooders)
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        attacker = context.Process(
            target=attacker_process, args=(stack.base, tokens["attacker"], args.duration, attackers, results)
        )
        attacker.start()
        under, attack_mem = asyncio.run(honest_phase(stack, r, tokens["honest"], args.duration))
        attack = results.get(timeout=120)
        attacker.join(timeout=30)
        attack.honest_ms, attack.honest_errors = under.honest_ms, under.honest_errors
        log_growth = log.stat().st_size - log_before
        outcomes = check_accepted(r, keys, attack.accepted, 4 << 20)
        after = Memory()
        after.sample(stack, r)
        r.close()

    rows = [("idle", idle), ("under attack", attack)]
    print(f"\nhonest client (C hello world, wait), {args.idle:g} s idle then {args.duration:g} s under attack\n")
    print("| phase | answers | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---|")
    for name, t in rows:
        errors = ", ".join(f"{k}: {v}" for k, v in t.honest_errors.items()) or "0"
        print(
            f"| {name} | {len(t.honest_ms)} | {percentile(t.honest_ms, 50):.1f} | {percentile(t.honest_ms, 99):.1f} "
            f"| {errors} |"
        )
    ratio = percentile(attack.honest_ms, 99) / percentile(idle.honest_ms, 99)
    print(f"\np99 under attack / idle: {ratio:.2f} (at most 2)\n")
    print("| attack | figure |")
    print("|---|---|")
    print(f"| idle event streams held (peak) | {attack.streams_peak} of {args.streams} |")
    print(f"| half-open connections held (peak) | {attack.slow_peak} of {args.slow} |")
    print(f"| maximal-output POSTs by status | {dict(sorted(attack.flood.items()))} |")
    print(f"| accepted ones, by outcome | {dict(outcomes)} |")
    print(f"| 5xx without Retry-After, transport errors | {len(attack.server_errors)} |")
    print(f"| the stack's log (WARNING and up) grew by | {log_growth / 1024:.1f} KiB |")
    print("\n| memory (MiB) | idle peak | attack peak | after |")
    print("|---|---:|---:|---:|")
    for role in sorted(set(idle_mem.peak) | set(attack_mem.peak)):
        print(
            f"| {role} | {idle_mem.peak.get(role, 0):.1f} | {attack_mem.peak.get(role, 0):.1f} "
            f"| {after.peak.get(role, 0):.1f} |"
        )
    failed = []
    if not ratio <= 2:
        failed.append(f"honest p99 {ratio:.2f}x the idle one")
    if attack.server_errors:
        failed.append(f"{len(attack.server_errors)} server errors, e.g. {attack.server_errors[:3]}")
    if (
        outcomes["lost"]
        or outcomes["unfinished"]
        or outcomes["internal_error"]
        or outcomes["over CELLBLOCK_MAX_RESULT"]
    ):
        failed.append(f"accepted submissions: {dict(outcomes)}")
    if idle.honest_errors or attack.honest_errors:
        failed.append(f"the honest client was refused: {dict(idle.honest_errors + attack.honest_errors)}")
    for line in failed:
        print(f"FAILED: {line}")
    log.unlink()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
