"""cellblock spread over several hosts, proven with faults. The hosts are network namespaces on
one bridge (tests/hosts.py: 198.18.0.0/24, nothing routed out): Redis in one (TLS and an ACL
user; for the failover a primary, two replicas and three Sentinels, all with passwords), the
API in another, and two worker hosts, each with its own jail state dir, cgroup parent, sandbox
uid range and cgroup (its "machine", which `Hosts.kill` SIGKILLs whole). The test talks to the
API and Redis from a client host, like any client, with an API key (the API is not on loopback).

Each test keeps a load of submissions going through its fault, then checks that every accepted
submission finished exactly once (one `finished` event; its own output) and reports what it
measured — in flight at the fault, time to recover, lost, duplicated — at the end of the run
(`pytest_terminal_summary`, tests/conftest.py) and in README "Running on many hosts".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from rq import Worker

from core.keys import Keys
from jail.cgroup_v1 import v1_mounts
from jail.config import JailConfig
from jail.host import Host
from tests.cgroup_layout import CGROUP2, rmdir_tree
from tests.conftest import ROOT, Response, Stack, spawn, wait_for_redis
from tests.hosts import FIGURES, Hosts
from tests.tls import certificates

# Each test runs about 30 s; its waits, together, could run longer than the default 120 s.
T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

USER, PASSWORD = "cellblock", "bed-3c1f9e"
KEYS = Keys("cellblock")  # the default prefix: the Redis is the test's own
# What worker/jobs.py logs when a late attempt finds its submission finished: at its end, or
# as it starts (a retry of the late attempt's job, after its timeout interrupted its end).
LATE_FINISH, LATE_RETRY = "is finished already; this result is dropped", "already finished: this attempt does nothing"
SENTINEL_PASSWORD = "sentinels-77a2"
SERVICE = "cellblock"
REDIS_PORT, API_PORT = 6379, 8080  # each host has its own network: no port is taken
SENTINEL_PORTS = (26379, 26380, 26381)
WORKERS = ("w1", "w2")
# Each submission of the load sleeps this long in the jail, so that jobs are in flight when a
# fault strikes; wall_time 2 s makes its job timeout 4 s (core/limits.py, with JOB_GRACE 1),
# so a job whose worker went silent runs again after 4 + 5 s (worker/runner.py) at most.
# The load's rate is well below what one worker host alone gets through (about 0.8 a second),
# so that a fault leaves no backlog growing behind it: the time to recover is the fault's.
NAP_S = 1.2
RATE = 0.5
BURST = 8  # submissions posted at once just before each fault
PROGRAM = "import time\ntime.sleep({nap})\nprint({token!r})\n"
LIMITS = {"wall_time": 2}


@dataclass
class RedisSide:
    """How services reach Redis (`url`), and how the test does (`local`: a unix socket, for
    checks that must not wait on the bridge). Its processes (`procs`, the primary first) live
    in the redis host's group: they end with the hosts, whatever happens."""

    url: str
    local: str
    procs: list[subprocess.Popen[bytes]]

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.local, socket_timeout=10)


def acl_lines() -> str:
    return f"user default off\nuser {USER} on >{PASSWORD} ~* &* +@all\n"


def redis_server(hosts: Hosts, where: Path, name: str, conf: str) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server in the redis host with `conf`, a unix socket of its own for the test;
    the socket's URL once it answers."""
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server not found: `make test` installs deploy/host-packages.txt"
    (where / name).mkdir()
    sock = where / name / "redis.sock"
    path = where / name / "redis.conf"
    path.write_text(f'{conf}dir {where / name}\nunixsocket {sock}\nsave ""\nappendonly no\n{acl_lines()}')
    log = where / f"{name}.log"
    proc = hosts.spawn("redis", [exe, str(path)], dict(os.environ), log)
    local = f"unix://{USER}:{PASSWORD}@{sock}?db=0"
    wait_for_redis(local, proc, log)
    return proc, local


def tls_redis(hosts: Hosts, where: Path) -> RedisSide:
    """One Redis, TLS only on the bridge, an ACL user instead of the open default user."""
    address = hosts.address["redis"]
    certs = certificates(where, address)
    conf = (
        f"port 0\nbind {address}\ntls-port {REDIS_PORT}\ntls-cert-file {certs['srv.crt']}\n"
        f"tls-key-file {certs['srv.key']}\ntls-ca-cert-file {certs['ca.crt']}\ntls-auth-clients no\n"
    )
    proc, local = redis_server(hosts, where, "redis", conf)
    url = f"rediss://{USER}:{PASSWORD}@{address}:{REDIS_PORT}/0?ssl_ca_certs={certs['ca.crt']}"
    return RedisSide(url, local, [proc])


