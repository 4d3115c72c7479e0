"""The jail's settings, all from CELLBLOCK_* environment variables with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class JailConfig:
    """Host-level settings of the jail (per-run settings live in RunSpec)."""

    state_dir: str = "/run/cellblock"  # CELLBLOCK_JAIL_DIR: slot roots, locks, staged /etc
    uid_base: int = 200_000  # CELLBLOCK_JAIL_UID_BASE: slot n runs as host uid base+n
    slots: int = 64  # CELLBLOCK_JAIL_SLOTS: concurrent runs per host
    cgroup_parent: str = "cellblock"  # CELLBLOCK_CGROUP_PARENT
    cgroup_version: str = ""  # CELLBLOCK_CGROUP_VERSION: "", "1" or "2"
    warm: int = 2  # CELLBLOCK_JAIL_WARM: containers a builder process keeps ready (0: build in-process)

    @classmethod
    def from_env(cls) -> JailConfig:
        env = os.environ
        return cls(
            state_dir=env.get("CELLBLOCK_JAIL_DIR", cls.state_dir),
            uid_base=int(env.get("CELLBLOCK_JAIL_UID_BASE", cls.uid_base)),
            slots=int(env.get("CELLBLOCK_JAIL_SLOTS", cls.slots)),
            cgroup_parent=env.get("CELLBLOCK_CGROUP_PARENT", cls.cgroup_parent),
            cgroup_version=env.get("CELLBLOCK_CGROUP_VERSION", cls.cgroup_version),
            warm=int(env.get("CELLBLOCK_JAIL_WARM", cls.warm)),
        )
