"""Structured logging: JSON lines in production, readable text in a terminal."""

from __future__ import annotations

import json
import logging
import sys
import time

from core.logctx import SubmissionFilter
from core.settings import Config


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, component, pid, msg (+ submission, exc)."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "component": self.component,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        sid = getattr(record, "submission", None)
        if sid:
            out["submission"] = sid
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup(cfg: Config, component: str) -> None:
    fmt = cfg.log_format
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SubmissionFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(component))
    else:
        formatter = logging.Formatter(
            f"%(asctime)s {component}[%(process)d] %(levelname)s %(name)s: %(message)s%(sid_tag)s"
        )
        formatter.converter = time.gmtime
        handler.addFilter(_TextSubmissionTag())
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(cfg.log_level.upper())


class _TextSubmissionTag(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        sid = getattr(record, "submission", None)
        record.sid_tag = f" [submission={sid}]" if sid else ""
        return True
