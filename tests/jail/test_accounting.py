"""Accounting is exact enough to judge by: CPU time of every thread, peak memory, no leaks."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jail import ChildSetupError, Jail, JailError, Limits, MiB, RunSpec, Status, run, sandbox
from jail.cgroup import open_backend
from jail.cgroup_v1 import CgroupV1
from jail.config import JailConfig
from jail.errors import Step
from jail.record import replace
from jail.slots import SlotPool


def test_cpu_time_of_a_one_second_burn(run_program) -> None:
    r = run_program("burn", "1.0", cpu_time=3, wall_time=10)
    assert r.status is Status.OK
    assert 0.98 <= r.cpu_time <= 1.02


def test_cpu_and_wall_time_count_from_execve_however_late_the_parent_looks(run_program, monkeypatch) -> None:
    """The container reads the program's clocks at its execve: a parent that looks 0.3 s
    later (a worker under load) neither counts what the program ran meanwhile as the
    container's setup nor starts the wall clock late."""
    on_time = sandbox.check_exec

    def late(report_fd: int, command: str) -> tuple[float, float] | None:
        time.sleep(0.3)
        return on_time(report_fd, command)

    monkeypatch.setattr(sandbox, "check_exec", late)
    r = run_program("burn", "1.0", cpu_time=3, wall_time=10)
    assert r.status is Status.OK
    assert 0.98 <= r.cpu_time <= 1.02, r.cpu_time
    assert r.wall_time >= 0.99, r.wall_time  # no upper bound: the builder's next build may share the CPU


def report_pipe(*writes: bytes) -> int:
    """A report pipe's read end after the init's `writes` and its EOF."""
    r, w = os.pipe()
    for data in writes:
        os.write(w, data)
    os.close(w)
    return r


def test_the_report_pipe_gives_the_clocks_or_nothing_or_the_failed_step() -> None:
    now = time.monotonic()
    for writes, expected in (
        ((sandbox.STARTED.pack(0, 0, int((now - 1) * 1e9), 2_500_000),), (now - 1, 0.0025)),
        ((), None),  # the init gone before it could send them: the parent reads its own
        ((sandbox.STARTED.pack(0, 0, int((now + 60) * 1e9), 2_500_000),), None),  # a start not in the past
    ):
        fd = report_pipe(*writes)
        try:
            got = sandbox.check_exec(fd, "./prog")
        finally:
            os.close(fd)
        assert got == (pytest.approx(expected[0]), pytest.approx(expected[1])) if expected else got is None
    fd = report_pipe(sandbox.STARTED.pack(0, 0, int(now * 1e9), 1), b"x")
    try:
        with pytest.raises(JailError, match="malformed start"):
            sandbox.check_exec(fd, "./prog")
    finally:
        os.close(fd)
    fd = report_pipe(sandbox.REPORT.pack(Step.CHDIR.value, errno.ENOENT) + b"/box/nowhere" + bytes(4))
    try:
        with pytest.raises(ChildSetupError, match="chdir"):
            sandbox.check_exec(fd, "./prog")
    finally:
        os.close(fd)


def test_peak_memory_of_a_hundred_mib_touch(run_program) -> None:
    r = run_program("touch", "100", memory=256 * MiB)
    assert r.status is Status.OK
    assert 100 * MiB <= r.peak_memory <= 105 * MiB


OWN_UID_BASE = 250_000  # no other jail on the test hosts maps these (the default base is 200_000)


@pytest.fixture
def own_config(tmp_path: Path) -> JailConfig:
    """A deployment of the jail of this test's own: its state dir (slots, their locks and
    roots) and host uids are no one else's, so a jail that runs meanwhile on this host (a
    service under load, another test's workers) cannot take or hold any of its slots."""
    return replace(JailConfig.from_env(), state_dir=str(tmp_path / "jail"), uid_base=OWN_UID_BASE)


def leftovers(config: JailConfig, makers: set[int]) -> dict[str, list[str]]:
    """What the runs of a deployment of its own (`own_config`) could leave on the host: the run
    cgroups its processes `makers` made (the parent group is shared with every jail on the host),
    the mounts under its state dir, the processes with its uids."""
    slots = SlotPool(config.state_dir, config.slots, config.uid_base)
    backend = open_backend(config)  # where the run cgroups are, on either version
    parents = set(backend.parents.values()) if isinstance(backend, CgroupV1) else {backend.parent}
    cgroups = [
        f"{parent}/{n}"
        for parent in parents
        for n in os.listdir(parent)
        if n.split("-")[1:2] in ([str(m)] for m in makers)
    ]
    roots = {slots.root(slot) for slot in range(slots.count)}
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4] in roots]
    uids = {slots.host_uid(slot) for slot in range(slots.count)}
    procs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if uid in uids:
            procs.append(pid)
    return {"cgroups": cgroups, "mounts": mounts, "processes": procs}


