"""The jail's front door: Jail.run(spec) -> RunResult.

With CELLBLOCK_JAIL_WARM > 0 (the default) containers come from a builder process
(jail/zygote.py) that keeps them built ahead of demand, so a job pays only for
starting its program; with 0 each run builds its container in this process, which
suits single-threaded callers such as the command line. Either way a container
serves exactly one job and is torn down after it.
"""

from __future__ import annotations

import os
import threading

from . import sandbox
from .config import JailConfig
from .errors import JailError
from .host import Host
from .rootfs import sandbox_path
from .sandbox import Sandbox, Shape
from .spec import RunResult, RunSpec
from .zygote import Builder


class Jail:
    """Runs RunSpecs. One per process is enough; it is safe to call from several threads."""

    def __init__(self, config: JailConfig | None = None) -> None:
        self.config = config or JailConfig.from_env()
        self._host: Host | None = None
        self._builder: Builder | None = None
        self._pid = os.getpid()
        if self.config.warm > 0:
            self._builder = Builder(self.config)
        else:
            self._host = Host(self.config)

    def run(self, spec: RunSpec) -> RunResult:
        """Run spec.argv isolated. Raises JailError for sandbox faults only."""
        validate(spec)
        sb = self._take(spec)
        try:
            started, setup_cpu = sandbox.start(sb, spec)
            return sandbox.finish(sb, spec, started, setup_cpu)
        finally:
            sb.release()

    def _take(self, spec: RunSpec) -> Sandbox:
        shape = Shape.of(spec)
        if self._builder is not None:
            if os.getpid() != self._pid:
                # A forked copy of the process that owns the builder: the containers it
                # knows of are the parent's to use. Get a builder of our own.
                self._pid = os.getpid()
                self._builder = Builder(self.config)
            elif not self._builder.alive():
                # Killed (its containers died with it): the next Host sweeps their slots.
                self._builder.close()
                self._builder = Builder(self.config)
            return self._builder.take(shape)
        assert self._host is not None
        return self._host.build(shape)

    def close(self) -> None:
        """Stop the builder process, which tears down every container it holds."""
        if self._builder is not None:
            self._builder.close()
            self._builder = None


def validate(spec: RunSpec) -> None:
    """Refuse specs the jail cannot honour, before touching the host."""
    if not spec.argv or not all(isinstance(a, str) and "\0" not in a for a in spec.argv):
        raise JailError("argv must be a non-empty list of strings without NUL bytes")
    problems = spec.limits.problems()
    if problems:
        raise JailError("limits out of range: " + "; ".join(f"{name} {why}" for name, why in problems))
    if not os.path.isabs(spec.cwd):
        raise JailError(f"cwd {spec.cwd!r} must be absolute")
    for path in spec.files:
        sandbox_path("", path)


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
