"""cellblock's jail: run one untrusted command isolated, at its limits, accounted for.

    from jail import RunSpec, Limits, run
    result = run(RunSpec(argv=["/usr/bin/python3", "-c", "print(1)"], limits=Limits(cpu_time=1)))
"""

from .errors import ChildSetupError, CommandNotFound, JailError
from .runner import Jail, run
from .spec import Bind, GiB, KiB, Limits, MiB, RunResult, RunSpec, Status

__all__ = [
    "Bind", "ChildSetupError", "CommandNotFound", "GiB", "Jail", "JailError", "KiB", "Limits", "MiB",
    "RunResult", "RunSpec", "Status", "run",
]