@dataclass
class Watched(RedisSide):
    """A primary, two replicas and three Sentinels at `address`; the unix socket URL of each
    data node by its port."""

    address: str = ""
    nodes: dict[int, str] = field(default_factory=dict)

    def primary_port(self) -> int:
        """The primary's port as the Sentinels name it now (asked from the client host); 0:
        none answered."""
        for port in SENTINEL_PORTS:
            try:
                with redis.Redis(self.address, port, password=SENTINEL_PASSWORD, socket_timeout=2) as s:
                    return int(s.sentinel_get_master_addr_by_name(SERVICE)[1])
            except (redis.RedisError, TypeError):
                continue
        return 0


def watched_redis(hosts: Hosts, where: Path) -> Watched:
    address = hosts.address["redis"]
    auth = f"masteruser {USER}\nmasterauth {PASSWORD}\n"
    primary, local = redis_server(hosts, where, "primary", f"bind {address}\nport {REDIS_PORT}\n{auth}")
    nodes = {REDIS_PORT: local}
    procs = [primary]
    for port in (REDIS_PORT + 1, REDIS_PORT + 2):
        conf = f"bind {address}\nport {port}\n{auth}replicaof {address} {REDIS_PORT}\n"
        proc, nodes[port] = redis_server(hosts, where, f"replica-{port}", conf)
        procs.append(proc)
    exe = shutil.which("redis-server")
    assert exe is not None
    for port in SENTINEL_PORTS:
        conf = where / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one each, writable
        conf.write_text(
            f"port {port}\nbind {address}\ndir {where}\nrequirepass {SENTINEL_PASSWORD}\n"
            f"sentinel sentinel-pass {SENTINEL_PASSWORD}\n"
            f"sentinel monitor {SERVICE} {address} {REDIS_PORT} 2\n"
            f"sentinel auth-user {SERVICE} {USER}\nsentinel auth-pass {SERVICE} {PASSWORD}\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 10000\n"
        )
        procs.append(
            hosts.spawn("redis", [exe, str(conf), "--sentinel"], dict(os.environ), where / f"sentinel-{port}.log")
        )
    hosts_list = ",".join(f"{address}:{p}" for p in SENTINEL_PORTS)
    url = f"redis+sentinel://{USER}:{PASSWORD}@{hosts_list}/{SERVICE}/0?sentinel_password={SENTINEL_PASSWORD}"
    side = Watched(url, local, procs, address, nodes)
    wait_until(lambda: hosts.call(side.primary_port) == REDIS_PORT, 20, "the Sentinels to name the primary")
    for port in (REDIS_PORT + 1, REDIS_PORT + 2):
        with redis.Redis.from_url(nodes[port]) as r:
            wait_until(lambda r=r: r.info("replication")["master_link_status"] == "up", 20, f"replica {port}")
    return side


def wait_until(check: Callable[[], T], seconds: float, what: str) -> T:
    """check()'s first true value, asked every 0.1 s for `seconds` (Redis or a socket failing
    counts as not yet)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if value := check():
                return value
        except (redis.RedisError, OSError):
            pass
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.1)


@dataclass
class BedStack(Stack):
    """The stack of tests/conftest.py spread over the hosts: the API in `api`, a worker in each
    worker host; every request from the client host, with the API key."""

    hosts: Hosts | None = None
    token: str = ""

    def request(self, method: str, path: str, body: Any = None, **options: Any) -> Response:
        """Stack.request from the client host, with the key (options: Stack.request's)."""
        assert self.hosts is not None
        options["headers"] = {"Authorization": f"Bearer {self.token}", **(options.get("headers") or {})}
        return self.hosts.call(Stack.request, self, method, path, body, **options)

    def start_api(self) -> None:
        assert self.hosts is not None
        argv = self.hosts.argv("api", [sys.executable, "-m", "cli", "api"])
        self.api = spawn(argv, self.env, self.log_dir / "api.log")

    def start_host(self, host: str) -> subprocess.Popen[bytes]:
        assert self.hosts is not None
        proc = spawn(self.hosts.argv(host, [sys.executable, "-m", "cli", "worker"]), host_env(self, host),
                     self.log_dir / f"{host}.log")  # fmt: skip
        self.workers.append(proc)
        return proc

    def log_of(self, host: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.log_dir / f"{host}.log").read_text().splitlines()
                if line.startswith("{")]  # fmt: skip