def lockable(slots: SlotPool, slot: int) -> bool:
    """Whether nobody holds the slot's lock (a missing lock file: never used, so free)."""
    try:
        fd = os.open(f"{slots.state_dir}/slots/{slot}.lock", os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_thousand_runs_leave_nothing_and_do_not_grow_the_worker(own_config: JailConfig) -> None:
    fds_before = len(os.listdir("/proc/self/fd"))
    slots = SlotPool(own_config.state_dir, own_config.slots, own_config.uid_base)
    jail = Jail(own_config)
    makers = {os.getpid(), *([jail._builder._proc.pid] if jail._builder else [])}
    # A daemon that outlives its parent: it must die with the run all the same.
    spec = RunSpec(argv=["/bin/sh", "-c", "sleep 60 & echo $! > /box/pid; exec true"])
    for _ in range(50):
        jail.run(spec)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    names: set[str] = set()
    for i in range(1000):
        result = jail.run(spec)
        assert result.status is Status.OK
        if i % 10 == 0:  # the run cgroups there now: the containers built ahead
            names.update(os.path.basename(g) for g in leftovers(own_config, makers)["cgroups"])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 8 * 1024  # KiB
    # Nor do they grow the host's dcache: a slot's run cgroup has one name run after run, so
    # its mkdir reuses the dentry its last rmdir left. A name made afresh each run left one
    # negative dentry per hierarchy and run for good (docs/jail.md, "Stale state").
    assert 0 < len(names) <= own_config.slots
    jail.close()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    # Every slot is free again, and nothing of the runs is left.
    assert [slot for slot in range(slots.count) if not lockable(slots, slot)] == []
    assert leftovers(own_config, makers) == {"cgroups": [], "mounts": [], "processes": []}


def test_parallel_runs_share_nothing() -> None:
    results = {}

    def one(i: int) -> None:
        script = f"echo {i} > /box/mine; echo {i} > /tmp/mine; sleep 0.2; cat /box/mine /tmp/mine; ls /box; ls /tmp"
        results[i] = run(RunSpec(argv=["/bin/sh", "-c", script]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2 * (os.cpu_count() or 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, r in results.items():
        assert r.status is Status.OK, r
        assert r.stdout.decode().split() == [str(i), str(i), "mine", "mine"]
    assert len(results) == len(threads)


def test_a_killed_builder_takes_its_runs_with_it(own_config: JailConfig) -> None:
    """kill -9 of the builder mid-run ends the running program at once: the init's parent-death
    signal must survive the drop to the sandbox uid (a change of uid clears it). The job gets
    a sandbox error, never a verdict; the next run gets a new builder, and the next Host on
    the machine sweeps what the dead one left."""
    config = replace(own_config, warm=1)
    jail = Jail(config)
    assert jail._builder is not None
    makers = {jail._builder._proc.pid}
    outcome: list[object] = []

    def run_sleeper() -> None:
        try:
            outcome.append(jail.run(RunSpec(argv=["/bin/sleep", "60"], limits=Limits(cpu_time=1, wall_time=120))))
        except JailError as e:
            outcome.append(e)

    runner = threading.Thread(target=run_sleeper)
    runner.start()
    try:
        sleeper = None
        for _ in range(500):
            sleeper = next(
                (pid for pid in leftovers(config, makers)["processes"] if cmdline(pid) == b"/bin/sleep\x0060\x00"), None
            )
            if sleeper:
                break
            time.sleep(0.01)
        assert sleeper is not None, f"the program never started under a uid from {OWN_UID_BASE}"
        os.kill(jail._builder._proc.pid, signal.SIGKILL)
        runner.join(timeout=5)
        assert not runner.is_alive()
        for _ in range(500):  # dead at once; its /proc entry goes when its init's exit reaps it
            if zombie(sleeper):
                break
            time.sleep(0.01)
        assert zombie(sleeper), f"the program {sleeper} still runs after its builder was killed"
        assert len(outcome) == 1 and isinstance(outcome[0], JailError), outcome
        assert jail.run(RunSpec(argv=["/bin/echo", "again"])).stdout == b"again\n"  # on a new builder
        assert jail._builder is not None
        makers.add(jail._builder._proc.pid)
    finally:
        jail.close()
    Jail(replace(config, warm=0)).close()  # a new Host sweeps the slots whose owner died
    left = leftovers(config, makers)
    # The dead builder's inits are the host init's zombies now, its to reap: nothing runs.
    left["processes"] = [pid for pid in left["processes"] if not zombie(pid)]
    assert left == {"cgroups": [], "mounts": [], "processes": []}


def cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return b""


def zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or between open and read
        return True


def test_a_jail_with_another_state_dir_leaves_our_live_runs_alone(tmp_path: Path) -> None:
    """Two deployments on one host (another CELLBLOCK_JAIL_DIR) share the cgroup parent group, and
    their slot numbers overlap. The other one, starting, sweeps every slot of its own that no one
    holds (here: all of them, as after a crash): our container, built and waiting in the same
    slot number, is not its to take."""
    from jail import sandbox
    from jail.host import Host
    from jail.sandbox import Shape

    config = replace(JailConfig.from_env(), warm=0)
    other = tmp_path / "other"
    (other / "slots").mkdir(parents=True)
    for slot in range(config.slots):
        (other / "slots" / f"{slot}.lock").touch()
    spec = RunSpec(argv=["/bin/echo", "still mine"])
    sb = Host(config).build(Shape.of(spec))
    try:
        p = subprocess.run(
            [sys.executable, "-m", "jail", "run", "--", "/bin/true"],
            env={**os.environ, "CELLBLOCK_JAIL_DIR": str(other)},
            capture_output=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        started, setup_cpu = sandbox.start(sb, spec)
        result = sandbox.finish(sb, spec, started, setup_cpu)
    finally:
        sb.release()
    assert result.status is Status.OK and result.stdout == b"still mine\n"
