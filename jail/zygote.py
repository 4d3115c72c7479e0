"""The builder process: a lean, single-threaded process that builds containers ahead of demand.

Why a process of its own: building and tearing down a container takes time that
should not be on a job's path. The builder keeps `warm` containers built on the other
CPU while the worker runs jobs, and tears used ones down after the worker has read the
result. It imports only the jail and is single-threaded; each container's init is a
small C program (jail/init.c), cloned by the builder's fork server (jail/forkserver.py).

Protocol (SOCK_SEQPACKET socketpair, pickled (kind, n, arg) tuples, kind a Msg, fds by
SCM_RIGHTS):
  builder -> worker  (READY, 0, None)                 started; or (ERROR, 0, message)
  builder -> worker  (SANDBOX, 0, meta) + 7 fds       pushed unasked, `warm` kept unused
  worker -> builder  (TOOK, id, None)                 a pushed one is now in use
  worker -> builder  (WANT, 0, shape)                 build these from now on
  worker -> builder  (TAKE, n, shape)                 none fits: build one now, answer
  builder -> worker  (SANDBOX, n, meta) + 7 fds | (ERROR, n, message)
                   | (USE, n, id)                     a pushed one fits: it was on its way
  worker -> builder  (DONE, id, None)                 used or discarded: tear it down
The builder tears down everything and exits when the socket closes. Tearing down
waits for the container's init to be gone (its pidfd readable) without blocking the
loop: an exiting init takes its namespaces down, which takes a while. Nor does a build
ahead of demand wait for its init's clone3 (the fork server makes the namespaces, the
longest step): the loop answers and tears down meanwhile.
"""

from __future__ import annotations

import array
import enum
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

from .config import JailConfig
from .errors import JailError
from .host import Host
from .record import record
from .sandbox import Building, Sandbox, Shape, close_in_place

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from .cgroup import RunCgroup

log = logging.getLogger(__name__)
MAX_MESSAGE = 1 << 16
NFDS = 7


class Msg(enum.StrEnum):
    """The kind of a message on the builder's socket (the protocol above)."""

    READY = "ready"
    SANDBOX = "sandbox"
    ERROR = "error"
    TOOK = "took"
    WANT = "want"
    TAKE = "take"
    USE = "use"
    DONE = "done"


def pack(kind: Msg, n: int, arg: object) -> bytes:
    """One message. The kind travels as its plain string: a pickled enum member is looked
    up by class on the other side, several times slower; a StrEnum compares equal to it."""
    return pickle.dumps((kind.value, n, arg))


@record
class Meta:
    """The parts of a Sandbox that travel as data (the rest are fds)."""

    id: int
    slot: int
    root: str
    host_uid: int
    shape: Shape
    cgroup: RunCgroup  # a plain record (paths and counters): it pickles


def serve(sock: socket.socket, config: JailConfig) -> None:
    """The builder's loop: answer requests first, then finish or begin a build, then reap."""
    try:
        host = Host(config, fork_server=True)
    except JailError as e:
        sock.send(pack(Msg.ERROR, 0, str(e)))
        return
    handed: dict[int, Sandbox] = {}  # with the worker, until it says done
    unused: set[int] = set()  # pushed and not yet taken; the rest of `handed` is in use
    dying: dict[int, Sandbox] = {}  # pidfd -> container whose init was killed
    building: Building | None = None  # ahead of demand, its init being launched
    ids = itertools.count(1)
    shape = Shape()

    def hand_over(n: int, sb: Sandbox) -> None:
        meta = Meta(next(ids), sb.slot, sb.root, sb.host_uid, sb.shape, sb.cg)
        handed[meta.id] = sb  # from here the finally below tears it down, whatever happens
        socket.send_fds(sock, [pack(Msg.SANDBOX, n, meta)], sb.fds())
        if sb.shape.live_stdin:  # the worker holds the one write end: its close is the program's EOF
            close_in_place(sb.stdin)
        if n == 0:
            unused.add(meta.id)

    def ahead_failed(e: JailError, back_off: bool = True) -> None:
        nonlocal shape
        # The job that asked for this shape got the same error already; go back to plain
        # containers rather than retry a broken shape (not at once: unless a job waits).
        log.warning("building a container ahead of demand failed: %s", e)
        if shape == Shape() and back_off:
            select.select([sock], [], [], 1.0)
        shape = Shape()

    def finish_building(back_off: bool = True) -> None:
        nonlocal building
        assert building is not None
        ahead, building = building, None
        try:
            hand_over(0, ahead.finish())
        except JailError as e:
            ahead_failed(e, back_off)

    sock.send(pack(Msg.READY, 0, None))
    try:
        while True:
            # Top up the ready containers at once, also while a job runs: a judge's tests
            # come back to back, and waiting for the job's end left it waiting for a build
            # (600 runs of /bin/true in a row: 2.16 -> 1.87 ms median; a lone run and
            # load/bench_service.py unchanged). While one's init is being cloned (the fork
            # server makes its namespaces), answer, and tear down used ones.
            start = building is None and len(unused) < config.warm
            waits = [sock.fileno(), *dying, *([building.ready] if building else [])]
            readable: list[int] = select.select(waits, [], [], 0 if start else None)[0]
            if sock.fileno() in readable:
                try:
                    raw = sock.recv(MAX_MESSAGE)
                except ConnectionResetError:
                    raw = b""
                if not raw:
                    return  # the worker is gone
                kind, n, arg = pickle.loads(raw)
                if kind == Msg.TOOK:
                    unused.discard(n)
                elif kind == Msg.WANT:
                    shape = arg
                elif kind == Msg.TAKE:
                    if building is not None:  # on its way: pushed now, it may be the one
                        finish_building(back_off=False)  # the job waits for this answer
                    # The worker found none ready, but one may be on its way (pushed while it
                    # asked, or built while the question waited for the build under way):
                    # that one, rather than another build on the job's path.
                    ready = min((i for i in unused if handed[i].shape == arg), default=None)
                    if ready is not None:
                        unused.discard(ready)
                        sock.send(pack(Msg.USE, n, ready))
                        continue
                    try:
                        hand_over(n, host.build(arg))
                    except JailError as e:
                        sock.send(pack(Msg.ERROR, n, str(e)))
                elif kind == Msg.DONE and n in handed:
                    unused.discard(n)
                    sb = handed.pop(n)
                    sb.kill()
                    dying[sb.pidfd] = sb
                continue
            if building is not None and building.ready in readable:
                finish_building()
            elif start:
                try:
                    building = host.begin(shape)
                except JailError as e:
                    ahead_failed(e)
            for pidfd in readable:
                if pidfd in dying:
                    release(dying.pop(pidfd))
    except (BrokenPipeError, ConnectionResetError):
        return  # the worker is gone; the finally tears everything down
    finally:
        if building is not None:
            try:
                building.cancel()
            except Exception:
                log.exception("giving back the container being built failed")
        for sb in [*handed.values(), *dying.values()]:
            release(sb)
        host.close()


