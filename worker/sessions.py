"""Interactive sessions (/v1/sessions) on a worker: one run each, its stdin typed live.

The RQ job of a session hands it to this process's session host and returns: a session
lasts as long as its user types, and holding the worker's job slot that long would stop it
judging. The host runs each session in a thread of its own and never makes the job wait:
how many sessions run at once is the API's to bound (CELLBLOCK_SESSIONS_PER_WORKER per live
worker, across the deployment). A worker in `fork` mode runs a session in its job instead
(its work horse exits with the job).

A session compiles (a failed compile ends it with the compiler's output), then runs with its
stdin a pipe. Its keeper thread, from the moment the job is taken:
- renews its lease (`Keys.lease`), whose lapse tells the API the worker died;
- ends the run when the client asks (`Keys.kill`, a flag: it overtakes input the program
  does not read, and cannot pile up);
- once the program runs, writes the client's input from `Keys.stdin(sid)` to it (never
  blocking for long) and deletes each entry once written, so the stream holds only what the
  program has not read (the API holds the client back past a few entries); `eof` closes the
  program's stdin;
- ends the run after `idle_timeout` seconds with neither input nor output (status
  wall_time_limit, and the message says it was idle).
Output goes out as `output` events (worker/live.py) with a window: a client that stops
reading stops the program, not memory. The result is a one-test Result, stored as any
submission's; a worker that shuts down ends its sessions with internal_error first.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any

import redis

from core import store
from core.keys import Keys
from core.limits import run_limits
from core.models import EXEC_FAILED, Result, State, Submission, TestResult, Verdict
from core.settings import Config
from jail import PIPE, Running, start
from jail.errors import CommandNotFound
from jail.spec import Status
from policies.languages import available_languages
from worker.judge import record_compile, run_verdict
from worker.live import LiveOutput
from worker.toolchain import compile_source, program_spec, settled

log = logging.getLogger("cellblock.worker")

WINDOW = 256 * 1024  # output bytes a session's program may run ahead of its client
LEASE_S = 10  # a session's lease lives this long unless renewed...
RENEW_S = 2.0  # ...which its keeper does this often
TURN_S = 0.25  # the keeper's longest wait (for input, or for the program to read), between its chores
SHUTDOWN_S = 5.0  # how long a stopping worker waits for its sessions to store their results


class SessionHost:
    """The sessions one worker process runs, each in a thread of its own."""

    def __init__(self) -> None:
        self._live: dict[str, Keeper] = {}
        self._lock = threading.Lock()

    def admit(self, r: redis.Redis, cfg: Config, keys: Keys, sub: Submission) -> None:
        """Start session `sub` in a thread of its own (its lease taken before this returns)."""
        keeper = Keeper(r, keys, sub)
        with self._lock:
            self._live[sub.id] = keeper
        thread = threading.Thread(target=self.run, args=(r, cfg, keys, sub, keeper), name=f"session-{sub.id[:8]}")
        thread.daemon = True  # a worker killed takes its sessions with it; their lease lapses
        thread.start()

    def run(self, r: redis.Redis, cfg: Config, keys: Keys, sub: Submission, keeper: Keeper) -> None:
        """Run session `sub` to its end and store its result."""
        keeper.start()
        try:
            result = run_session(r, keys, sub, cfg.submission_ttl, keeper)
        except Exception as exc:  # never the program's fault: the client gets internal_error
            log.exception("session %s failed", sub.id)
            result = Result(sub.id, Verdict.INTERNAL_ERROR, message=f"the session failed ({type(exc).__name__})")
        finally:
            keeper.stop()
            with self._lock:
                self._live.pop(sub.id, None)
        if keeper.shutting_down:
            result = Result(sub.id, Verdict.INTERNAL_ERROR, message="the worker shut down during the session; "
                            "this is not the program's fault")  # fmt: skip
        try:
            store.finish(r, keys, sub, result, cfg.submission_ttl)  # unless the API finished it first
            r.delete(keys.stdin(sub.id), keys.acked(sub.id), keys.lease(sub.id), keys.kill(sub.id))
        except redis.RedisError as exc:  # the API finishes it when the lease lapses
            log.error("session %s: storing its result: %s", sub.id, exc)
        log.info("session %s finished: %s", sub.id, result.verdict)

    def shutdown(self) -> None:
        """End every session (internal_error: the worker's going is not the program's fault) and
        give them SHUTDOWN_S to store their results."""
        with self._lock:
            keepers = list(self._live.values())
        for keeper in keepers:
            keeper.shutting_down = True
            keeper.end()
        end = time.monotonic() + SHUTDOWN_S
        while time.monotonic() < end:
            with self._lock:
                if not self._live:
                    return
            time.sleep(0.05)


def run_session(r: redis.Redis, keys: Keys, sub: Submission, ttl: int, keeper: Keeper) -> Result:
    """Compile, then run the program with the client's input and output until it ends."""
    language = available_languages().get(sub.language)
    if language is None:
        return Result(sub.id, Verdict.INTERNAL_ERROR, message=f"language {sub.language!r} not on this worker")
    store.write_events(r, keys, sub.id, [("state", {"state": str(State.COMPILING)})], ttl)
    t0 = time.monotonic()
    outcome = compile_source(language, sub.files, sub.compile_options)
    result = Result(sub.id, Verdict.ACCEPTED)
    record_compile(result, outcome, time.monotonic() - t0)
    if not outcome.ok:
        return result
    store.write_events(r, keys, sub.id, [("state", {"state": str(State.RUNNING), "test": 1, "of": 1})], ttl)
    limits = run_limits(language, sub.limits)
    t0 = time.monotonic()
    try:
        running = start(program_spec(language, outcome.artifact, PIPE, sub.args, limits))
    except CommandNotFound as exc:  # the `executable` language's own file is no program
        spent = time.monotonic() - t0
        result.tests = [TestResult(1, Verdict.RUNTIME_ERROR, status=EXEC_FAILED, message=str(exc), jail_time=spent)]
        result.verdict = Verdict.RUNTIME_ERROR
        return result
    with running, LiveOutput(r, keys, sub.id, ttl, sub.encoding, 1, keeps=(), window=WINDOW) as out:
        keeper.attach(running, out)
        run = settled(language, running.finish(out), limits)
        keeper.detach()
    tr = TestResult.of_run(1, run, time.monotonic() - t0)
    tr.verdict, tr.message = run_verdict(run)
    if keeper.idled:
        tr.message = f"idle for {sub.idle_timeout:g} s: no input and no output"
    result.tests = [tr]
    result.verdict = tr.verdict
    result.timings["jail"] = result.compile_time + tr.jail_time
    return result


