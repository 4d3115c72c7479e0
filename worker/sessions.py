"""Interactive sessions (/v1/sessions) on a worker: one run each, its stdin typed live.

The RQ job of a session hands it to this process's session host and returns: a session
lasts as long as its user types, and holding the worker's job slot that long would stop it
judging. The host runs up to CELLBLOCK_SESSIONS_PER_WORKER sessions at once, each in a thread
of its own; one more makes the job wait for a free place (the worker takes no other job
meanwhile, and the session waits in the queue, where any other worker may take it).

A session compiles (a failed compile ends it with the compiler's output), then runs with its
stdin a pipe:
- input: a feeder thread reads the client's entries from `Keys.stdin(sid)`, writes each to
  the program and deletes it, so the stream holds only what the program has not read (the
  API holds the client back past a few entries). `eof` closes the program's stdin, `kill`
  ends the run.
- output: `output` events (worker/live.py) with a window: a client that stops reading stops
  the program, not memory.
- idle: neither input nor output for `idle_timeout` seconds ends the run: status
  wall_time_limit, and the message says it was idle.
- lease: `Keys.lease(sid)` is renewed while the session lives; when it lapses unfinished,
  the API knows the worker died (api/sessions.py).
The result is a one-test Result, stored as any submission's.
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
from worker.judge import run_verdict
from worker.live import LiveOutput
from worker.toolchain import compile_source, program_spec, settled

log = logging.getLogger("cellblock.worker")

WINDOW = 256 * 1024  # output bytes a session's program may run ahead of its client
LEASE_S = 10  # a session's lease lives this long unless renewed...
RENEW_S = 2.0  # ...which its feeder does this often
TURN_S = 0.25  # the feeder's longest wait (for input, or for the program to read), between its chores


class SessionHost:
    """The sessions one worker process runs, each in a thread of its own."""

    def __init__(self, places: int) -> None:
        self._free = threading.Semaphore(places)

    def admit(self, r: redis.Redis, cfg: Config, keys: Keys, sub: Submission) -> None:
        """Start session `sub` in a thread, once one of the host's places is free."""
        self._free.acquire()
        thread = threading.Thread(target=self._run, args=(r, cfg, keys, sub), name=f"session-{sub.id[:8]}")
        thread.daemon = True  # a worker that exits takes its sessions with it; their lease lapses
        thread.start()

    def _run(self, r: redis.Redis, cfg: Config, keys: Keys, sub: Submission) -> None:
        try:
            result = run_session(r, keys, sub, cfg.submission_ttl)
        except Exception as exc:  # never the program's fault: the client gets internal_error
            log.exception("session %s failed", sub.id)
            result = Result(sub.id, Verdict.INTERNAL_ERROR, message=f"the session failed ({type(exc).__name__})")
        finally:
            self._free.release()
        store.finish(r, keys, sub, result, cfg.submission_ttl)
        r.delete(keys.stdin(sub.id), keys.acked(sub.id), keys.lease(sub.id))
        log.info("session %s finished: %s", sub.id, result.verdict)


def run_session(r: redis.Redis, keys: Keys, sub: Submission, ttl: int) -> Result:
    """Compile, then run the program with the client's input and output until it ends."""
    language = available_languages().get(sub.language)
    if language is None:
        return Result(sub.id, Verdict.INTERNAL_ERROR, message=f"language {sub.language!r} not on this worker")
    r.set(keys.lease(sub.id), "1", ex=LEASE_S)
    store.write_events(r, keys, sub.id, [("state", {"state": str(State.COMPILING)})], ttl)
    t0 = time.monotonic()
    outcome = compile_source(language, sub.files, sub.compile_options)
    result = Result(
        sub.id, Verdict.ACCEPTED, compile_output=outcome.output.encode(), compile_time=time.monotonic() - t0
    )
    if outcome.result is not None:
        result.compile_exit_code = outcome.result.exit_code
        result.compile_cpu_time = outcome.result.cpu_time
        result.compile_memory = outcome.result.peak_memory
    if not outcome.ok:
        result.verdict = Verdict.COMPILATION_ERROR
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
        feeder = Feeder(r, keys, sub, running, out)
        feeder.start()
        try:
            run = settled(language, running.finish(out), limits)
        finally:
            feeder.stop()
    tr = TestResult.of_run(1, run, time.monotonic() - t0)
    tr.verdict, tr.message = run_verdict(run)
    if feeder.idled:
        tr.message = f"idle for {sub.idle_timeout:g} s: no input and no output"
    result.tests = [tr]
    result.verdict = tr.verdict
    result.timings["jail"] = result.compile_time + tr.jail_time
    return result


class Feeder(threading.Thread):
    """Writes what the client types to the program; ends the run when it idles too long."""

    def __init__(self, r: redis.Redis, keys: Keys, sub: Submission, running: Running, out: LiveOutput) -> None:
        super().__init__(name=f"feeder-{sub.id[:8]}", daemon=True)
        self.r, self.keys, self.sub, self.running, self.out = r, keys, sub, running, out
        self.fd: int | None = running.take_stdin()
        os.set_blocking(self.fd, False)
        self.idled = False
        self.last_input = time.monotonic()
        self._renew_at = 0.0
        self._done = threading.Event()

    def stop(self) -> None:
        """The run is over: stop and close the program's stdin (if still open)."""
        self._done.set()
        self.join()

    def run(self) -> None:
        key = self.keys.stdin(self.sub.id)
        last = "0-0"
        try:
            while self._tend():
                try:
                    reply: Any = self.r.xread({key: last}, count=16, block=int(TURN_S * 1000))
                except redis.RedisError as exc:
                    log.warning("session %s: reading its input: %s", self.sub.id, exc)
                    self._done.wait(TURN_S)
                    continue
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id.decode()
                        self._take(fields)
                        self.r.xdel(key, entry_id)
                        self.last_input = time.monotonic()
        finally:
            self._close()

    def _take(self, fields: dict[bytes, bytes]) -> None:
        if b"d" in fields:
            self._write(fields[b"d"])
        elif b"eof" in fields:
            self._close()
        elif b"kill" in fields:
            self.running.stop()

    def _write(self, data: bytes) -> None:
        """All of `data` to the program, unless it ends or closes its stdin first."""
        view = memoryview(data)
        while view and self.fd is not None and self._tend():
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                select.select([], [self.fd], [], TURN_S)
            except BrokenPipeError:  # it closed its stdin: what comes is for nobody
                self._close()

    def _tend(self) -> bool:
        """The chores between two waits: renew the lease, end an idle run. False: stop feeding."""
        if self._done.is_set():
            return False
        now = time.monotonic()
        if now >= self._renew_at:
            try:
                self.r.set(self.keys.lease(self.sub.id), "1", ex=LEASE_S)
                self._renew_at = now + RENEW_S
            except redis.RedisError as exc:
                log.warning("session %s: renewing its lease: %s", self.sub.id, exc)
        if now - max(self.last_input, self.out.last_write) > self.sub.idle_timeout:
            self.idled = True
            self.running.stop(Status.WALL_TIME_LIMIT)
            return False
        return True

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_host: SessionHost | None = None
_host_lock = threading.Lock()


def admit(r: redis.Redis, cfg: Config, keys: Keys, sub: Submission) -> None:
    """Hand session `sub` to this process's session host (made on first use)."""
    global _host
    with _host_lock:
        if _host is None:
            _host = SessionHost(cfg.sessions_per_worker)
    _host.admit(r, cfg, keys, sub)
