"""Where a callback may be sent: the one address rule against SSRF.

Whoever submits code chooses its callback_url, and the API POSTs there from inside the
deployment's network. Without a rule a submitter could make it reach the loopback (Redis, the
API itself), private networks, or a cloud's metadata service (169.254.169.254). So an address
that is loopback, private (RFC 1918, fc00::/7), link-local, unspecified, multicast, reserved or
otherwise not global is refused, unless it lies in a network of CELLBLOCK_CALLBACK_ALLOW: the
operator's word (e.g. 127.0.0.1/32 for a receiver on the same host).

Pure functions, no I/O and no DNS: the API checks the hosts it can tell without a lookup when a
submission comes in (api/validation.py), and every address a host resolves to when it delivers
(api/callbacks.py, which also pins the connection to the addresses it checked).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address

Address = IPv4Address | IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6761: `localhost` and every name under it are the loopback, whatever a resolver says.
LOOPBACK: tuple[Address, ...] = (IPv4Address("127.0.0.1"), IPv6Address("::1"))


def parse_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list of CIDRs ("127.0.0.1/32, fd00::/8"); a bare address
    is a /32 or /128, host bits are ignored. ValueError names an entry that is not one."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def _why_special(addr: Address) -> str | None:
    # Most specific first: 127.0.0.1 is also "private" to Python, 169.254.169.254 too.
    for why, special in (
        ("loopback", addr.is_loopback),
        ("unspecified", addr.is_unspecified),
        ("link-local", addr.is_link_local),
        ("multicast", addr.is_multicast),
        ("private", addr.is_private),
        ("reserved", addr.is_reserved),
        # What is left: shared address space (100.64.0.0/10: carrier-grade NAT, and some clouds'
        # metadata service, 100.100.100.200) and the like, never a public receiver.
        ("not global", not addr.is_global),
    ):
        if special:
            return why
    return None


def refusal(addr: Address | str, allow: Sequence[Network] = ()) -> str | None:
    """Why `addr` may not receive a callback ("loopback", "private", ...), or None when it may."""
    addr = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
    # The kernel sends ::ffff:a.b.c.d to a.b.c.d: judge (and allow) the address it reaches.
    reached = addr.ipv4_mapped if isinstance(addr, IPv6Address) and addr.ipv4_mapped else addr
    if any(a in net for a in (addr, reached) for net in allow):  # of another IP version: not in it
        return None
    why = _why_special(reached)
    if why is None and isinstance(reached, IPv6Address) and reached.sixtofour is not None:
        # 6to4 (2002::/16) is global to Python but leads to the IPv4 address it carries.
        inner = _why_special(reached.sixtofour)
        why = None if inner is None else f"6to4 of a {inner} address"
    return why


def literal_addresses(host: str) -> tuple[Address, ...] | None:
    """The addresses that `host` (a URL's host name, without brackets) names without a lookup: an
    IP address, also in the legacy IPv4 forms resolvers accept (127.1, 0x7f000001, 2130706433),
    or a localhost name. None for a name only DNS can answer."""
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return LOOPBACK
    try:
        return (ipaddress.ip_address(name),)
    except ValueError:
        pass
    try:
        return (IPv4Address(socket.inet_aton(name)),)  # a C parser, no lookup
    except (OSError, ValueError):  # not one (ValueError: a NUL or a non-ASCII character)
        return None
