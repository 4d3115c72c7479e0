"""Where a callback may go: the address rule (core/destinations.py), its use at submit
(api/validation.py) and at delivery (api/callbacks.py: vetting a resolved name, pinning the
connection to the vetted addresses). Pure functions and the loopback only: no lookup leaves
this host (`localhost` is answered by /etc/hosts), no packet leaves 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import IPv4Address, ip_network
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult
from yarl import URL

from api.callbacks import PinnedResolver, Refused, _send, vet
from api.errors import ApiError
from api.validation import parse_submission
from core.destinations import LOOPBACK, literal_addresses, parse_networks, refusal
from core.settings import load
from policies.languages import Language, available_languages


@pytest.mark.parametrize(
    "addr,why",
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved, and "private" to Python
        ("100.100.100.200", "not global"),  # shared address space (some clouds' metadata)
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible: deprecated, reserved
        ("2606:4700:4700::1111", None),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as the IPv4 address it reaches
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:8.8.8.8", None),
        ("2002:7f00:1::", "6to4 of a loopback address"),
        ("2002:808:808::1", None),
    ],
)
def test_the_address_rule(addr: str, why: str | None) -> None:
    assert refusal(addr) == why


@pytest.mark.parametrize(
    "addr,allow,allowed",
    [
        ("127.0.0.1", "127.0.0.1/32", True),
        ("127.0.0.2", "127.0.0.1/32", False),
        ("::ffff:127.0.0.1", "127.0.0.1/32", True),  # the address it reaches is allowed
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1/128", True),  # as written, too
        ("::1", "127.0.0.1/32", False),  # another IP version: not in it, and no error
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.0.0.1/8", True),  # host bits ignored
        ("192.168.0.1", "10.0.0.0/8, 192.168.0.0/16", True),
        ("169.254.169.254", "10.0.0.0/8, 192.168.0.0/16", False),
        ("fd00::5", "fd00::/8", True),
        ("fe80::1", "fd00::/8", False),
        ("127.0.0.1", "", False),
    ],
)
def test_the_allowlist(addr: str, allow: str, allowed: bool) -> None:
    assert (refusal(addr, parse_networks(allow)) is None) is allowed


def test_the_allowlist_setting() -> None:
    cfg = load({"CELLBLOCK_CALLBACK_ALLOW": " 127.0.0.1, ::1/128 ,10.0.0.0/8"})
    assert cfg.callback_networks == (ip_network("127.0.0.1/32"), ip_network("::1/128"), ip_network("10.0.0.0/8"))
    assert load({}).callback_networks == ()
    with pytest.raises(ValueError, match="CELLBLOCK_CALLBACK_ALLOW"):
        load({"CELLBLOCK_CALLBACK_ALLOW": "127.0.0.1/32,intranet"})


@pytest.mark.parametrize(
    "host,addresses",
    [
        ("localhost", LOOPBACK),
        ("LOCALHOST.", LOOPBACK),
        ("hooks.localhost", LOOPBACK),
        ("127.0.0.1", (IPv4Address("127.0.0.1"),)),
        ("127.1", (IPv4Address("127.0.0.1"),)),  # the legacy forms resolvers accept
        ("0x7f000001", (IPv4Address("127.0.0.1"),)),
        ("2130706433", (IPv4Address("127.0.0.1"),)),
        ("example.org", None),  # only DNS can tell, at delivery
        ("localhost.example.org", None),
    ],
)
def test_literal_addresses(host: str, addresses: Any) -> None:
    assert literal_addresses(host) == addresses


@pytest.fixture(scope="module")
def languages() -> dict[str, Language]:
    return available_languages()


def _callback_url(url: str, languages: dict[str, Language], allow: str = "") -> str | None:
    cfg = load({"CELLBLOCK_CALLBACK_ALLOW": allow})
    body = {"language": "python3", "source": "1", "callback_url": url}
    return parse_submission(body, cfg, languages).submission.callback_url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fe80::1]/x",
        "http://localhost/x",
        "http://api.localhost./x",
        "http://0x7f000001/x",
    ],
)
def test_submit_refuses_a_literal_refused_address(url: str, languages: dict[str, Language]) -> None:
    with pytest.raises(ApiError) as info:
        _callback_url(url, languages)
    assert info.value.status == 422 and info.value.field == "callback_url"
    assert info.value.code == "forbidden_destination"


def test_submit_takes_names_public_addresses_and_allowed_ones(languages: dict[str, Language]) -> None:
    # A name is not looked up on the request path: it is checked at delivery.
    assert _callback_url("https://hooks.example.org/x", languages) == "https://hooks.example.org/x"
    assert _callback_url("http://93.184.216.34/x", languages) == "http://93.184.216.34/x"
    assert _callback_url("http://127.0.0.1:9/x", languages, "127.0.0.1/32") == "http://127.0.0.1:9/x"
    assert _callback_url("http://localhost:9/x", languages, "127.0.0.1/32, ::1") == "http://localhost:9/x"
    with pytest.raises(ApiError):  # the allowlist says 127.0.0.1, not ::1
        _callback_url("http://[::1]:9/x", languages, "127.0.0.1/32")
    with pytest.raises(ApiError, match="port"):
        _callback_url("http://hooks.example.org:99999/x", languages)


def test_delivery_refuses_a_name_that_resolves_to_a_refused_address() -> None:
    # `localhost` comes from /etc/hosts: no DNS query leaves the host.
    with pytest.raises(Refused, match=r"localhost resolves to .*loopback"):
        asyncio.run(vet("localhost", 80, ()))
    loopback = parse_networks("127.0.0.0/8, ::1")
    vetted = asyncio.run(vet("localhost", 80, loopback))
    assert vetted and all(refusal(a["host"], loopback) is None and a["port"] == 80 for a in vetted)


def test_the_connection_goes_to_the_vetted_address_only() -> None:
    """Pinning: the connector gets its addresses from the resolver it was given, never from DNS.
    `hooks.invalid` cannot resolve (RFC 6761), yet the POST reaches the receiver the vetted
    address names, with the URL's host in its Host header; any other name is refused."""

    async def run() -> tuple[int, list[str], int]:
        hosts: list[str] = []

        async def hook(request: web.Request) -> web.Response:
            hosts.append(request.headers["Host"])
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            vetted: list[ResolveResult] = [
                {
                    "hostname": "hooks.invalid",
                    "host": "127.0.0.1",
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
            ]
            pinned = PinnedResolver("hooks.invalid", vetted)
            assert await pinned.resolve("hooks.invalid", port, socket.AF_UNSPEC) == vetted
            assert await pinned.resolve("hooks.invalid", port, socket.AF_INET6) == []
            assert await pinned.resolve("hooks.invalid.", port, socket.AF_UNSPEC) == vetted  # the same name
            with pytest.raises(OSError, match="not vetted"):
                await pinned.resolve("elsewhere.invalid", port)
            status = await _send("POST", URL(f"http://hooks.invalid:{port}/hook"), b"{}", {}, vetted)
            return status, hosts, port
        finally:
            await runner.cleanup()

    status, hosts, port = asyncio.run(run())
    assert status == 204 and hosts == [f"hooks.invalid:{port}"]
