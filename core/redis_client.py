"""How a Redis client is made from CELLBLOCK_REDIS_URL, for every client alike: the API's pool
(and its Pub/Sub wake-ups), RQ and the workers, the CLI.

Two kinds of URL:
- redis-py's own grammar (`redis://`, `rediss://` for TLS, `unix://`; `user:password@`;
  `?ssl_ca_certs=...`): one Redis;
- `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db][?...]` (or
  `rediss+sentinel://` for TLS to the primary): the current primary of `service` as the
  listed Sentinels name it, asked again on every new connection, so that a client follows a
  failover by itself. The user and password, `db` and the query (`ssl_ca_certs`, ...) are the
  primary's; `sentinel_password` (and `sentinel_username`) in the query are the Sentinels'.

A worker's client retries a command whose connection failed for `CELLBLOCK_REDIS_RETRY`
seconds (`retry_policy`): a failover or a cut network then delays its job instead of failing it.
The API keeps redis-py's short default and answers 503 (api/errors.py) rather than hold requests.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel
from redis.backoff import ExponentialBackoff
from redis.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.retry import Retry

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379
# Query parameters that are the Sentinels' own (the rest go to the primary's connections).
_SENTINEL_ONLY = {"sentinel_password": "password", "sentinel_username": "username"}
# A retried command waits 0.1, 0.2, 0.4, 0.8 s, then RETRY_CAP_S between tries.
RETRY_BASE_S = 0.05
RETRY_CAP_S = 1.0
# How long a worker's client waits for a TCP connection to Redis (a host that drops packets).
WORKER_CONNECT_TIMEOUT_S = 5.0
# How long any client waits for one Sentinel before it asks the next.
SENTINEL_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class SentinelService:
    """What a redis+sentinel:// URL names."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    primary: dict[str, Any] = field(default_factory=dict)  # the primary's connection arguments
    sentinel: dict[str, Any] = field(default_factory=dict)  # the Sentinels' own


def sentinel_service(url: str) -> SentinelService | None:
    """The Sentinel service `url` names; None for any other URL. ValueError says what is wrong
    (without the URL: it holds passwords)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        return None
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = []
    for host in hosts.split(","):
        if host.startswith("["):  # [IPv6]:port
            name, _, rest = host[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            name, _, port = host.partition(":")
        if not name:
            raise ValueError("a Sentinel address is empty")
        if port and not port.isdigit():
            raise ValueError(f"a Sentinel's port is a number, not {port!r}")
        sentinels.append((name, int(port) if port else SENTINEL_PORT))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or not (len(path) == 1 or path[1].isdigit()):
        raise ValueError("give the service name, and a db number if not 0: /service[/db]")
    primary: dict[str, Any] = {"db": int(path[1]) if len(path) > 1 else 0}
    if parts.username:
        primary["username"] = urllib.parse.unquote(parts.username)
    if parts.password:
        primary["password"] = urllib.parse.unquote(parts.password)
    if parts.scheme == "rediss+sentinel":
        primary["ssl"] = True
    sentinel: dict[str, Any] = {}
    for key, value in urllib.parse.parse_qsl(parts.query):
        if key in _SENTINEL_ONLY:
            sentinel[_SENTINEL_ONLY[key]] = value
            continue
        parse = cast("Callable[[str], Any] | None", URL_QUERY_ARGUMENT_PARSERS.get(key))  # as redis-py types its own
        try:
            primary[key] = parse(value) if parse else value
        except ValueError as exc:
            raise ValueError(f"{key}={value!r}: {exc}") from None
    return SentinelService(tuple(sentinels), path[0], primary, sentinel)


def retry_policy(seconds: float) -> Retry:
    """Retries of a command whose connection failed or timed out, for at least `seconds`: quick
    at first (a dropped connection to a live Redis), then one try a second (a failover, a cut
    network). Each try also takes its own connect or read time, so the whole may be longer."""
    quick = 4  # the tries before the backoff reaches RETRY_CAP_S: 1.5 s together
    return Retry(ExponentialBackoff(cap=RETRY_CAP_S, base=RETRY_BASE_S), quick + max(0, math.ceil(seconds - 1.5)))


def worker_client(url: str, retry_for: float) -> redis.Redis:
    """A worker's client: its commands retried for `retry_for` seconds (`retry_policy`)."""
    return sync_client(url, retry=retry_policy(retry_for), socket_connect_timeout=WORKER_CONNECT_TIMEOUT_S)


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A client of the Redis `url` names (options: redis-py's, e.g. socket_timeout)."""
    target = sentinel_service(url)
    if target is None:
        return redis.Redis.from_url(url, **options)
    watched = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinels(target))
    kwargs = {**target.primary, **options}
    kwargs["connection_class"] = _AskFirstSSL if kwargs.pop("ssl", False) else _AskFirst
    primary: redis.Redis = watched.master_for(target.service, **kwargs)
    return primary


def async_client(url: str, max_connections: int, timeout: float, **options: Any) -> aioredis.Redis:
    """An asyncio client of the Redis `url` names, with at most `max_connections`; a request
    waits up to `timeout` seconds for a free one (a Sentinel-watched primary's pool does not
    wait: past its connections it fails at once, which the API answers 503 as Redis away)."""
    target = sentinel_service(url)
    if target is None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout, **options
        )
        return aioredis.Redis(connection_pool=pool)
    watched = asentinel.Sentinel(target.sentinels, sentinel_kwargs=_sentinels(target))
    primary: aioredis.Redis = watched.master_for(
        target.service, **{**target.primary, **options, "max_connections": max_connections}
    )
    return primary


class _AskFirst(redis.sentinel.SentinelManagedConnection):
    """redis-py (8.2) asks the Sentinels for the primary only in `connect`: a command that
    reconnects goes through `connect_check_health`, back to the address the connection had,
    which after a failover is the dead primary's, for as long as the connection lives (seen:
    a worker retrying a dead address for its whole retry budget). Here every connection
    asks the Sentinels first."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if retry_socket_connect:  # a reconnect of a command's (`connect_to` passes False)
            # One ask and one connect: the command's own retries do the retrying (`connect`
            # would retry too, and the two policies multiply).
            self._connect_retry()  # type: ignore[no-untyped-call]
        else:
            super().connect_check_health(check_health, retry_socket_connect=False)


class _AskFirstSSL(_AskFirst, redis.sentinel.SentinelManagedSSLConnection):
    pass


def _sentinels(target: SentinelService) -> dict[str, Any]:
    """The Sentinels' connection arguments: short timeouts of their own (a Sentinel that drops
    packets is skipped for the next, not waited on for the primary's timeouts), their auth."""
    return {"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S, **target.sentinel}