def jail_config(stack: Stack, host: str) -> JailConfig:
    """The worker host's own jail: state dir, cgroup parent and sandbox uids of its own."""
    assert isinstance(stack, BedStack) and stack.hosts is not None
    n = WORKERS.index(host) + 1
    return JailConfig(
        state_dir=f"/run/{stack.hosts.tag}-{host}",
        uid_base=300_000 + 1000 * n,
        slots=8,
        cgroup_parent=f"{stack.hosts.tag}-{host}-jail",  # beside the host's own group, not in it
    )


def host_env(stack: BedStack, host: str) -> dict[str, str]:
    return {
        **stack.env,
        **jail_config(stack, host).to_env(),
        "CELLBLOCK_CACHE_DIR": str(stack.log_dir / f"cache-{host}"),
    }


def remove_jail_state(stack: BedStack, host: str) -> None:
    """What a worker host's jail keeps on this machine, gone: a killed worker's slots (root
    mounts, run cgroups: the jail's own sweep), its cgroup parent, its state dir."""
    cfg = jail_config(stack, host)
    if not os.path.isdir(cfg.state_dir):
        return
    Host(cfg)  # sweeps every slot no live process holds
    for mount in {*v1_mounts().values(), *([CGROUP2] if CGROUP2 else [])}:
        if os.path.isdir(f"{mount}/{cfg.cgroup_parent}"):
            rmdir_tree(f"{mount}/{cfg.cgroup_parent}")
    shutil.rmtree(cfg.state_dir)


@contextmanager
def bed(hosts: Hosts, where: Path, side: RedisSide, **env: str) -> Iterator[BedStack]:
    """The API and a worker per worker host on `side`'s Redis, an API key for the client; all
    of it stopped and its jail state removed afterwards."""
    environ = dict(os.environ)
    environ.update(
        {
            "CELLBLOCK_REDIS_URL": side.url,
            "CELLBLOCK_HOST": hosts.address["api"],
            "CELLBLOCK_PORT": str(API_PORT),
            "CELLBLOCK_AUTH": "required",
            "CELLBLOCK_MAINTENANCE_INTERVAL": "2",
            "CELLBLOCK_JOB_GRACE": "1",
            # A cut-off worker keeps retrying past the cut (its end depends on how soon the job
            # finished elsewhere: 15-20 s here), rather than quit on the default 30 s.
            "CELLBLOCK_REDIS_RETRY": "90",
            "CELLBLOCK_LOG_FORMAT": "json",
            "PYTHONPATH": str(ROOT),
            **env,
        }
    )
    stack = BedStack(API_PORT, environ, side.url, where, address=hosts.address["api"], hosts=hosts)
    try:
        keys = subprocess.run([sys.executable, "-m", "cli", "keys", "create", "--name", "bed", "--json"], cwd=ROOT,
                              env={**environ, "CELLBLOCK_REDIS_URL": side.local}, capture_output=True, text=True,
                              timeout=60, check=True)  # fmt: skip
        stack.token = json.loads(keys.stdout)["token"]
        hosts.group("api")  # its "machine", so that the API host can die whole
        stack.start_api()
        for host in WORKERS:
            hosts.group(host)
            stack.start_host(host)
        stack.wait_healthy(len(WORKERS))
        yield stack
    finally:
        with ExitStack() as undo:  # each runs, whatever the others do
            for host in WORKERS:
                undo.callback(remove_jail_state, stack, host)
            undo.callback(stack.stop)


@contextmanager
def tls_bed(where: Path) -> Iterator[tuple[Hosts, BedStack, redis.Redis]]:
    """The hosts, the stack on a TLS Redis, and the test's own client of that Redis."""
    with Hosts("redis", "api", *WORKERS) as hosts:
        side = tls_redis(hosts, where)
        with bed(hosts, where, side) as stack, side.client() as r:
            yield hosts, stack, r


