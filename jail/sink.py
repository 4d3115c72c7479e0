"""OutputSink: where a live run's output goes as it is read (jail/supervise.py feeds it).

A Protocol, so a module of its own: it imports `typing`, which a plain run (and so the
command line) does not load. `jail.OutputSink` and `jail.spec.OutputSink` are this class,
loaded when first asked for.
"""

from __future__ import annotations

from typing import Protocol


class OutputSink(Protocol):
    """Where a live run's output goes as it is read, besides (or instead of) the result."""

    keeps: tuple[str, ...]  # the streams ("stdout", "stderr") also kept for the RunResult, capped
    capped: bool  # the output limit applies to the streams it does not keep too

    def write(self, stream: str, data: bytes) -> bool:
        """Take `data` of "stdout" or "stderr" (kept ones too); False: read no more output until `ready`. A
        sink takes what it is given even while it is paused (the pipes' last contents after
        the program ended): bounded by the pipes' size."""
        ...

    def waker(self) -> tuple[int, int]:
        """The fd and poll events that mean a paused sink may take more."""
        ...

    def ready(self) -> bool:
        """Called when the waker fires: True once the sink takes output again."""
        ...
