"""The one config surface of the service: environment variables named CELLBLOCK_*.

Every setting has a documented default (the table in README.md is generated from
SETTINGS below: `cellblock config` prints it). Read once with `load()`; nothing else in
the project reads the environment for service settings.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from dataclasses import dataclass, fields
from pathlib import Path

from core import redis_client
from core.destinations import Network, parse_networks
from jail.spec import parse_size

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: its name, default (as text) and meaning."""

    name: str
    default: str
    help: str
    size: bool = False  # bytes, in the one size grammar (jail.spec.parse_size): "4M", "512K", "1048576"


SETTINGS: list[Setting] = [
    Setting(
        "CELLBLOCK_REDIS_URL",
        "",
        "Redis to use (redis://[user:password@]host:port/db, rediss:// for TLS, ?ssl_ca_certs=CA file; "
        "redis+sentinel://[user:password@]host:port,host:port/service[/db] for the primary Sentinel names, "
        "?sentinel_password= for the Sentinels' own); empty: `cellblock up` starts its own under var/redis",
    ),
    Setting("CELLBLOCK_VAR_DIR", str(PROJECT_ROOT / "var"), "state dir (Redis data, AOF, socket)"),
    Setting("CELLBLOCK_REDIS_PORT", "0", "port of the Redis `up` starts; 0: a unix socket in var/redis"),
    Setting(
        "CELLBLOCK_REDIS_MAXMEMORY",
        "1G",
        "memory cap of the Redis `up` starts (noeviction: at the cap, writes are refused, answered 503)",
        size=True,
    ),
    Setting("CELLBLOCK_HOST", "127.0.0.1", "API listen address"),
    Setting("CELLBLOCK_PORT", "8080", "API listen port"),
    Setting("CELLBLOCK_JUDGE0_PORT", "0", "also serve the Judge0 CE API at the root of this port (e.g. 2358); 0: off"),
    Setting("CELLBLOCK_PISTON_PORT", "0", "also serve the Piston v2 API at the root of this port (e.g. 2000); 0: off"),
    Setting("CELLBLOCK_WORKERS", "0", "workers `up` starts; 0: one per CPU"),
    Setting("CELLBLOCK_WORKER_MODE", "simple", "simple: run jobs in the worker process; fork: rq.Worker"),
    Setting("CELLBLOCK_QUEUE", "cellblock", "RQ queue name"),
    Setting("CELLBLOCK_KEY_PREFIX", "cellblock", "prefix of the service's own Redis keys"),
    Setting("CELLBLOCK_SUBMISSION_TTL", "86400", "seconds a submission, its result and events live"),
    Setting("CELLBLOCK_JOB_RETRIES", "2", "retries of a job after a sandbox fault or a dead worker"),
    Setting("CELLBLOCK_JOB_GRACE", "10", "seconds added to a job's computed timeout"),
    Setting("CELLBLOCK_MAINTENANCE_INTERVAL", "15", "seconds between RQ registry cleanups (dead workers)"),
    Setting(
        "CELLBLOCK_DRAIN_TIMEOUT",
        "30",
        "on SIGTERM: seconds a worker may finish its job in hand / the API its open requests",
    ),
    Setting(
        "CELLBLOCK_CLIENT_TIMEOUT",
        "15",
        "seconds a client has to send a request's headers, and again its body; an idle connection is closed after it",
    ),
    Setting("CELLBLOCK_MAX_BODY", "4M", "largest request body in bytes (413 above)", size=True),
    Setting("CELLBLOCK_MAX_SOURCE", "1M", "most bytes of source (all files together) (422 above)", size=True),
    Setting(
        "CELLBLOCK_MAX_INPUT",
        "3M",
        "most bytes of stdin, or of every test's input and expected output together (422 above)",
        size=True,
    ),
    Setting("CELLBLOCK_MAX_TESTS", "200", "most test cases in one submission"),
    Setting("CELLBLOCK_MAX_BATCH", "50", "most submissions in one batch request"),
    Setting(
        "CELLBLOCK_MAX_RESULT",
        "4M",
        "most bytes of program output (every test's stdout, stderr and collected files) a result keeps; "
        "the rest is cut, flagged",
        size=True,
    ),
    Setting("CELLBLOCK_MAX_WAIT", "60", "longest `wait` a request may ask for, seconds"),
    Setting(
        "CELLBLOCK_AUTH",
        "auto",
        "API keys: required, off, or auto (off when the API listens on loopback, else required)",
    ),
    Setting(
        "CELLBLOCK_ALLOWED_HOSTS",
        "",
        "Host names the API answers to, comma-separated; empty: loopback names while keys are off, any once required",
    ),
    Setting(
        "CELLBLOCK_ALLOWED_ORIGINS",
        "",
        "web origins whose pages may call /v1 (CORS), comma-separated, e.g. https://ide.example.org",
    ),
    Setting("CELLBLOCK_MAX_STREAMS", "1000", "event streams (SSE) one API process holds open at once (503 above)"),
    Setting("CELLBLOCK_MAX_SESSIONS", "4", "interactive sessions (/v1/sessions) one API key may hold open at once"),
    Setting(
        "CELLBLOCK_SESSION_IDLE_TIMEOUT",
        "60",
        "seconds a session may go without input or output before it ends (a session's own idle_timeout may be less)",
    ),
    Setting(
        "CELLBLOCK_SESSIONS_PER_WORKER",
        "16",
        "sessions per live worker the deployment runs at once, beside the jobs (one more is a 503)",
    ),
    Setting(
        "CELLBLOCK_REDIS_CONNECTIONS",
        "64",
        "Redis connections one API process may open; more requests wait for one (5 s, then 503)",
    ),
    Setting(
        "CELLBLOCK_REDIS_RETRY",
        "30",
        "seconds a worker keeps retrying a Redis command whose connection failed (a failover, a cut network) "
        "before its job fails; the API does not wait that long: it answers 503 with Retry-After",
    ),
    Setting(
        "CELLBLOCK_REDIS_REPLICAS",
        "0",
        "replicas a submission must reach (Redis WAIT, 1 s) before the API accepts it, so that a failover "
        "keeps it; not reached: 503, nothing queued. 0: accept once the primary has it",
    ),
    Setting("CELLBLOCK_MAX_QUEUE", "1000", "queue depth at which POST answers 503 with Retry-After (0: no cap)"),
    Setting("CELLBLOCK_CALLBACK_ATTEMPTS", "5", "delivery attempts of a callback"),
    Setting("CELLBLOCK_CALLBACK_TIMEOUT", "10", "seconds per callback attempt"),
    Setting(
        "CELLBLOCK_CALLBACK_ALLOW",
        "",
        "networks (CIDRs, comma-separated) callbacks may reach although not public: loopback, private, "
        "link-local (e.g. `127.0.0.1/32`); empty: public addresses only",
    ),
    Setting("CELLBLOCK_CACHE_DIR", "/var/cache/cellblock/compile", "the workers' compile cache directory"),
    Setting("CELLBLOCK_COMPILE_CACHE_MAX", "512M", "compile cache size cap", size=True),
    Setting("CELLBLOCK_LOG_LEVEL", "INFO", "log level"),
    Setting("CELLBLOCK_LOG_FORMAT", "auto", "json, text, or auto (json unless stderr is a terminal)"),
]


