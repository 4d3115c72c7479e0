"""The builder process: a lean, single-threaded process that builds containers ahead of demand.

Why a process of its own: the worker that calls jail.run is large and may have
threads; cloning from it copies its page tables and can inherit locks held by its
other threads (glibc's malloc, Python's GIL hand-off). The builder imports only the
jail, is single-threaded, keeps `warm` containers built on the other CPU while the
worker runs jobs, and tears used ones down after the worker has read the result.

Protocol (SOCK_SEQPACKET socketpair, pickled tuples, fds by SCM_RIGHTS):
  worker -> builder  ("take", n, shape)    builder -> worker  ("sandbox", n, meta) + 7 fds
                                                              ("error", n, message)
  worker -> builder  ("done", id)          (no answer; the builder tears it down)
The builder exits, tearing everything down, when the socket closes.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import select
import socket
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass

from . import sandbox
from .cgroup import RunCgroup
from .config import JailConfig
from .errors import JailError
from .host import Host
from .sandbox import Sandbox, Shape

log = logging.getLogger(__name__)
MAX_MESSAGE = 1 << 16
NFDS = 7


@dataclass
class Meta:
    """The parts of a Sandbox that travel as data (the rest are fds)."""

    id: int
    slot: int
    root: str
    host_uid: int
    shape: Shape
    cgroup: RunCgroup  # plain dataclass (paths and counters): it pickles


def serve(sock: socket.socket, config: JailConfig) -> None:
    """The builder's loop: answer requests first, build and tear down in between."""
    try:
        host = Host(config)
    except JailError as e:
        sock.send(pickle.dumps(("error", 0, str(e))))
        return
    ready: deque[tuple[Meta, Sandbox]] = deque()
    live: dict[int, Sandbox] = {}
    retired: deque[Sandbox] = deque()
    ids = itertools.count(1)
    shape = Shape()

    def build(want: Shape) -> tuple[Meta, Sandbox]:
        slot = host.take_slot()
        sb = sandbox.prepare(host.backend, slot, host.slots.root(slot), host.slots.host_uid(slot),
                             host.etc_dir, want, lambda: host.slots.release(slot))
        return Meta(next(ids), slot, sb.root, sb.host_uid, want, sb.cg), sb

    sock.send(pickle.dumps(("ready", 0, None)))
    try:
        while True:
            idle = not retired and len(ready) >= config.warm
            if select.select([sock], [], [], None if idle else 0)[0]:
                raw = sock.recv(MAX_MESSAGE)
                if not raw:
                    return
                kind, n, arg = pickle.loads(raw)
                if kind == "take":
                    match = next((item for item in ready if item[1].shape == arg), None)
                    try:
                        if match is not None:
                            ready.remove(match)
                        meta, sb = match or build(arg)
                    except JailError as e:
                        sock.send(pickle.dumps(("error", n, str(e))))
                        continue
                    if arg != shape:  # build the next ones like this one; drop the others
                        shape = arg
                        for item in [item for item in ready if item[1].shape != shape]:
                            ready.remove(item)
                            retired.append(item[1])
                    socket.send_fds(sock, [pickle.dumps(("sandbox", n, meta))], sb.fds())
                    live[meta.id] = sb
                elif kind == "done":
                    if n in live:
                        retired.append(live.pop(n))
            elif retired:
                release(retired.popleft())
            else:
                try:
                    ready.append(build(shape))
                except JailError:
                    log.exception("building a container ahead of demand failed")
                    select.select([sock], [], [], 1.0)
    finally:
        for sb in [*live.values(), *retired, *(item[1] for item in ready)]:
            release(sb)


def release(sb: Sandbox) -> None:
    try:
        sb.release()
    except Exception:  # noqa: BLE001 - logged; the slot's next owner sweeps what is left
        log.exception("tearing down the container in slot %d failed", sb.slot)


class Builder:
    """The worker's handle on its builder process."""

    def __init__(self, config: JailConfig) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        env = dict(os.environ, CELLBLOCK_JAIL_WARM=str(config.warm))
        self._proc = subprocess.Popen(
            # -c rather than -m: pickled classes must be jail.zygote's, not __main__'s.
            [sys.executable, "-c", "from jail.zygote import main; main()", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        theirs.close()
        kind, _, message = pickle.loads(self._recv()[0])
        if kind != "ready":
            self.close()
            raise JailError(f"the jail's builder process failed to start: {message}")

    def _recv(self) -> tuple[bytes, list[int]]:
        data, fds, _, _ = socket.recv_fds(self._sock, MAX_MESSAGE, NFDS)
        if not data:
            raise JailError("the jail's builder process went away")
        return data, fds

    def take(self, shape: Shape) -> Sandbox:
        """A built container for one job (from the pool, or built now)."""
        with self._lock:
            n = next(self._seq)
            self._sock.send(pickle.dumps(("take", n, shape)))
            while True:
                data, fds = self._recv()
                kind, got, payload = pickle.loads(data)
                if got == n:
                    break
                for fd in fds:  # an answer meant for a caller that gave up
                    os.close(fd)
        if kind == "error":
            raise JailError(payload)
        meta: Meta = payload
        if len(fds) != NFDS:
            raise JailError(f"the builder sent {len(fds)} fds, expected {NFDS}")
        pidfd, sync_w, report_r, status_r, out_r, err_r, stdin = fds

        def done() -> None:
            for fd in fds:
                os.close(fd)
            with self._lock:
                self._sock.send(pickle.dumps(("done", meta.id, None)))

        return Sandbox(slot=meta.slot, root=meta.root, host_uid=meta.host_uid, shape=meta.shape,
                       cg=meta.cgroup, pidfd=pidfd, sync_w=sync_w, report_r=report_r,
                       status_r=status_r, out_r=out_r, err_r=err_r, stdin=stdin, release=done)

    def close(self) -> None:
        """Stop the builder; it tears down every container it holds."""
        self._sock.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="jail-builder: %(levelname)s %(message)s")
    sock = socket.socket(fileno=int(sys.argv[1]))
    serve(sock, JailConfig.from_env())