@dataclass
class Load:
    """Submissions posted at `rate` a second from the client host while it runs, each printing
    its own token. `accepted`: id -> token of each POST answered 201 (and of any submission the
    test found stored without its answer: None); `answers`: (time sent, status or the exception's
    name) of every POST."""

    stack: BedStack
    rate: float = RATE
    accepted: dict[str, str | None] = field(default_factory=dict)  # None: its output unknown to the test
    answers: list[tuple[float, int | str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=60)

    def _run(self) -> None:
        i = 0
        start = time.monotonic()
        while not self._stop.is_set():
            i += 1
            self._post(f"load-{i}")
            self._stop.wait(max(0.0, start + i / self.rate - time.monotonic()))

    def burst(self, n: int = BURST) -> None:
        """`n` more at once, so that the fault finds a queue."""
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(self._post, [f"burst-{i}" for i in range(n)]))

    def accepted_again(self, since: float, within: float = 60) -> float:
        """Seconds from `since` to the first 201 after it, asking every 0.1 s (beside the load)."""
        deadline = time.monotonic() + within
        i = 0
        while not any(t > since and a == 201 for t, a in self.answers):
            assert time.monotonic() < deadline, f"no 201 within {within}s: {self.answers[-5:]}\n{self.stack.logs()}"
            i += 1
            self._post(f"probe-{i}")
            time.sleep(0.1)
        return min(t for t, a in self.answers if t > since and a == 201) - since

    def _post(self, token: str) -> None:
        body = {"language": "python3", "source": PROGRAM.format(nap=NAP_S, token=token), "limits": LIMITS}
        sent = time.monotonic()  # an answer counts at the time its request was sent
        try:
            resp = self.stack.request("POST", "/v1/submissions", body, timeout=15)
        except OSError as exc:
            self.answers.append((sent, type(exc).__name__))
            return
        self.answers.append((sent, resp.status))
        if resp.status == 201:
            self.accepted[resp.body["id"]] = token
        else:
            assert resp.status == 503 and "retry-after" in resp.headers, (resp.status, resp.body)

    def refusals(self) -> list[tuple[float, int | str]]:
        return [(t, a) for t, a in self.answers if a != 201]


@dataclass
class Outcome:
    finished: int
    lost: list[str]  # accepted, and never finished (or finished with another's output)
    duplicated: list[str]  # more than one `finished` event
    outputs: dict[str, str]  # id -> stdout of each finished one


def settle(load: Load, r: redis.Redis, timeout: float = 120) -> Outcome:
    """Wait for every accepted submission to finish; which were lost, which finished twice."""
    stack = load.stack
    deadline = time.monotonic() + timeout
    waiting = dict(load.accepted)
    views: dict[str, dict[str, Any]] = {}
    while waiting and time.monotonic() < deadline:
        states = [r.hget(KEYS.submission(sid), "state") for sid in waiting]
        for sid, state in zip(list(waiting), states, strict=True):
            if state == b"finished":
                views[sid] = stack.request("GET", f"/v1/submissions/{sid}").body
                del waiting[sid]
        time.sleep(0.2)
    lost = sorted(waiting)
    lost += [sid for sid, view in views.items() if load.accepted[sid] not in (None, view["stdout"].removesuffix("\n"))]
    duplicated = []
    for sid in views:
        events = r.xrange(KEYS.events(sid))
        if sum(1 for _, fields in events if fields[b"event"] == b"finished") != 1:
            duplicated.append(sid)
    return Outcome(len(views), lost, duplicated, {sid: view["stdout"] for sid, view in views.items()})


def unfinished(r: redis.Redis, sids: list[str]) -> int:
    with r.pipeline(transaction=False) as pipe:
        for sid in sids:
            pipe.hget(KEYS.submission(sid), "state")
        return sum(1 for state in pipe.execute() if state != b"finished")


def busy_on(r: redis.Redis, stack: BedStack, worker: subprocess.Popen[bytes], fresh: float = 0.3) -> str:
    """The id of a job `worker` started less than `fresh` seconds ago (so that it still runs)."""
    queue = stack.env.get("CELLBLOCK_QUEUE", "cellblock")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for w in Worker.all(connection=r):
            if w.pid != worker.pid or queue not in w.queue_names():
                continue
            job = w.get_current_job()
            if job is not None and job.started_at is not None:
                age = time.time() - job.started_at.timestamp()
                if age < fresh:
                    return str(job.id)
        time.sleep(0.02)
    raise AssertionError(f"worker {worker.pid} started no job in 30 s:\n{stack.logs()}")


