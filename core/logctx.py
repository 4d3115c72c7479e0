"""The submission a log line is about, carried through a request or a job by a ContextVar.

The API's middleware and the worker's job set it; cli/logs.py's formatter adds it to every
line (`"submission": id` in JSON), so one id greps a submission's whole life across processes.
"""

from __future__ import annotations

import contextvars
import logging

SUBMISSION: contextvars.ContextVar[str | None] = contextvars.ContextVar("cellblock_submission", default=None)


class SubmissionFilter(logging.Filter):
    """Sets `record.submission` from the context unless the call passed extra={"submission": ...}."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "submission", None) is None:
            record.submission = SUBMISSION.get()
        return True
