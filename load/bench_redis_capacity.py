"""Redis capacity: what one Redis primary spends per submission and per idle worker, driven by
many simulated workers, and so how many worker hosts one primary can feed.

    .venv/bin/python load/bench_redis_capacity.py [--workers 2 8 32] [--duration 10]
        [--idle-workers 8 32 128] [--idle-duration 30] [--repeat 1] [--per-host-rate 216.4 ...]

Needs no root and no jail; about 2.5 minutes with the defaults.

Every row gets a fresh redis-server with the command line `cellblock up` gives its own (AOF,
everysec; cli/up.py: redis_argv) on a free 127.0.0.1 port, in a temp dir: TCP, as a primary
serving other hosts would be reached.

The workers are the real worker: processes forked from one "host" process, each running
worker.runner.run_worker (CellblockWorker, RQ's dequeue, registries, heartbeats and
maintenance, worker.jobs.process with HeldEvents, store.finish and the metrics in its
transaction). ONE thing is simulated: `worker.jobs.judge` returns at once what a C hello world
with a compile-cache hit returns, after the same EventSink calls (`compiling` and `running`
emitted, one flush, the test's event held for the final transaction), and the jail's warm-up
is skipped. The jail's cost is on the worker host, not on Redis: the Redis traffic of a job is
what is measured, and an instant job drives the most of it per second.

The submissions enter the way the API takes a `wait` request (api/intake.py), minus HTTP:
producer processes, each with the API's own pieces (redis.asyncio pool, FinishedWaiters and
EventWakeups subscriptions, QueueDepth), validate a body with api.validation.parse_submission,
register the waiter, queue with core.queue.submit (one MULTI/EXEC, on a thread), wait for the
`finished` wake-up and read the view (core.views.read_view). Auth is off (as in `make bench`):
a key would add its rate-limit and in-flight scripts per submission.

Measured from Redis itself, before and after each row's window: INFO cpu (the main thread's
CPU, user and kernel: it executes every command and bounds the primary; and the whole
process's, which adds the AOF's fsync thread), INFO commandstats (commands, counting those run
inside MULTI/EXEC and scripts, and the time inside them), total_reads_processed (about one per
round trip), used_memory, and the finished count (the metrics hash). Rows:
- idle: K workers and nothing to do, for --idle-duration seconds (at least two of RQ's
  15-second dequeue/heartbeat/maintenance cycles); K = 0 is Redis alone (its own timers);
- stream: W workers kept busy by 2 x W waiting clients (--clients-per-worker) for --duration s.
After the last stream row, MEMORY USAGE of a sample of submissions' keys, each with how long it
is kept (its TTL): what a submission holds, and so what a sustained rate holds in Redis.

Capacity: one Redis core serves 1000 / (Redis main-thread ms per submission) submissions/s,
and one primary feeds 1000 / (R x that + the host's idle cost) hosts that each sustain R
submissions/s (--per-host-rate; --workers-per-host idle workers' cost added). This is an
extrapolation: the workers and producers are Python on the same few CPUs and saturate long
before Redis does. It assumes Redis's command execution is single-threaded (io-threads 1, the
default), that its CPU per submission stays as measured up to a full core (the stream rows show
whether it grows with W; under more load Redis batches more per wake-up, so it tends to fall),
and that the network is not the bound. Not included: expiring the keys (an RQ job after 60 s, a
submission after CELLBLOCK_SUBMISSION_TTL), API keys, SSE readers, callbacks.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis
from rq import Queue, Worker

from cli.up import redis_argv
from core import metrics
from core import settings as config_mod
from core.keys import Keys
from core.models import Result, State, Submission, TestResult, Verdict

ROOT = Path(__file__).resolve().parent.parent
HELLO_C = '#include <stdio.h>\nint main(void){puts("hello");return 0;}\n'
# README "Service benchmark": C hello world, 8 clients, the whole stack on the 2-CPU development
# VM (Debian 12), 2026-11-24: the submissions/s one such worker host sustains.
README_PER_HOST_RATE = 216.4
README_PER_HOST_SOURCE = "README 'Service benchmark', C hello world x8, 2-CPU VM, 2026-11-24"
# The orchestrator's own commands, left out of the counts.
OWN_COMMANDS = {"info", "hvals", "scard", "ping"}
PR_SET_PDEATHSIG = 1


# --------------------------------------------------------------------------- simulated worker host


def instant_judge(sub: Submission, events: Any, keep_output: int) -> Result:
    """worker.judge.judge for a C hello world whose compile the cache answers, without the jail:
    the same EventSink calls in the same order, and a result of the same shape."""
    events.emit("state", {"state": str(State.COMPILING)})  # a cache hit: held, not flushed
    events.emit("state", {"state": str(State.RUNNING), "test": 1, "of": 1})
    events.flush()
    events.live(1)  # None unless stream_output
    tr = TestResult(
        1,
        Verdict.ACCEPTED,
        status="ok",
        exit_code=0,
        cpu_time=0.0004,
        wall_time=0.0011,
        peak_memory=1_183_744,
        stdout=b"hello\n",
        jail_time=0.0026,
    )
    events.emit(
        "test",
        {
            "index": 1,
            "of": 1,
            "verdict": str(tr.verdict),
            "cpu_time": tr.cpu_time,
            "wall_time": tr.wall_time,
            "peak_memory": tr.peak_memory,
        },
    )
    result = Result(sub.id, Verdict.ACCEPTED, tests=[tr], compile_time=0.0002, compile_cached=True)
    result.timings["jail"] = 0.0028
    return result


def host(count: int) -> None:
    """A worker host: `count` real workers (forked from here, so they share its imports) whose
    judge is instant_judge. SIGTERM: passed on to them, and waited for."""
    import worker.jobs
    import worker.runner
    from policies.languages import available_languages

    vars(worker.jobs)["judge"] = instant_judge  # the one simulated step (jobs.process calls it by name)
    worker.runner.warm_up_jail = lambda: None  # no jail here: nothing to warm
    cfg = config_mod.load()
    available_languages()  # run_worker asks for them: probed once, before the fork
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            _worker_child(cfg)
        children.append(pid)

    def stop(signum: int, frame: Any) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    for pid in children:
        os.waitpid(pid, 0)


def _worker_child(cfg: config_mod.Config) -> None:
    code = 0
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the host gone: stop
        from worker.runner import run_worker

        run_worker(cfg)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


# --------------------------------------------------------------------------- simulated API process


async def producer(clients: int) -> None:
    """`clients` waiting clients through the API's path of a `wait` request, minus HTTP, until
    SIGTERM; then prints {"done": n, "errors": n} on stdout."""
    from api.backpressure import QueueDepth
    from api.validation import parse_submission
    from api.wakeups import LISTEN_TIMEOUT_S, EventWakeups, FinishedWaiters
    from core import queue, redis_client
    from core.views import read_view
    from policies.languages import available_languages

    cfg = config_mod.load()
    keys = Keys(cfg.key_prefix)
    url = cfg.effective_redis_url()
    r = redis_client.async_client(url, cfg.redis_connections, 5, socket_timeout=LISTEN_TIMEOUT_S + 20)
    sync = redis_client.sync_client(url)
    finished, events = FinishedWaiters(r, keys), EventWakeups(r, keys)
    for wakeups in (finished, events):
        wakeups.start()
    depth = QueueDepth()
    langs = await asyncio.to_thread(available_languages)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    body = {"language": "c", "source": HELLO_C, "wait": 30}
    counts = {"done": 0, "errors": 0}

    async def client() -> None:
        while not stop.is_set():
            accepted = parse_submission(body, cfg, langs)
            sub = accepted.submission
            await depth.admit(r, cfg, 1)
            async with finished.until_finished(sub.id) as wait:
                await asyncio.to_thread(queue.submit, sync, cfg, [(sub, accepted.job_timeout)], None)
                await wait(accepted.wait)
            view = await read_view(r, keys, sub.id)
            ok = view is not None and view["state"] == "finished" and view["verdict"] == "accepted"
            counts["done" if ok else "errors"] += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    for wakeups in (finished, events):
        await wakeups.stop()
    await r.aclose(close_connection_pool=True)
    sync.close()
    print(json.dumps(counts), flush=True)


# --------------------------------------------------------------------------- the orchestrator


@dataclass
class Snap:
    at: float
    user: float  # Redis main thread CPU seconds, user
    sys: float  # and kernel
    proc: float  # Redis process CPU seconds (every thread)
    commands: dict[str, tuple[int, int]]  # command -> (calls, usec)
    reads: int  # reads from clients processed (about one per round trip)
    memory: int
    finished: int
    cpu_busy: int  # this machine's busy and all jiffies (/proc/stat)
    cpu_all: int


@dataclass
class Delta:
    seconds: float
    user: float
    sys: float
    proc: float
    commands: dict[str, tuple[int, int]]
    reads: int
    memory: int
    finished: int
    busy: float  # share of this machine's CPUs in use

    @property
    def main(self) -> float:
        return self.user + self.sys

    @property
    def calls(self) -> int:
        return sum(c for c, _ in self.commands.values())

    def per_sub(self, x: float) -> float:
        return x / max(1, self.finished)


def machine_cpu() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def snap(r: redis.Redis, keys: Keys) -> Snap:
    busy, total = machine_cpu()
    info = r.info("all")
    finished = sum(int(v) for v in r.hvals(metrics.submissions_key(keys)))
    commands = {
        k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for k, v in info.items()
        if k.startswith("cmdstat_") and k.removeprefix("cmdstat_") not in OWN_COMMANDS
    }
    return Snap(
        time.monotonic(),
        float(info["used_cpu_user_main_thread"]),
        float(info["used_cpu_sys_main_thread"]),
        float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        commands,
        int(info["total_reads_processed"]),
        int(info["used_memory"]),
        finished,
        busy,
        total,
    )


def delta(a: Snap, b: Snap) -> Delta:
    commands = {}
    for name, (calls, usec) in b.commands.items():
        c0, u0 = a.commands.get(name, (0, 0))
        if calls > c0:
            commands[name] = (calls - c0, usec - u0)
    return Delta(
        b.at - a.at,
        b.user - a.user,
        b.sys - a.sys,
        b.proc - a.proc,
        commands,
        max(0, b.reads - a.reads - len(OWN_READS)),
        b.memory - a.memory,
        b.finished - a.finished,
        (b.cpu_busy - a.cpu_busy) / max(1, b.cpu_all - a.cpu_all),
    )


# The snapshot's own requests between two snapshots' INFO: its HVALS, the next one's INFO.
OWN_READS = ("hvals", "info")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Bed:
    """One row's world: a fresh redis-server, and the host and producer processes started on it
    (each the leader of its own process group), stopped in reverse order."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="cellblock-redis-capacity-"))
        env = {
            "CELLBLOCK_VAR_DIR": str(self.tmp / "var"),
            "CELLBLOCK_REDIS_PORT": str(free_port()),
            "CELLBLOCK_LOG_LEVEL": "WARNING",
        }
        self.cfg = config_mod.load(env)
        self.cfg.redis_dir.mkdir(parents=True)
        self.url = self.cfg.own_redis_url()
        self.keys = Keys(self.cfg.key_prefix)
        self.log = open(self.tmp / "bench.log", "wb")  # closed in stop()
        self.redis_proc = subprocess.Popen(
            redis_argv(self.cfg), stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.r = redis.Redis.from_url(self.url)
        self.host: subprocess.Popen[bytes] | None = None
        self.producers: list[subprocess.Popen[bytes]] = []
        deadline = time.monotonic() + 15
        while True:
            try:
                self.r.ping()
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline or self.redis_proc.poll() is not None:
                    why = self.tail()
                    self.stop()
                    raise SystemExit(f"redis-server did not start: {why}") from None
                time.sleep(0.05)

    def tail(self) -> str:
        self.log.flush()
        return (self.tmp / "bench.log").read_bytes()[-3000:].decode(errors="replace")

    def spawn(self, role: str, count: int, stdout: int | IO[bytes]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLBLOCK_")}
        env.update(
            CELLBLOCK_REDIS_URL=self.url,
            CELLBLOCK_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        )
        return subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--role", role, "--count", str(count)],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=self.log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start_workers(self, count: int, seconds: float = 90) -> None:
        self.host = self.spawn("host", count, self.log)
        queue = Queue(self.cfg.queue, connection=self.r)
        deadline = time.monotonic() + seconds
        while Worker.count(queue=queue) < count:
            if time.monotonic() > deadline or self.host.poll() is not None:
                raise SystemExit(f"{count} workers did not register: {self.tail()}")
            time.sleep(0.2)

    def start_producers(self, processes: int, clients: int, seconds: float = 60) -> None:
        per = [clients // processes + (i < clients % processes) for i in range(processes)]
        self.producers = [self.spawn("producer", n, subprocess.PIPE) for n in per if n > 0]
        start = snap(self.r, self.keys).finished
        deadline = time.monotonic() + seconds
        while snap(self.r, self.keys).finished - start < 10 * clients:  # all up, and flowing
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.producers):
                raise SystemExit(f"submissions did not flow: {self.tail()}")
            time.sleep(0.2)

    def stop_producers(self) -> int:
        """Stop the producers; the submissions they found not finished or not accepted."""
        errors = 0
        for p in self.producers:
            p.send_signal(signal.SIGTERM)
        for p in self.producers:
            try:
                out, _ = p.communicate(timeout=60)
                errors += json.loads(out.decode().strip().splitlines()[-1])["errors"]
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                errors += 1
                _kill_group(p)
        self.producers = []
        return errors

    def memory_by_key(self, per_kind: int = 20) -> dict[str, tuple[int, int]]:
        """Per-submission keys, their id written {id}: (median MEMORY USAGE bytes, how long it is
        kept: its largest TTL seen, rounded up to a minute; -1: no TTL)."""
        every = [raw.decode() for raw in self.r.scan_iter(count=1000)]
        prefix = self.keys.submission("")
        sids = {k.removeprefix(prefix) for k in every if k.startswith(prefix) and ":" not in k.removeprefix(prefix)}
        found: dict[str, list[str]] = {}
        for key in every:
            sid = next((part for part in key.split(":") if part in sids), None)
            if sid is not None:
                found.setdefault(key.replace(sid, "{id}"), []).append(key)
        out = {}
        for kind, keys in found.items():
            sizes = [int(self.r.memory_usage(k, samples=0) or 0) for k in keys[:per_kind]]
            ttl = max(int(self.r.ttl(k)) for k in keys[:per_kind])
            out[kind] = (int(statistics.median(sizes)), 60 * math.ceil(ttl / 60) if ttl > 0 else -1)
        return out

    def stop(self) -> None:
        if self.producers:
            self.stop_producers()
        if self.host is not None:
            self.host.send_signal(signal.SIGTERM)
            try:
                self.host.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill_group(self.host)
            self.host = None
        self.r.close()
        self.redis_proc.terminate()
        try:
            self.redis_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.redis_proc.kill()
            self.redis_proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _kill_group(p: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group `p` leads (started by us with start_new_session)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


@dataclass
class IdleRow:
    workers: int
    deltas: list[Delta] = field(default_factory=list)

    def med(self, f: Callable[[Delta], float]) -> float:
        return float(statistics.median(f(d) for d in self.deltas))

    def main_ms_per_s(self) -> float:
        return self.med(lambda d: d.main / d.seconds * 1000)

    def calls_per_s(self) -> float:
        return self.med(lambda d: d.calls / d.seconds)

    def reads_per_s(self) -> float:
        return self.med(lambda d: d.reads / d.seconds)


@dataclass
class StreamRow:
    workers: int
    clients: int
    deltas: list[Delta] = field(default_factory=list)
    errors: int = 0
    memory: dict[str, tuple[int, int]] = field(default_factory=dict)  # of its last round

    def med(self, f: Callable[[Delta], float]) -> float:
        return float(statistics.median(f(d) for d in self.deltas))

    def main_ms(self) -> float:
        return self.med(lambda d: d.per_sub(d.main) * 1000)


def idle_round(k: int, seconds: float) -> Delta:
    bed = Bed()
    try:
        if k:
            bed.start_workers(k)
            time.sleep(2)  # past the start: registration, the first maintenance
        a = snap(bed.r, bed.keys)
        time.sleep(seconds)
        return delta(a, snap(bed.r, bed.keys))
    finally:
        bed.stop()


def stream_round(row: StreamRow, producers: int, seconds: float) -> Delta:
    bed = Bed()
    try:
        bed.start_workers(row.workers)
        bed.start_producers(producers, row.clients)
        a = snap(bed.r, bed.keys)
        time.sleep(seconds)
        d = delta(a, snap(bed.r, bed.keys))
        row.errors += bed.stop_producers()
        row.memory = bed.memory_by_key()
        return d
    finally:
        bed.stop()


def idle_table(rows: list[IdleRow]) -> str:
    base = next((r for r in rows if r.workers == 0), None)
    b_main = base.main_ms_per_s() if base else 0.0
    b_calls = base.calls_per_s() if base else 0.0
    b_reads = base.reads_per_s() if base else 0.0
    lines = [
        "| idle workers | Redis main thread ms/s | commands/s | round trips/s "
        "| per idle worker: ms/s | per idle worker: commands/s | per idle worker: round trips/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        per = [(r.main_ms_per_s() - b_main) / r.workers, (r.calls_per_s() - b_calls) / r.workers,
               (r.reads_per_s() - b_reads) / r.workers] if r.workers else []  # fmt: skip
        cells = " | ".join(f"{x:.3f}" for x in per) if per else "- | - | -"
        lines.append(
            f"| {r.workers} | {r.main_ms_per_s():.2f} | {r.calls_per_s():.1f} | {r.reads_per_s():.1f} | {cells} |"
        )
    return "\n".join(lines)


def stream_table(rows: list[StreamRow]) -> str:
    lines = [
        "| workers | clients | subs/s | errors | Redis main ms/sub | of it kernel | Redis process ms/sub "
        "| round trips/sub | commands/sub | Redis main busy | machine busy | used_memory KiB/sub |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.workers} | {r.clients} | {r.med(lambda d: d.finished / d.seconds):.1f} | {r.errors} "
            f"| {r.main_ms():.3f} | {r.med(lambda d: d.sys / d.main):.0%} "
            f"| {r.med(lambda d: d.per_sub(d.proc) * 1000):.3f} | {r.med(lambda d: d.per_sub(d.reads)):.1f} "
            f"| {r.med(lambda d: d.per_sub(d.calls)):.1f} | {r.med(lambda d: d.main / d.seconds):.0%} "
            f"| {r.med(lambda d: d.busy):.0%} | {r.med(lambda d: d.per_sub(d.memory) / 1024):.2f} |"
        )
    if any(len(r.deltas) > 1 for r in rows):
        lines.append("\nMedians of the rounds; each round's subs/s and Redis main ms/sub, in order:\n")
        for r in rows:
            each = ", ".join(f"{d.finished / d.seconds:.0f}/s {d.per_sub(d.main) * 1000:.3f}" for d in r.deltas)
            lines.append(f"- {r.workers} workers: {each}")
    return "\n".join(lines)


# Commands that run others (whose time in commandstats includes theirs, listed on their own too).
NESTING = {"exec", "eval", "evalsha", "fcall"}


def command_table(rows: list[StreamRow], top: int = 12) -> str:
    """Commands per submission over every stream round pooled, by time inside the command; and
    the main thread's time per submission, user (parsing, commands, Lua, building replies) and
    kernel (socket reads and writes, epoll, the AOF's write)."""
    pooled: dict[str, list[int]] = {}
    n, user, sys_ = 0, 0.0, 0.0
    for r in rows:
        for d in r.deltas:
            n, user, sys_ = n + d.finished, user + d.user, sys_ + d.sys
            for name, (calls, usec) in d.commands.items():
                acc = pooled.setdefault(name, [0, 0])
                acc[0] += calls
                acc[1] += usec
    n = max(1, n)
    main_us = (user + sys_) * 1e6 / n
    lines = ["| command | calls/sub | µs/sub | share of main thread |", "|---|---:|---:|---:|"]
    ranked = sorted(pooled.items(), key=lambda kv: -kv[1][1])
    for name, (calls, usec) in ranked[:top]:
        label = f"{name.upper()} (incl. the commands it runs)" if name in NESTING else name.upper()
        lines.append(f"| {label} | {calls / n:.2f} | {usec / n:.1f} | {usec / n / main_us:.1%} |")
    rest = ranked[top:]
    if rest:
        calls, usec = sum(c for _, (c, _) in rest), sum(u for _, (_, u) in rest)
        lines.append(f"| {len(rest)} others | {calls / n:.2f} | {usec / n:.1f} | {usec / n / main_us:.1%} |")
    once = [(c, u) for name, (c, u) in pooled.items() if name not in NESTING]
    calls, usec = sum(c for c, _ in once), sum(u for _, u in once)
    lines += [
        f"| every command once ({', '.join(sorted(NESTING & set(pooled))).upper()} left out) | {calls / n:.2f} "
        f"| {usec / n:.1f} | {usec / n / main_us:.1%} |",
        f"| main thread, user | | {user * 1e6 / n:.1f} | {user / (user + sys_):.1%} |",
        f"| main thread, kernel | | {sys_ * 1e6 / n:.1f} | {sys_ / (user + sys_):.1%} |",
    ]
    return "\n".join(lines)


def memory_table(memory: dict[str, tuple[int, int]]) -> tuple[str, float]:
    """The per-submission keys and what they hold at 1 submission/s sustained; and that total."""
    lines = ["| key | bytes | kept | MB held per 1 sub/s sustained |", "|---|---:|---:|---:|"]
    total = 0.0
    for kind, (size, kept) in sorted(memory.items(), key=lambda kv: -kv[1][0] * kv[1][1]):
        if kept < 0:
            lines.append(f"| `{kind}` | {size} | no TTL: kept for ever | - |")
            continue
        held = size * kept / 1e6
        total += held
        lines.append(f"| `{kind}` | {size} | {kept} s | {held:.1f} |")
    lines.append(f"| all | | | {total:.1f} |")
    return "\n".join(lines), total


def capacity_table(streams: list[StreamRow], idle: list[IdleRow], held_mb: float, args: argparse.Namespace) -> str:
    per_sub = max(r.main_ms() for r in streams)  # the costliest W: conservative
    base = next((r.main_ms_per_s() for r in idle if r.workers == 0), 0.0)
    busiest = max((r for r in idle if r.workers), key=lambda r: r.workers, default=None)
    per_idle = max(0.0, (busiest.main_ms_per_s() - base) / busiest.workers) if busiest else 0.0
    lines = [
        "| worker host subs/s | Redis ms/sub | Redis ms/s per idle host | subs/s one Redis core serves "
        "| worker hosts one primary feeds | memory their submissions hold |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in args.per_host_rate:
        idle_cost = args.workers_per_host * per_idle
        hosts = math.floor(1000 / (rate * per_sub + idle_cost))
        lines.append(
            f"| {rate:g} | {per_sub:.3f} | {idle_cost:.3f} | {1000 / per_sub:.0f} | {hosts} "
            f"| {hosts * rate * held_mb / 1000:.0f} GB |"
        )
    return "\n".join(lines)


def tree() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def bench(args: argparse.Namespace) -> None:
    idle = [IdleRow(k) for k in ([0] if args.idle_workers else []) + args.idle_workers]
    streams = [StreamRow(w, max(1, round(args.clients_per_worker * w))) for w in args.workers]
    t0 = time.monotonic()
    for n in range(args.repeat):  # rounds interleaved: machine noise hits every row alike
        for row in idle:
            seconds = min(args.idle_duration, 10.0) if row.workers == 0 else args.idle_duration
            d = idle_round(row.workers, seconds)
            row.deltas.append(d)
            print(f"  round {n + 1}: {row.workers} idle workers: {d.main / d.seconds * 1000:.2f} ms/s", file=sys.stderr)
        for s in streams:
            d = stream_round(s, args.producers, args.duration)
            s.deltas.append(d)
            print(
                f"  round {n + 1}: {s.workers} workers: {d.finished / d.seconds:.0f} subs/s, "
                f"{d.per_sub(d.main) * 1000:.3f} ms/sub",
                file=sys.stderr,
            )
    words = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    version = next((w.split("=")[1] for w in words if w.startswith("v=")), "?")
    print(
        f"\nRedis {version} (`cellblock up`'s command line: AOF everysec; TCP on loopback), {os.cpu_count()} CPUs, "
        f"tree {tree()}, {args.repeat} round(s), {time.monotonic() - t0:.0f} s in all\n"
    )
    if idle:
        print(f"Idle workers ({args.idle_duration:g} s each; 0 = Redis alone, 10 s):\n")
        print(idle_table(idle))
    if streams:
        print(
            f"\nA stream of C hello worlds, instant jobs ({args.duration:g} s each, {args.producers} producers; "
            "commands include those run inside MULTI/EXEC and scripts; round trips = client reads Redis processed):\n"
        )
        print(stream_table(streams))
        print("\nThe Redis main thread's time per submission (every stream round pooled):\n")
        print(command_table(streams))
        table, held_mb = memory_table(streams[-1].memory)
        print(f"\nWhat a submission keeps in Redis ({streams[-1].workers}-worker row, MEMORY USAGE):\n")
        print(table)
        if idle:
            print(
                f"\nCapacity ({args.workers_per_host} workers per host; Redis ms/sub of the costliest stream row; "
                f"per idle worker: the most idle workers' row; default host rate: {README_PER_HOST_SOURCE}):\n"
            )
            print(capacity_table(streams, idle, held_mb, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[2, 8, 32], help="simulated workers per stream row")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per stream row")
    parser.add_argument("--idle-workers", type=int, nargs="*", default=[8, 32, 128], help="idle workers per idle row")
    parser.add_argument("--idle-duration", type=float, default=30.0, help="seconds per idle row (RQ's cycle: 15 s)")
    parser.add_argument("--clients-per-worker", type=float, default=2.0, help="waiting clients per worker")
    parser.add_argument("--producers", type=int, default=2, help="API-like producer processes")
    parser.add_argument("--repeat", type=int, default=1, help="rounds over every row; medians reported")
    parser.add_argument(
        "--per-host-rate",
        type=float,
        nargs="+",
        default=[README_PER_HOST_RATE],
        help=f"submissions/s one worker host sustains (default: {README_PER_HOST_SOURCE})",
    )
    parser.add_argument("--workers-per-host", type=int, default=2, help="workers on one host (one per CPU)")
    parser.add_argument("--role", choices=["host", "producer"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "host":
        host(args.count)
    elif args.role == "producer":
        asyncio.run(producer(args.count))
    else:
        bench(args)


if __name__ == "__main__":
    main()
