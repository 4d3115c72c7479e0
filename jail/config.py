"""The jail's settings, all from CELLBLOCK_* environment variables with documented defaults.

JailConfig.from_env is the one reader of them: the rest of the jail takes a JailConfig.
"""

from __future__ import annotations

import os

from .record import record

# policies/seccomp/ of this checkout
SECCOMP_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "policies", "seccomp")


@record(frozen=True)
class JailConfig:
    """Host-level settings of the jail (per-run settings live in RunSpec)."""

    state_dir: str = "/run/cellblock"  # CELLBLOCK_JAIL_DIR: slot roots, locks, staged /etc
    uid_base: int = 200_000  # CELLBLOCK_JAIL_UID_BASE: slot n runs as host uid base+n
    slots: int = 64  # CELLBLOCK_JAIL_SLOTS: concurrent runs per host
    cgroup_parent: str = "cellblock"  # CELLBLOCK_CGROUP_PARENT
    cgroup_version: str = ""  # CELLBLOCK_CGROUP_VERSION: "", "1" or "2"
    warm: int = 2  # CELLBLOCK_JAIL_WARM: containers a builder process keeps ready (0: build in-process)
    seccomp_dir: str = SECCOMP_DIR  # CELLBLOCK_SECCOMP_DIR: where seccomp profiles (NAME.toml) are read

    @classmethod
    def from_env(cls) -> JailConfig:
        env = os.environ
        values = {name: env[var] for name, var in _VARIABLES.items() if var in env}
        return cls(**{name: type(getattr(cls, name))(v) for name, v in values.items()})

    def to_env(self) -> dict[str, str]:
        """The variables from_env reads back as this config (for the builder process)."""
        return {var: str(getattr(self, name)) for name, var in _VARIABLES.items()}


# field -> the environment variable that sets it
_VARIABLES = {
    "state_dir": "CELLBLOCK_JAIL_DIR",
    "uid_base": "CELLBLOCK_JAIL_UID_BASE",
    "slots": "CELLBLOCK_JAIL_SLOTS",
    "cgroup_parent": "CELLBLOCK_CGROUP_PARENT",
    "cgroup_version": "CELLBLOCK_CGROUP_VERSION",
    "warm": "CELLBLOCK_JAIL_WARM",
    "seccomp_dir": "CELLBLOCK_SECCOMP_DIR",
}
