"""Several "hosts" on one machine, for tests of cellblock spread over many: a network namespace
each, joined by a bridge (in a namespace of its own) on addresses of the 198.18.0.0/15
benchmarking range, with no default route anywhere, so no packet can leave the machine.

- `argv(host, argv)`: a command that runs in the host's network namespace (`nsenter --net`:
  only the network; `ip netns exec` would also remount /sys, hiding the cgroups from the jail);
- `call(fn, ...)`: runs `fn` in a thread of the `client` host (threads that joined its network
  namespace), so that the test's own HTTP and Redis connections cross the bridge too;
- `cut(host)` / `mend(host)`: the host's link to the bridge goes down / up. A partition: its
  packets are dropped, not refused, so its TCP connections stall as over a broken network;
- `group(host)`: a cgroup2 group of the host's own (its "machine", beside the cgroups its jail
  makes under its own parent), for `kill(host)` — every process of it, the jail's runs
  included, SIGKILLed at once (cgroup.kill).

Everything is removed on exit, whatever happened: the namespaces (and with them the links),
the groups and what runs in them.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

from jail.libc import CLONE_NEWNET
from tests.cgroup_layout import CGROUP2, remove_tree
from tests.conftest import spawn

T = TypeVar("T")

SUBNET = "198.18.0"  # a /24 of 198.18.0.0/15 (RFC 2544: benchmarking, never routed)
CLIENT = "client"
# What the tests on these hosts measured, one line each: printed at the end of the run
# (tests/conftest.py: pytest_terminal_summary).
FIGURES: list[str] = []
_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def join_netns(path: str) -> None:
    """Move the calling thread (only it) into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class Hosts:
    """The hosts `names` and a `client` host, each on its own address of SUBNET."""

    def __init__(self, *names: str) -> None:
        self.tag = f"cbt{uuid.uuid4().hex[:6]}"
        self.names = [*names, CLIENT]
        self.address = {name: f"{SUBNET}.{i + 1}" for i, name in enumerate(self.names)}
        self._made: list[str] = []
        self._groups: dict[str, str] = {}
        self._started: list[subprocess.Popen[bytes]] = []
        self._client: ThreadPoolExecutor | None = None

    def netns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def __enter__(self) -> Hosts:
        try:
            hub = self.netns("hub")
            ip("netns", "add", hub)
            self._made.append(hub)
            ip("-n", hub, "link", "add", "br0", "type", "bridge")
            ip("-n", hub, "link", "set", "br0", "up")
            for i, host in enumerate(self.names):
                ns = self.netns(host)
                ip("netns", "add", ns)
                self._made.append(ns)
                ip("-n", hub, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
                ip("-n", hub, "link", "set", f"p{i}", "master", "br0", "up")
                ip("-n", ns, "addr", "add", f"{self.address[host]}/24", "dev", "eth0")
                ip("-n", ns, "link", "set", "eth0", "up")
                ip("-n", ns, "link", "set", "lo", "up")
            self._client = ThreadPoolExecutor(
                32, thread_name_prefix="client", initializer=join_netns, initargs=(f"/run/netns/{self.netns(CLIENT)}",)
            )
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Everything made, undone: each step whatever the others do (ExitStack: the last made
        goes first, and an error is raised once all have run)."""
        with ExitStack() as undo:
            for ns in self._made:  # the links go with the namespaces
                undo.callback(subprocess.run, ["ip", "netns", "del", ns], capture_output=True, timeout=30)
            for proc in self._started:  # reaped once killed with their group
                undo.callback(proc.wait, timeout=10)
            for group in self._groups.values():  # before the namespaces: what runs there, killed
                undo.callback(remove_tree, group)
            if self._client is not None:
                undo.callback(self._client.shutdown, wait=True, cancel_futures=True)
            self._made, self._groups, self._client, self._started = [], {}, None, []

    def argv(self, host: str, argv: list[str]) -> list[str]:
        """`argv` started in `host`: its network, and its group if it has one."""
        inner = argv
        if host in self._groups:
            inner = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self._groups[host], *argv]
        return ["nsenter", f"--net=/run/netns/{self.netns(host)}", *inner]

    def spawn(self, host: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """`argv` started in `host` and in its group: it ends with the hosts (killed, reaped)."""
        self.group(host)
        proc = spawn(self.argv(host, argv), env, log)
        self._started.append(proc)
        return proc

    def group(self, host: str) -> str:
        """The host's own cgroup2 group (made on first use): what `argv` starts there after."""
        if host not in self._groups:
            assert CGROUP2 is not None, "no cgroup2 mount: the hosts need one for their groups"
            path = f"{CGROUP2}/{self.tag}-{host}"
            os.mkdir(path)
            self._groups[host] = path
        return self._groups[host]

    def kill(self, host: str) -> None:
        """SIGKILL every process of `host` (its group) at once, and wait until they are gone."""
        path = self._groups[host]
        Path(path, "cgroup.kill").write_text("1")
        deadline = time.monotonic() + 10
        while "populated 1" in Path(path, "cgroup.events").read_text():  # the group and all below
            assert time.monotonic() < deadline, f"{host}: processes outlived cgroup.kill for 10 s"
            time.sleep(0.01)

    def cut(self, host: str) -> None:
        ip("-n", self.netns("hub"), "link", "set", f"p{self.names.index(host)}", "down")

    def mend(self, host: str) -> None:
        ip("-n", self.netns("hub"), "link", "set", f"p{self.names.index(host)}", "up")

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) in a thread of the client host; its result (or its exception)."""
        assert self._client is not None
        return self._client.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable[..., T], *args: Any) -> Any:
        """fn(*args) started in a thread of the client host: its Future."""
        assert self._client is not None
        return self._client.submit(fn, *args)
