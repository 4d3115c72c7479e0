"""Per-process rlimits of the program: stack, open files, file size, core dumps, CPU backstop.

The cgroup does the real CPU-time accounting (threads and children included); the
RLIMIT_CPU here is only a backstop a second above the limit, per process.
"""

from __future__ import annotations

import math
import resource

from .spec import Limits


def plan(limits: Limits) -> list[tuple[int, int]]:
    """(resource, value) pairs the init sets in the program's process, soft = hard."""
    return [
        (resource.RLIMIT_STACK, limits.stack),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_FSIZE, limits.file_size),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_CPU, math.ceil(limits.cpu_time) + 1),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
    ]
