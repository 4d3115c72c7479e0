"""rootfs.mount_points, which a starting Host reads to find the slot roots a dead owner left
mounted: every mount os.path.ismount sees, under any name the kernel escapes. (It sees more:
a directory bound onto itself, which ismount cannot tell from a plain one.)"""

from __future__ import annotations

import os
from pathlib import Path

from jail import libc, rootfs


def test_mount_points_are_what_ismount_says_also_under_awkward_names(tmp_path: Path) -> None:
    awkward = tmp_path / "a b\tc\\d\ne"  # what mountinfo writes as \040, \011, \134, \012
    plain = tmp_path / "plain"
    for path in (awkward, plain):
        path.mkdir()
    libc.mount("tmpfs", str(awkward), "tmpfs", 0, "size=64k")
    try:
        found = rootfs.mount_points()
        assert str(awkward) in found and str(plain) not in found and str(tmp_path) not in found
        assert {"/", "/proc"} <= found
        with open("/proc/self/mountinfo", "rb") as f:
            listed = len(f.readlines())
        assert len(found) <= listed
        assert all(os.path.ismount(path) for path in (str(awkward), "/", "/proc"))
    finally:
        libc.umount2(str(awkward), libc.MNT_DETACH)
    assert str(awkward) not in rootfs.mount_points()
