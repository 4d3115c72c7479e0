"""The systemd units (deploy/systemd) for hosts whose Redis is elsewhere, with TLS, and for the
single host with its own Redis (the drop-in local-redis.conf): `systemd-analyze verify` on both
layouts, in a root of their own (this host's systemd units beside ours, nothing installed
here), then what verify does not judge: no unit waits for or pulls in a local Redis, the Redis
URL and its password live only in the root-only environment file, the worker keeps what the
jail needs, and the example environment file is one the service takes."""

from __future__ import annotations

import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import redis

from core import redis_client, settings
from tests.conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"
API, WORKER = "cellblock-api.service", "cellblock-worker@.service"
DROP_IN = "local-redis.conf"
ENV_FILE = "/etc/cellblock/env"
EXAMPLE_ENV = UNITS / "cellblock.env.example"
# Where the units say cellblock is installed.
CELLBLOCK = "/opt/cellblock/.venv/bin/cellblock"
DEPENDENCIES = ("After", "Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds")

Entries = list[tuple[str, str, str]]


def parse(path: Path) -> Entries:
    """(section, key, value) of a unit file or drop-in, in order (a key may repeat)."""
    entries: Entries = []
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}: continued lines are not parsed here"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return entries


def values(path: Path, section: str, key: str) -> list[str]:
    """Every value of `key`, a list setting split into its items."""
    return [item for s, k, v in parse(path) if (s, k) == (section, key) for item in v.split()]


def one(path: Path, section: str, key: str) -> str:
    found = [v for s, k, v in parse(path) if (s, k) == (section, key)]
    assert len(found) == 1, f"{path.name}: [{section}] {key}= {found}"
    return found[0]


def environment_file(path: Path) -> tuple[dict[str, str], list[str]]:
    """As systemd reads an EnvironmentFile=: KEY=value lines, '#' and ';' start comments; and
    the commented-out `#KEY=value` alternatives."""
    env: dict[str, str] = {}
    alternatives = []
    for line in path.read_text().splitlines():
        if line.startswith("#CELLBLOCK_"):
            alternatives.append(line[1:])
        elif line.strip() and not line.startswith(("#", ";")):
            key, sep, value = line.partition("=")
            assert sep and key.isidentifier(), line
            env[key] = value
    return env, alternatives


@pytest.mark.parametrize("layout", ["remote-redis", "single-host"])
def test_systemd_analyze_verifies_the_units(tmp_path: Path, layout: str) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (it verifies the units)"
    root = tmp_path / "root"
    # The units ours name (network-online.target, multi-user.target, ...): this host's own.
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for unit in (API, WORKER):
        shutil.copy(UNITS / unit, etc / unit)
        if layout == "single-host":
            (etc / f"{unit}.d").mkdir()
            shutil.copy(UNITS / DROP_IN, etc / f"{unit}.d" / DROP_IN)
    # verify checks that ExecStart= names an executable, inside the root
    exe = root / CELLBLOCK.lstrip("/")
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    for unit in (API, WORKER.replace("@", "@1")):
        done = subprocess.run(
            [analyze, "verify", f"--root={root}", unit], capture_output=True, text=True, timeout=60, check=False
        )
        # an unknown key is only a warning (exit 0): any word from verify is a failure here
        assert (done.returncode, done.stdout + done.stderr) == (0, ""), f"{layout} {unit}"


@pytest.mark.parametrize("unit", [API, WORKER])
def test_a_unit_neither_waits_for_nor_pulls_in_a_local_redis(unit: str) -> None:
    path = UNITS / unit
    for key in DEPENDENCIES:
        assert not [v for v in values(path, "Unit", key) if "redis" in v], f"{unit}: {key}="
    # Redis may be on another host: the network must be up, not just configured.
    assert "network-online.target" in values(path, "Unit", "Wants")
    assert "network-online.target" in values(path, "Unit", "After")


def test_the_single_host_drop_in_orders_the_units_after_redis() -> None:
    entries = parse(UNITS / DROP_IN)
    assert {s for s, _, _ in entries} == {"Unit"}
    assert "redis-server.service" in values(UNITS / DROP_IN, "Unit", "Wants")
    assert "redis-server.service" in values(UNITS / DROP_IN, "Unit", "After")


@pytest.mark.parametrize("unit", [API, WORKER])
def test_the_redis_url_is_only_in_the_environment_file(unit: str) -> None:
    """Unit files are world-readable; /etc/cellblock/env is root's (mode 0600) and must be there:
    a unit without it would look for a Redis of its own and retry it for ever."""
    path = UNITS / unit
    assert one(path, "Service", "EnvironmentFile") == ENV_FILE  # no leading '-': required
    assert not [v for v in values(path, "Service", "Environment") if "REDIS" in v]
    assert "install -m 0600 -o root -g root" in EXAMPLE_ENV.read_text()


@pytest.mark.parametrize("unit", [API, WORKER])
def test_a_unit_keeps_restarting_while_redis_is_away(unit: str) -> None:
    path = UNITS / unit
    assert one(path, "Service", "Restart") == "always"
    assert float(one(path, "Service", "RestartSec")) >= 1
    assert one(path, "Unit", "StartLimitIntervalSec") == "0"  # never give up


def test_the_worker_unit_has_what_the_jail_needs() -> None:
    path = UNITS / WORKER
    assert one(path, "Service", "ExecStart") == f"{CELLBLOCK} worker"
    assert not values(path, "Service", "User")  # root: namespaces, cgroups, the sandboxes' uid maps
    assert one(path, "Service", "Delegate") == "yes"
    assert one(path, "Service", "KillSignal") == "SIGTERM"  # RQ's warm shutdown
    drain = settings.load(environment_file(EXAMPLE_ENV)[0]).drain_timeout
    assert float(one(path, "Service", "TimeoutStopSec")) >= drain + 10


def test_the_api_unit_is_unprivileged() -> None:
    path = UNITS / API
    assert one(path, "Service", "ExecStart") == f"{CELLBLOCK} api"
    assert one(path, "Service", "User") not in ("", "root", "0")
    assert one(path, "Service", "NoNewPrivileges") == "yes"


def test_the_example_environment_file_is_a_remote_redis_with_tls() -> None:
    env, alternatives = environment_file(EXAMPLE_ENV)
    cfg = settings.load(env)
    parsed = redis.connection.parse_url(cfg.redis_url)
    assert parsed["connection_class"] is redis.SSLConnection and parsed["username"] and parsed["password"]
    assert parsed["ssl_ca_certs"] == "/etc/cellblock/redis-ca.crt"
    assert cfg.shown_redis_url().count("***") == 1  # the password is never logged
    # the alternatives shown: Sentinels, and the single host's own Redis
    urls = [a.partition("=")[2] for a in alternatives if a.startswith("CELLBLOCK_REDIS_URL=")]
    sentinel = [u for u in urls if urllib.parse.urlsplit(u).scheme in redis_client.SENTINEL_SCHEMES]
    assert len(sentinel) == 1 and redis_client.sentinel_service(sentinel[0]) is not None
    assert "redis://127.0.0.1:6379/0" in urls
    for alternative in alternatives:
        settings.load({**env, **dict([alternative.split("=", 1)])})
