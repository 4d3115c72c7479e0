"""The network namespace: empty but for `lo`, which stays down unless a profile asks.

A fresh network namespace has only a loopback device, down, and no route out; that is
the isolation. Bringing `lo` up costs about 2 ms, so it is done only on request
(RunSpec.loopback) for programs that talk to themselves over 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913  # <linux/sockios.h>
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up() -> None:
    """Set IFF_UP on `lo` in the current network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
