"""Capabilities: leave the program none, in any set.

After setresuid to the sandbox uid the child still holds every capability of its
user namespace: the kernel clears them on setuid only when leaving *namespace* root,
and our setup credentials were the unmapped host root. So they go explicitly:
bounding set, ambient set, then effective/permitted/inheritable.
"""

from __future__ import annotations

from . import libc

LAST_CAP = libc.cap_last_cap()


def drop_all() -> None:
    """Empty CapBnd, CapAmb, CapEff, CapPrm and CapInh of the calling thread."""
    for cap in range(LAST_CAP + 1):
        libc.prctl(libc.PR_CAPBSET_DROP, cap)
    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    libc.capset_zero()
