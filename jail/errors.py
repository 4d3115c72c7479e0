"""The one exception family of the jail: a sandbox fault, never the program's outcome.

A program that crashes, loops or hogs memory gets a RunResult with a status; only a
failure of the jail itself (a mount that would not go, a cgroup that would not take
a limit) raises. Callers retry those and never blame the program for them.
"""


class JailError(Exception):
    """The sandbox could not be set up, supervised or torn down."""


class ChildSetupError(JailError):
    """The child failed a setup step before execve; carries the step and errno."""

    def __init__(self, step: str, err: int, detail: str) -> None:
        self.step = step
        self.errno = err
        self.detail = detail
        super().__init__(f"sandbox setup failed at {step}: {detail}")


class CommandNotFound(JailError):
    """execve of the requested command failed (no such file, not executable)."""
