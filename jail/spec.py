"""What a caller hands the jail (RunSpec, Limits) and what it gets back (RunResult, Status).

These are the only types a caller needs: everything above the jail builds a RunSpec and
reads a RunResult. Field names match the JSON printed by `python -m jail run --json`.
"""

from __future__ import annotations

import enum
import math
import re

from .record import field, fields, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from .sink import OutputSink as OutputSink

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

# The environment a program gets when its spec names none; every layer above that builds
# an environment of its own starts from this one.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
DEFAULT_ENV = {"PATH": DEFAULT_PATH, "HOME": "/box", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}


def parse_size(text: str) -> int:
    """The one size grammar: '512', '64K', '1.5M', '256MiB', '1G' (binary units, case and a
    trailing 'B'/'iB' optional) -> bytes. ValueError names the text."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"not a size: {text!r} (bytes, or a number with K, M, G or T)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def format_size(n: float) -> str:
    """Bytes as the largest binary unit that divides them: 1048576 -> '1M' (parse_size reads it back)."""
    for unit in ("T", "G", "M", "K"):
        if n >= _SIZE_UNITS[unit.lower()] and n % _SIZE_UNITS[unit.lower()] == 0:
            return f"{int(n) // _SIZE_UNITS[unit.lower()]}{unit}"
    return f"{n:g}"


class Status(enum.StrEnum):
    """How one run ended. run() never returns INTERNAL_ERROR (a sandbox fault raises
    JailError); it is what `python -m jail run --json` prints for one."""

    OK = "ok"
    NONZERO_EXIT = "nonzero_exit"
    SIGNALED = "signaled"
    TIME_LIMIT = "time_limit"
    WALL_TIME_LIMIT = "wall_time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    FILE_SIZE_LIMIT = "file_size_limit"
    SECURITY_VIOLATION = "security_violation"
    INTERNAL_ERROR = "internal_error"


@record(frozen=True, slots=True)
class Limits:
    """Resource caps of one run. Sizes in bytes, times in seconds."""

    cpu_time: float = 2.0  # user+sys of every process and thread of the run
    wall_time: float = 5.0  # real time from exec to exit
    memory: int = 256 * MiB  # cgroup memory cap, swap off
    pids: int = 64  # processes + threads alive at once
    output: int = 1 * MiB  # cap for stdout and, separately, for stderr
    file_size: int = 16 * MiB  # largest single file the program may write (RLIMIT_FSIZE)
    disk: int = 64 * MiB  # what the program may write to /box and /tmp together (its own files on top)
    open_files: int = 256  # RLIMIT_NOFILE
    stack: int = 64 * MiB  # RLIMIT_STACK
    cpus: float = 1.0  # CPU bandwidth: how many CPUs' worth the run may use at once

    def problems(self) -> list[tuple[str, str]]:
        """(field, why) for every value outside the range the jail can honour (see BOUNDS)."""
        return [
            (name, why) for name, bound in BOUNDS.items() if (why := bound.refuses(getattr(self, name))) is not None
        ]


@record(frozen=True, slots=True)
class Bound:
    """The range of one limit that the jail can honour, and how its values are written."""

    low: float
    high: float
    unit: str  # "s", "bytes" or "" (a count)
    integer: bool

    def show(self, value: float) -> str:
        return format_size(value) if self.unit == "bytes" else f"{value:g}{self.unit}"

    def refuses(self, value: float) -> str | None:
        """Why the jail cannot honour `value`, or None when it can."""
        # A JSON integer may have any number of digits: compared as an int (float() would overflow).
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a number"
        if self.integer and value != int(value):
            return "must be a whole number"
        if not self.low <= value <= self.high:
            got = f"{value:g}" if isinstance(value, float) else _digits(value)
            return f"must be between {self.show(self.low)} and {self.show(self.high)}, got {got}"
        return None


def _digits(n: int) -> str:
    """An integer for a message: whole when short, its first digits and length when not."""
    text = str(n)
    return text if len(text) <= 20 else f"{text[:20]}... ({len(text)} digits)"


# Why each bound is where it is: the kernel's own limits, or what a run needs to start at all.
BOUNDS: dict[str, Bound] = {
    "cpu_time": Bound(0.001, 86400.0, "s", False),  # the cgroup CPU watch polls at ms resolution
    "wall_time": Bound(0.001, 86400.0, "s", False),
    "memory": Bound(MiB, TiB, "bytes", True),  # below 1 MiB not even the init's stack fits
    "pids": Bound(2, 4 * MiB, "", True),  # the init and the program; PID_MAX_LIMIT, include/linux/threads.h
    "output": Bound(0, GiB, "bytes", True),  # buffered by the parent: bounded
    "file_size": Bound(0, TiB, "bytes", True),
    "disk": Bound(64 * KiB, TiB, "bytes", True),  # the tmpfs must hold /box, /tmp and the mount points
    "open_files": Bound(4, MiB, "", True),  # stdio and one more; fs.nr_open's default ceiling
    "stack": Bound(MiB, TiB, "bytes", True),  # the loader and libc need a stack to start
    "cpus": Bound(0.01, 1024.0, "", False),  # cfs quota >= 1 ms per 100 ms period
}
assert set(BOUNDS) == set(fields(Limits))


@record(frozen=True, slots=True)
class Bind:
    """A host path made visible inside the sandbox (read-only unless writable)."""

    source: str
    target: str
    writable: bool = False


class Pipe:
    """`RunSpec.stdin = PIPE`: the program's stdin is a pipe whose write end the caller takes
    (`Jail.start(spec).take_stdin()`) and writes while the program runs; its close is the EOF."""

    def __repr__(self) -> str:
        return "PIPE"


PIPE = Pipe()


@record(frozen=True, slots=True)
class RunSpec:
    """One command to run isolated.

    `files` are copied into the sandbox before the run (sandbox path -> content);
    `collect` names files under /box to read back after the run (e.g. a compiled
    binary, or what a program wrote): paths relative to /box whose components may be
    shell-style globs, a directory collected whole (jail/rootfs.py: collect). They come back
    in RunResult.files, never through a link the program planted, at most `collect_files`
    files and `collect_bytes` bytes (None: the run's tmpfs bounds the count, its `disk`
    limit the bytes); past a cap, RunResult.files_truncated.
    """

    argv: list[str]
    limits: Limits = field(default_factory=Limits)
    stdin: bytes | str | Pipe | None = None  # bytes, a host file path (str), or PIPE (live)
    files: dict[str, bytes] = field(default_factory=dict)
    collect: list[str] = field(default_factory=list)
    collect_files: int | None = None
    collect_bytes: int | None = None
    env: dict[str, str] | None = None  # None: a minimal default PATH/HOME/LANG
    cwd: str = "/box"
    binds: list[Bind] = field(default_factory=list)
    profile: str = "default"  # seccomp profile under policies/seccomp/
    loopback: bool = False  # bring `lo` up inside the network namespace
    cpu: int | None = None  # pin the run to this CPU


@record(slots=True)
class RunResult:
    """What happened. `status` says why the run ended; the rest is accounting."""

    status: Status
    exit_code: int | None = None
    signal: str | None = None
    cpu_time: float = 0.0
    wall_time: float = 0.0
    peak_memory: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    syscall: str | None = None  # for security_violation, when it can be known
    files: dict[str, bytes] = field(default_factory=dict)
    files_truncated: bool = False  # a collect cap was reached: not every match is in `files`


def __getattr__(name: str) -> object:
    """`jail.spec.OutputSink`, from jail/sink.py when first asked for (it imports typing)."""
    if name == "OutputSink":
        from .sink import OutputSink

        return OutputSink
    raise AttributeError(f"module 'jail.spec' has no attribute {name!r}")
