"""Every Redis key the service itself uses (RQ keeps its own `rq:*` keys).

One place for the templates so that the API, the worker and the tests agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key templates under one prefix (CELLBLOCK_KEY_PREFIX)."""

    prefix: str = "cellblock"

    def submission(self, sid: str) -> str:
        """Hash: `spec` (submission JSON), `state`, `result` (JSON once finished), timestamps."""
        return f"{self.prefix}:sub:{sid}"

    def events(self, sid: str) -> str:
        """Stream of a submission's events (state, test, finished); late readers replay it."""
        return f"{self.prefix}:sub:{sid}:events"

    def callbacks(self) -> str:
        """Stream of finished submissions that have a callback_url; the API delivers them."""
        return f"{self.prefix}:callbacks"

    def callback_group(self) -> str:
        """Consumer group on callbacks(): one delivery per entry across API processes."""
        return "deliverers"