def stored_ids(r: redis.Redis) -> set[str]:
    """The ids of every submission in Redis."""
    keys = (k.decode() for k in r.scan_iter(KEYS.submission("*")))
    return {k.removeprefix(KEYS.submission("")) for k in keys if ":" not in k.removeprefix(KEYS.submission(""))}


def w1_busy(r: redis.Redis, stack: BedStack, load: Load) -> tuple[str, int]:
    """After a while of load and a burst: a job w1 has just started, and how many are in flight."""
    time.sleep(3)
    load.burst()
    victim = busy_on(r, stack, stack.workers[0])
    return victim, unfinished(r, list(load.accepted))


def logged(stack: BedStack, host: str, since: float, sid: str, text: str) -> bool:
    """Whether `host` logged `text` about submission `sid` after `since` (wall clock)."""
    return any(e["ts"] > since and e.get("submission") == sid and text in e["msg"] for e in stack.log_of(host))


def late_result_dropped(stack: BedStack, victim: str, since: float) -> str | None:
    """How w1's late attempt at `victim` ended without writing, once it has: its store.finish
    found the submission finished; or its job's timeout interrupted that wait, RQ retried the
    job, and the retry, on whichever host took it, found it finished (worker/jobs.py)."""
    if logged(stack, "w1", since, victim, LATE_FINISH):
        return "w1's late store.finish"
    if any(logged(stack, host, since, victim, LATE_RETRY) for host in WORKERS):
        return "the late attempt's retry"
    return None


def took_a_job(stack: BedStack, host: str, since: float, other_than: str) -> bool:
    return any(e["ts"] > since and e["msg"].startswith("started (") and e.get("submission") != other_than
               for e in stack.log_of(host))  # fmt: skip


def report(fault: str, in_flight: int, recovered_s: float, outcome: Outcome, note: str = "") -> None:
    FIGURES.append(
        f"{fault}: in flight {in_flight}, recovered in {recovered_s:.1f} s, finished {outcome.finished}, "
        f"lost {len(outcome.lost)}, duplicated {len(outcome.duplicated)}" + (f"; {note}" if note else "")
    )
    print(FIGURES[-1])


def test_a_worker_host_dies_mid_job(tmp_path: Path) -> None:
    with tls_bed(tmp_path) as (hosts, stack, r):
        with Load(stack) as load:
            victim, in_flight = w1_busy(r, stack, load)
            t0 = time.monotonic()
            hosts.kill("w1")  # the worker, its jail's builder and the run: every process of the host
            view = stack.wait_state(victim, timeout=60)
            recovered = time.monotonic() - t0
            time.sleep(3)  # the load goes on, on w2 alone
        outcome = settle(load, r)
    report("worker host SIGKILLed mid-job", in_flight, recovered, outcome,
           "recovered = its job finished on the other host")  # fmt: skip
    assert view["verdict"] == "accepted" and view["attempts"] == 2, view
    assert not outcome.lost and not outcome.duplicated, outcome
    assert not load.refusals(), load.refusals()


def test_a_worker_host_cut_off_past_the_job_timeout(tmp_path: Path) -> None:
    """Its job runs again elsewhere; when the host is back, its late result is dropped (the
    first result wins, core/store.py) and the host takes jobs again."""
    with tls_bed(tmp_path) as (hosts, stack, r):
        with Load(stack) as load:
            victim, in_flight = w1_busy(r, stack, load)
            t0 = time.monotonic()
            hosts.cut("w1")
            view = stack.wait_state(victim, timeout=60)
            recovered = time.monotonic() - t0
            time.sleep(2)
            mended = time.time()
            hosts.mend("w1")
            cut_for = time.monotonic() - t0

            how = wait_until(lambda: late_result_dropped(stack, victim, mended), 90,
                             f"w1 to come back to its late attempt\n{stack.logs()}")  # fmt: skip
            wait_until(lambda: took_a_job(stack, "w1", mended, other_than=victim), 60, "w1 to take jobs again")
        again = stack.request("GET", f"/v1/submissions/{victim}").body
        outcome = settle(load, r)
    report("worker host cut off from Redis", in_flight, recovered, outcome,
           f"cut for {cut_for:.1f} s (job timeout 4 s); its late result dropped by {how}")  # fmt: skip
    assert view["attempts"] == 2 and view["stdout"] == load.accepted[victim] + "\n", view
    assert again == view, (again, view)  # the late result changed nothing
    assert not outcome.lost and not outcome.duplicated, outcome