def release(sb: Sandbox) -> None:
    try:
        sb.release()
    except Exception:
        log.exception("tearing down the container in slot %d failed", sb.slot)


class Builder:
    """The worker's handle on its builder process (thread-safe)."""

    def __init__(self, config: JailConfig) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._lock = threading.RLock()  # a container's release, under take's lock, sends DONE
        self._seq = itertools.count(1)
        self._pushed: deque[Sandbox] = deque()
        self._shape = Shape()
        env = dict(os.environ, **config.to_env())  # the builder works with this config, not the caller's env
        self._proc = subprocess.Popen(
            # -c rather than -m: pickled classes must be jail.zygote's, not __main__'s.
            [sys.executable, "-c", "from jail.zygote import main; main()", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        theirs.close()
        kind, _, payload = self._recv(block=True)
        if kind != Msg.READY:
            self.close()
            raise JailError(f"the jail's builder process failed to start: {payload}")

    def _recv(self, block: bool) -> tuple[str, int, object]:
        """One message; containers pushed unasked go to the local queue. ("", 0, None) if none waits."""
        try:
            data, fds = recv_with_fds(self._sock, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return "", 0, None
        if not data:
            raise JailError("the jail's builder process went away")
        kind, n, payload = pickle.loads(data)
        if kind == Msg.SANDBOX:
            sb = self._sandbox(payload, fds)
            if n == 0:
                self._pushed.append(sb)
            return kind, n, sb
        for fd in fds:
            os.close(fd)
        return kind, n, payload

    def _sandbox(self, meta: Meta, fds: list[int]) -> Sandbox:
        if len(fds) != NFDS:
            raise JailError(f"the builder sent {len(fds)} fds, expected {NFDS}")
        pidfd, sync_w, report_r, status_r, out_r, err_r, stdin = fds

        def done() -> None:
            meta.cgroup.close()  # what this process opened on it (v2: the memory.peak fd)
            for fd in fds:
                os.close(fd)
            with self._lock:
                try:
                    self._sock.send(pack(Msg.DONE, meta.id, None))
                except OSError:
                    pass  # the builder is gone; whoever builds next on this host sweeps the slot

        return Sandbox(
            slot=meta.slot,
            root=meta.root,
            host_uid=meta.host_uid,
            shape=meta.shape,
            cg=meta.cgroup,
            pidfd=pidfd,
            sync_w=sync_w,
            report_r=report_r,
            status_r=status_r,
            out_r=out_r,
            err_r=err_r,
            stdin=stdin,
            release=done,
            id=meta.id,
        )

    def take(self, shape: Shape) -> Sandbox:
        """A built container for one job: a pushed one if it fits, else one built now."""
        with self._lock:
            while self._recv(block=False)[0]:
                pass
            if shape != self._shape:
                self._shape = shape
                self._sock.send(pack(Msg.WANT, 0, shape))
            # Containers of another shape (pushed before the builder heard of this one) are
            # released now: they would hold the builder's ready places; and before any TAKE,
            # which the builder must not answer with a container this process has dropped.
            for sb in [sb for sb in self._pushed if sb.shape != shape]:
                self._pushed.remove(sb)
                sb.release()
            found = next((sb for sb in self._pushed if sb.shape == shape), None)
            if found is not None:
                self._pushed.remove(found)
                self._sock.send(pack(Msg.TOOK, found.id, None))
            else:
                n = next(self._seq)
                self._sock.send(pack(Msg.TAKE, n, shape))
                while True:
                    kind, got, payload = self._recv(block=True)
                    if got == n:
                        break
                if kind == Msg.ERROR:
                    raise JailError(str(payload))
                if kind == Msg.USE:  # pushed before this answer: received already
                    found = next((sb for sb in self._pushed if sb.id == payload), None)
                    if found is None:
                        raise JailError(f"the builder offered container {payload}, which this process does not hold")
                    self._pushed.remove(found)
                else:
                    assert isinstance(payload, Sandbox)
                    found = payload
        return found

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """Stop the builder; it tears down every container it holds."""
        with self._lock:
            for sb in self._pushed:
                for fd in sb.fds():
                    os.close(fd)
            self._pushed.clear()
        self._sock.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def recv_with_fds(sock: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    """One message and the fds that came with it (socket.recv_fds of 3.11 ignores `flags`)."""
    fds = array.array("i")
    data, ancdata, _, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(NFDS * fds.itemsize), flags)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="jail-builder: %(levelname)s %(message)s")
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)
    serve(sock, JailConfig.from_env())
