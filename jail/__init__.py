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

from .errors import ChildSetupError, CommandNotFound, JailError
from .spec import PIPE, Bind, GiB, KiB, Limits, MiB, RunResult, RunSpec, Status

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from typing import Any

    from .runner import Jail, Running, run, start
    from .sink import OutputSink

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
    if name == "OutputSink":  # a Protocol: jail/sink.py imports typing, which a plain run does not load
        from .sink import OutputSink

        return OutputSink
    raise AttributeError(f"module 'jail' has no attribute {name!r}")