def test_the_redis_primary_dies_and_sentinel_promotes_a_replica(tmp_path: Path) -> None:
    """With CELLBLOCK_REDIS_REPLICAS=1 every accepted submission is on a replica before the API
    answers 201, so the promoted replica has it: nothing accepted is lost. The API answers 503
    with Retry-After while there is no primary, and recovers by itself."""
    with Hosts("redis", "api", *WORKERS) as hosts:
        side = watched_redis(hosts, tmp_path)
        with bed(hosts, tmp_path, side, CELLBLOCK_REDIS_REPLICAS="1") as stack:
            api = stack.api
            with Load(stack) as load:
                time.sleep(3)
                load.burst()
                with side.client() as r:
                    in_flight = unfinished(r, list(load.accepted))
                t0 = time.monotonic()
                side.procs[0].send_signal(signal.SIGKILL)
                side.procs[0].wait(timeout=10)
                wait_until(lambda: hosts.call(side.primary_port) not in (0, REDIS_PORT), 60, "a promotion")
                promoted = time.monotonic() - t0
                accepting = load.accepted_again(t0)
                time.sleep(3)
            with redis.Redis.from_url(side.nodes[hosts.call(side.primary_port)]) as r:
                outcome = settle(load, r)
            assert stack.api is api and api is not None and api.poll() is None  # never restarted
    refused = [t - t0 for t, a in load.refusals()]
    report("Redis primary SIGKILLed, Sentinel failover", in_flight, accepting, outcome,
           f"recovered = a POST accepted again; promoted after {promoted:.1f} s; {len(refused)} POSTs "
           f"refused with 503 + Retry-After, the last {max(refused, default=0):.1f} s after the kill")  # fmt: skip
    assert not outcome.lost and not outcome.duplicated, outcome
    assert all(a == 503 for _, a in load.refusals()), load.refusals()  # never a 5xx but 503, no dropped connection
    assert accepting < promoted + 5, (accepting, promoted)  # 503s only while there is no primary to write to


def test_the_api_host_restarts_while_clients_wait(tmp_path: Path) -> None:
    """Clients waiting on POST `wait` lose their connection; the submissions they sent are not
    lost: they finish, once, and the restarted API serves them."""
    with tls_bed(tmp_path) as (hosts, stack, r):
        with Load(stack) as load:
            # Programs that run past the API's end, so that their clients are still waiting.
            slow = {"language": "python3", "source": PROGRAM.format(nap=4, token="waited"),
                    "limits": {"wall_time": 6}, "wait": 30}  # fmt: skip
            waiting: list[Future[Response]] = [
                hosts.submit(stack.request, "POST", "/v1/submissions", slow) for _ in range(4)
            ]
            time.sleep(2)
            load.burst()
            in_flight = unfinished(r, list(load.accepted)) + sum(1 for w in waiting if not w.done())
            t0 = time.monotonic()
            hosts.kill("api")
            assert stack.api is not None and stack.api.wait(timeout=10) == -signal.SIGKILL
            stored = stored_ids(r)  # the API is gone: nothing more is stored until it is back
            stack.start_api()
            recovered = load.accepted_again(t0)
            time.sleep(2)
        answered = [w.result() for w in waiting if w.exception() is None]
        # Every submission stored before the API died counts, whether its client heard or not.
        load.accepted.update({sid: None for sid in stored if sid not in load.accepted})  # outputs: checked below
        outcome = settle(load, r)
    report("API host SIGKILLed and restarted", in_flight, recovered, outcome,
           "recovered = a POST accepted again; "
           f"{4 - len(answered)} of 4 clients waiting on `wait` lost their connection, and their "
           "submissions finished all the same")  # fmt: skip
    assert all(resp.status == 200 and resp.body["stdout"] == "waited\n" for resp in answered), answered
    unheard = [sid for sid in stored if sid not in load.accepted or load.accepted[sid] is None]
    assert sum(1 for sid in unheard if outcome.outputs.get(sid) == "waited\n") == 4 - len(answered), outcome
    assert not outcome.lost and not outcome.duplicated, outcome
