"""cellblock's jail: run one untrusted command isolated, at its limits, accounted for.

    from jail import RunSpec, Limits, run
    result = run(RunSpec(argv=["/usr/bin/python3", "-c", "print(1)"], limits=Limits(cpu_time=1)))

    with start(RunSpec(argv=["/usr/bin/cat"], stdin=PIPE)) as running:  # live: see runner.py
        fd = running.take_stdin()
        ...

`jail.spec` and `jail.errors` are plain types that layers which never run anything (the API)
share; the runtime (namespaces, cgroups, libseccomp) is imported only when `Jail`, `run` or `start` is
first used, so importing this package does not load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ChildSetupError, CommandNotFound, JailError
from .spec import PIPE, Bind, GiB, KiB, Limits, MiB, OutputSink, RunResult, RunSpec, Status

if TYPE_CHECKING:
    from .runner import Jail, Running, run, start

__all__ = [
    "PIPE",
    "Bind",
    "ChildSetupError",
    "CommandNotFound",
    "GiB",
    "Jail",
    "JailError",
    "KiB",
    "Limits",
    "MiB",
    "OutputSink",
    "RunResult",
    "RunSpec",
    "Running",
    "Status",
    "run",
    "start",
]


def __getattr__(name: str) -> Any:
    if name in ("Jail", "Running", "run", "start"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'jail' has no attribute {name!r}")
