"""The jail's front door: Jail.run(spec) -> RunResult, with containers built ahead of demand.

A Jail owns the host-wide pieces (cgroup backend, slots, staged /etc, compiled
seccomp programs) and a small pool of containers that a background thread keeps
built, so that a job finds one waiting and pays only for start + its own run; the
same thread tears used containers down after the result is returned. Each container
still serves exactly one job. With CELLBLOCK_JAIL_WARM=0, or when the pool is empty,
a run builds its container inline; the result is the same.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque

from . import cgroup, rootfs, sandbox, seccomp
from .config import JailConfig
from .errors import JailError
from .sandbox import Sandbox
from .slots import SlotPool
from .spec import Bind, RunResult, RunSpec

log = logging.getLogger(__name__)
ETC_VERSION = "etc-1"


class Jail:
    """Host-wide state of the jail and its pool of prepared containers. One per process."""

    def __init__(self, config: JailConfig | None = None) -> None:
        self.config = config or JailConfig.from_env()
        if os.geteuid() != 0:
            raise JailError("the jail needs root (run `python -m jail doctor` to see what is missing)")
        os.makedirs(self.config.state_dir, mode=0o711, exist_ok=True)
        self.etc_dir = f"{self.config.state_dir}/{ETC_VERSION}"
        rootfs.stage_etc(self.etc_dir)
        self.backend = cgroup.open_backend(parent=self.config.cgroup_parent, version=self.config.cgroup_version)
        self.slots = SlotPool(self.config.state_dir, self.config.slots, self.config.uid_base)
        self._cond = threading.Condition()
        self._ready: deque[Sandbox] = deque()
        self._retired: deque[Sandbox] = deque()
        self._binds: tuple[Bind, ...] = ()
        self._closed = False
        self._builder: threading.Thread | None = None
        if self.config.warm > 0:
            self._builder = threading.Thread(target=self._build_loop, name="jail-builder", daemon=True)
            self._builder.start()

    def run(self, spec: RunSpec) -> RunResult:
        """Run spec.argv isolated. Raises JailError for sandbox faults only."""
        validate(spec)
        bpf = seccomp.compiled(spec.profile)
        sb = self._take(tuple(spec.binds)) or self._prepare(tuple(spec.binds))
        try:
            started, setup_cpu = sandbox.start(sb, spec, bpf.bpf)
            return sandbox.finish(sb, spec, started, setup_cpu)
        finally:
            self._retire(sb)

    def close(self) -> None:
        """Tear down every container (ready or used) and stop the builder thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._builder is not None:
            self._builder.join()
        while self._ready:
            self._destroy(self._ready.popleft())
        while self._retired:
            self._destroy(self._retired.popleft())

    def drain(self) -> None:
        """Wait until every used container has been torn down."""
        with self._cond:
            if self._builder is None:
                return
            self._cond.wait_for(lambda: not self._retired or self._closed)

    def _prepare(self, binds: tuple[Bind, ...]) -> Sandbox:
        slot, fresh = self.slots.acquire()
        try:
            if fresh:
                self._clean_slot(slot)
            return sandbox.prepare(self.backend, slot, self.slots.root(slot), self.slots.host_uid(slot),
                                   self.etc_dir, binds)
        except BaseException:
            self.slots.release(slot)
            raise

    def _take(self, binds: tuple[Bind, ...]) -> Sandbox | None:
        with self._cond:
            self._binds = binds  # what the builder prepares next
            for sb in self._ready:
                if sb.binds == binds:
                    self._ready.remove(sb)
                    self._cond.notify_all()
                    return sb
            return None

    def _retire(self, sb: Sandbox) -> None:
        with self._cond:
            if self._builder is not None and not self._closed:
                self._retired.append(sb)
                self._cond.notify_all()
                return
        self._destroy(sb)

    def _destroy(self, sb: Sandbox) -> None:
        try:
            sb.close()
        finally:
            self.slots.release(sb.slot)

    def _build_loop(self) -> None:
        """Tear down used containers first, then keep `warm` containers ready."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._closed or self._retired
                                    or len(self._ready) < self.config.warm)
                if self._closed:
                    return
                retired = self._retired.popleft() if self._retired else None
                binds = self._binds
            if retired is not None:
                try:
                    self._destroy(retired)
                except Exception:  # noqa: BLE001 - logged; the next run will sweep the slot
                    log.exception("tearing down container in slot %d failed", retired.slot)
                with self._cond:
                    self._cond.notify_all()
                continue
            try:
                sb = self._prepare(binds)
            except Exception:  # noqa: BLE001 - runs fall back to building inline
                log.exception("building a container ahead of demand failed")
                with self._cond:
                    self._cond.wait(1.0)
                continue
            with self._cond:
                if self._closed:
                    self._destroy(sb)
                    return
                self._ready.append(sb)

    def _clean_slot(self, slot: int) -> None:
        """Undo what a process that died holding this slot left behind."""
        root = self.slots.root(slot)
        if os.path.ismount(root):
            rootfs.unmount_root(root)
        self.backend.sweep(f"-{slot}-")


def validate(spec: RunSpec) -> None:
    """Refuse specs the jail cannot honour, before touching the host."""
    if not spec.argv or not all(isinstance(a, str) and "\0" not in a for a in spec.argv):
        raise JailError("argv must be a non-empty list of strings without NUL bytes")
    lim = spec.limits
    if lim.cpu_time <= 0 or lim.wall_time <= 0 or lim.memory < 1 << 20 or lim.pids < 1 or lim.cpus <= 0:
        raise JailError(f"limits out of range: {lim}")
    if lim.output < 0 or lim.file_size < 0 or lim.disk < 1 << 16 or lim.open_files < 4 or lim.stack < 1 << 16:
        raise JailError(f"limits out of range: {lim}")
    if not os.path.isabs(spec.cwd):
        raise JailError(f"cwd {spec.cwd!r} must be absolute")
    for path in spec.files:
        rootfs.sandbox_path("", path)


_default: Jail | None = None
_default_lock = threading.Lock()


def default_jail() -> Jail:
    """The process-wide Jail, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Jail()
        return _default


def run(spec: RunSpec) -> RunResult:
    """Run one command isolated with the process-wide Jail (see Jail.run)."""
    return default_jail().run(spec)