@dataclass(frozen=True, slots=True)
class Config:
    """Typed view of SETTINGS."""

    redis_url: str
    var_dir: Path
    redis_port: int
    redis_maxmemory: int
    host: str
    port: int
    judge0_port: int
    piston_port: int
    workers: int
    worker_mode: str
    queue: str
    key_prefix: str
    submission_ttl: int
    job_retries: int
    job_grace: int
    maintenance_interval: int
    drain_timeout: float
    client_timeout: float
    max_body: int
    max_source: int
    max_input: int
    max_tests: int
    max_batch: int
    max_result: int
    max_wait: float
    auth: str
    allowed_hosts: str
    allowed_origins: str
    max_streams: int
    max_sessions: int
    session_idle_timeout: float
    sessions_per_worker: int
    redis_connections: int
    redis_retry: float
    redis_replicas: int
    max_queue: int
    callback_attempts: int
    callback_timeout: float
    callback_allow: str
    cache_dir: str
    compile_cache_max: int
    log_level: str
    log_format: str

    def __post_init__(self) -> None:
        try:
            redis_client.sentinel_service(self.redis_url)
        except ValueError as exc:
            raise ValueError(f"CELLBLOCK_REDIS_URL: {exc}") from None
        if self.redis_replicas < 0:
            raise ValueError(f"CELLBLOCK_REDIS_REPLICAS={self.redis_replicas}: 0 or more")
        if self.redis_retry < 0:
            raise ValueError(f"CELLBLOCK_REDIS_RETRY={self.redis_retry:g}: 0 seconds or more")
        if self.sessions_per_worker < 1:
            raise ValueError(f"CELLBLOCK_SESSIONS_PER_WORKER={self.sessions_per_worker}: at least 1")
        if not self.session_idle_timeout > 0:
            raise ValueError(f"CELLBLOCK_SESSION_IDLE_TIMEOUT={self.session_idle_timeout:g}: above 0 seconds")
        # A malformed allowlist stops the service at start, not at its first callback.
        try:
            parse_networks(self.callback_allow)
        except ValueError as exc:
            raise ValueError(f"CELLBLOCK_CALLBACK_ALLOW={self.callback_allow!r}: {exc}") from exc

    @property
    def callback_networks(self) -> tuple[Network, ...]:
        """CELLBLOCK_CALLBACK_ALLOW: the networks callbacks may reach although not public."""
        return parse_networks(self.callback_allow)

    @property
    def redis_dir(self) -> Path:
        return self.var_dir / "redis"

    @property
    def redis_socket(self) -> Path:
        return self.redis_dir / "redis.sock"

    def own_redis_url(self) -> str:
        """URL of the Redis `cellblock up` starts (when CELLBLOCK_REDIS_URL is empty)."""
        if self.redis_port:
            return f"redis://127.0.0.1:{self.redis_port}/0"
        return f"unix://{self.redis_socket}?db=0"

    def effective_redis_url(self) -> str:
        return self.redis_url or self.own_redis_url()

    def shown_redis_url(self) -> str:
        """The Redis URL as logs may show it: without its password."""
        url = urllib.parse.urlsplit(self.effective_redis_url())
        if url.password is not None:
            user = f"{url.username}:" if url.username else ":"
            url = url._replace(netloc=f"{user}***@{url.netloc.rpartition('@')[2]}")
        query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        if any("password" in key for key, _ in query):  # a Sentinel's own (sentinel_password=)
            shown = [(key, "***" if "password" in key else value) for key, value in query]
            url = url._replace(query=urllib.parse.urlencode(shown, safe="/*"))
        return url.geturl()

    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    @property
    def auth_required(self) -> bool:
        """CELLBLOCK_AUTH: required | off | auto (off only when the API listens on loopback)."""
        mode = self.auth.strip().lower()
        if mode in ("required", "on"):
            return True
        if mode == "off":
            return False
        if mode != "auto":
            raise ValueError(f"CELLBLOCK_AUTH={self.auth!r}: use required, off or auto")
        host = self.host.strip("[]")
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:
            return True


def load(env: dict[str, str] | None = None) -> Config:
    """Build a Config from `env` (default: os.environ), falling back to each default."""
    env = dict(os.environ) if env is None else env
    raw = {s.name: env.get(s.name, s.default) for s in SETTINGS}
    values: dict[str, object] = {}
    for f, setting in zip(fields(Config), SETTINGS, strict=True):
        text = raw[setting.name]
        kind = f.type
        try:
            if setting.size:
                values[f.name] = parse_size(text)
            elif kind == "int":
                values[f.name] = int(text)
            elif kind == "float":
                values[f.name] = float(text)
            elif kind == "Path":
                values[f.name] = Path(text).resolve()
            else:
                values[f.name] = text
        except ValueError as exc:
            raise ValueError(f"{setting.name}={text!r}: {exc} (default {setting.default!r})") from exc
    return Config(**values)  # type: ignore[arg-type]


def describe() -> str:
    """The settings table as Markdown (for README and `cellblock config`)."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = s.default.replace(str(PROJECT_ROOT), ".")
        lines.append(f"| `{s.name}` | {f'`{default}`' if default else '(empty)'} | {s.help} |")
    return "\n".join(lines)
