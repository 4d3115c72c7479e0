"""Toolchain versions as the compatibility layers show them: `X.Y.Z`, as Judge0's language names
and Piston's runtimes (semver) carry them. The probes give what the tools print
(`5.2.15(1)-release`, `3.1.2p20`, `17.0.15`, `n/a`)."""

from __future__ import annotations

import re

_NUMBERS = re.compile(r"\d+(?:\.\d+)*")
# What a language whose version cannot be told (the `executable` one) is shown as: Piston's own
# `file` runtime's version.
UNKNOWN = "0.0.1"


def semver(version: str) -> str:
    """The first run of dotted numbers in `version`, cut or padded to three parts."""
    found = _NUMBERS.search(version)
    if found is None:
        return UNKNOWN
    parts = [*found.group().split("."), "0", "0"][:3]
    return ".".join(str(int(p)) for p in parts)