class Keeper(threading.Thread):
    """A session's chores beside its run: its lease, its client's kill, its input, its idle time."""

    def __init__(self, r: redis.Redis, keys: Keys, sub: Submission) -> None:
        super().__init__(name=f"keeper-{sub.id[:8]}", daemon=True)
        self.r, self.keys, self.sub = r, keys, sub
        self.r.set(keys.lease(sub.id), "1", ex=LEASE_S)
        self.running: Running | None = None
        self.out: LiveOutput | None = None
        self.fd: int | None = None
        self.idled = self.killed = self.shutting_down = False
        self.last_input = time.monotonic()
        self._renew_at = time.monotonic() + RENEW_S
        self._done = threading.Event()
        self._lock = threading.Lock()

    def attach(self, running: Running, out: LiveOutput) -> None:
        """The program runs: feed it, watch its idle time (and end it if it was killed already)."""
        fd = running.take_stdin()
        os.set_blocking(fd, False)
        with self._lock:
            self.fd, self.out, self.last_input = fd, out, time.monotonic()
            self.running = running
            if self.killed or self.shutting_down:
                running.stop()

    def detach(self) -> None:
        """The run is over (before its container goes): no more stopping it. (Its stdin is
        closed by this thread only, which may be writing it: the write fails, the reader gone.)"""
        with self._lock:
            self.running = None

    def end(self) -> None:
        """End the run now, if there is one (from any thread)."""
        with self._lock:
            if self.running is not None:
                self.running.stop()

    def stop(self) -> None:
        """The session is over: stop the chores (then close what it fed, now that it is not writing)."""
        self._done.set()
        if self.is_alive():
            self.join()
        self._close()

    def run(self) -> None:
        key = self.keys.stdin(self.sub.id)
        last = "0-0"
        while self._tend():
            if self.fd is None:
                self._done.wait(TURN_S)
                continue
            try:
                reply: Any = self.r.xread({key: last}, count=16, block=int(TURN_S * 1000))
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        self._take(fields)
                        self.r.xdel(key, entry_id)
                        self.last_input = time.monotonic()
            except redis.RedisError as exc:
                log.warning("session %s: reading its input: %s", self.sub.id, exc)
                self._done.wait(TURN_S)
            except Exception:  # whatever it is, the run must not go on unwatched
                log.exception("session %s: its keeper failed", self.sub.id)
                self.end()
                return

    def _take(self, fields: dict[bytes, bytes]) -> None:
        if b"d" in fields:
            self._write(fields[b"d"])
        elif b"eof" in fields:
            self._close()

    def _write(self, data: bytes) -> None:
        """All of `data` to the program, unless it ends, closes its stdin or is killed first."""
        view = memoryview(data)
        poller = select.poll()
        while view and self.fd is not None and self._tend():
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                poller.register(self.fd, select.POLLOUT)
                poller.poll(int(TURN_S * 1000))
                poller.unregister(self.fd)
            except BrokenPipeError:  # it closed its stdin: what comes is for nobody
                self._close()

    def _tend(self) -> bool:
        """The chores between two waits: the lease, the client's kill, the idle time. False:
        the session is over, or its run was ended."""
        if self._done.is_set():
            return False
        now = time.monotonic()
        try:
            with self.r.pipeline(transaction=False) as pipe:
                if now >= self._renew_at:
                    pipe.set(self.keys.lease(self.sub.id), "1", ex=LEASE_S)
                pipe.exists(self.keys.kill(self.sub.id))
                killed = pipe.execute()[-1]
            if now >= self._renew_at:
                self._renew_at = now + RENEW_S
        except redis.RedisError as exc:
            log.warning("session %s: its lease and kill flag: %s", self.sub.id, exc)
            killed = False
        if killed and not self.killed:
            self.killed = True
            self.end()
        with self._lock:
            running, out = self.running, self.out
        if (
            running is not None
            and out is not None
            and now - max(self.last_input, out.last_write) > self.sub.idle_timeout
        ):
            self.idled = True
            running.stop(Status.WALL_TIME_LIMIT)
            return False
        return True

    def _close(self) -> None:
        """Close the program's stdin: by the keeper's thread only (or once it has ended)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_host = SessionHost()


def admit(r: redis.Redis, cfg: Config, keys: Keys, sub: Submission) -> None:
    """Hand session `sub` to this process's session host: in a thread (simple mode), or run it
    here and now (fork mode: the work horse exits with its job)."""
    if cfg.worker_mode == "simple":
        _host.admit(r, cfg, keys, sub)
    else:
        _host.run(r, cfg, keys, sub, Keeper(r, keys, sub))


def shutdown() -> None:
    """End this process's sessions (the worker is stopping)."""
    _host.shutdown()
