"""User namespace id maps: the sandbox uid/gid 1000 is the slot's host uid, nothing else.

Written by the parent (host root) once the child exists in its new user namespace
(clone3 with CLONE_NEWUSER, so there is no window where the maps would land in the
wrong namespace). No id inside maps to host root, and the setup steps before the
drop run with the creator's unmapped credentials, which own no file in the sandbox.
"""

from __future__ import annotations

from .cgroup import write_file
from .rootfs import SANDBOX_GID, SANDBOX_UID


def write_maps(pid: int, host_uid: int) -> None:
    """Map sandbox uid/gid 1000 to host_uid in the user namespace of `pid`."""
    for name, inside in (("uid_map", SANDBOX_UID), ("gid_map", SANDBOX_GID)):
        write_file(f"/proc/{pid}/{name}", f"{inside} {host_uid} 1\n")
