"""cgroup v1 and v2 behind one interface.

Each version runs for real where it exists (tests/cgroup_layout.py): v1 on the hybrid
host, v2 with its controllers in the pure v2 VM (tests/vm), and the v2 core files that
work without controllers (cgroup.procs, cgroup.kill, cpu.stat) on either. A fake
cgroupfs tree adds what neither kernel shows: no memory.peak, no resettable peak.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jail import Jail, JailError, Limits, MiB, RunSpec, Status, init_binary
from jail.cgroup import (
    CFS_PERIOD_US,
    instance,
    make_run_group,
    open_backend,
    read_keyed,
    retire,
    run_name,
    slot_of,
)
from jail.cgroup_v1 import CONTROLLERS, CgroupV1, CgroupV1Run, v1_mounts
from jail.cgroup_v2 import CgroupV2, CgroupV2Run, is_cgroup2
from jail.config import JailConfig
from jail.errors import ChildSetupError, Step
from jail.forkserver import ForkServer
from jail.record import replace
from jail.sandbox import check_exec, launch_by_spawn
from tests.cgroup_layout import (
    BACKEND,
    CGROUP2,
    HAS_V1,
    HAS_V2,
    in_cgroup,
    needs_bare_cgroup2,
    needs_cgroup2,
    needs_v1,
    needs_v2,
)

if TYPE_CHECKING:
    from jail.cgroup import RunCgroup
    from jail.sandbox import Launcher

FILES_V2 = (
    "cgroup.procs",
    "cgroup.kill",
    "memory.max",
    "memory.swap.max",
    "pids.max",
    "cpu.max",
    "memory.peak",
    "memory.events",
    "cpu.stat",
)


def test_this_host_picks_the_version_it_can_and_explains_the_other() -> None:
    config = JailConfig.from_env()
    assert open_backend(config).version == BACKEND
    if not HAS_V2:
        with pytest.raises(JailError, match=r"not a cgroup2 mount|offers no memory, pids, cpu controller"):
            open_backend(replace(config, cgroup_version="2"))
    if not HAS_V1:
        with pytest.raises(JailError, match="controllers memory, pids, cpu, cpuacct are not mounted as v1"):
            open_backend(replace(config, cgroup_version="1"))


@needs_bare_cgroup2
def test_v2_on_a_mount_without_controllers_is_refused_with_the_reason() -> None:
    assert CGROUP2 is not None and is_cgroup2(CGROUP2)
    with pytest.raises(JailError, match="offers no memory, pids, cpu controller"):
        CgroupV2.open(CGROUP2, "cellblock-test")


@needs_v1
def test_v1_run_cgroup_limits_and_accounting() -> None:
    backend = open_backend(replace(JailConfig.from_env(), cgroup_version="1"))
    assert isinstance(backend, CgroupV1)
    cg = backend.create("run-0-999-0")
    try:
        cg.set_limits(Limits(memory=64 * MiB, pids=7, cpus=0.5))
        assert Path(cg.memory, "memory.limit_in_bytes").read_text().strip() == str(64 * MiB)
        assert Path(cg.pids, "pids.max").read_text().strip() == "7"
        assert Path(cg.cpu, "cpu.cfs_quota_us").read_text().strip() == "50000"
        # Written by no run: a new group inherits swappiness and has the default period.
        assert Path(cg.memory, "memory.swappiness").read_text().strip() == "0"
        assert Path(cg.cpu, "cpu.cfs_period_us").read_text().strip() == str(CFS_PERIOD_US)
        spin_capped_at_half_a_cpu(cg)
    finally:
        cg.remove()
    assert not os.path.exists(cg.memory)


@needs_v2
def test_v2_run_cgroup_limits_and_accounting() -> None:
    backend = open_backend(replace(JailConfig.from_env(), cgroup_version="2"))
    assert isinstance(backend, CgroupV2)
    cg = backend.create("run-0-998-0")
    try:
        cg.set_limits(Limits(memory=64 * MiB, pids=7, cpus=0.5))
        assert Path(cg.path, "memory.max").read_text().strip() == str(64 * MiB)
        if cg.swap:
            assert Path(cg.path, "memory.swap.max").read_text().strip() == "0"
        assert Path(cg.path, "pids.max").read_text().strip() == "7"
        assert Path(cg.path, "cpu.max").read_text().split() == ["50000", "100000"]
        spin_capped_at_half_a_cpu(cg)
        assert cg.peak_memory() < 64 * MiB
    finally:
        cg.remove()
    assert not os.path.exists(cg.path)


@needs_v2
def test_v2_peak_memory_restarts_at_reset_where_the_kernel_can(programs: dict[str, bytes], tmp_path: Path) -> None:
    """Linux 6.12+ resets memory.peak per fd: what the run's setup used is not the program's.
    Older kernels keep the group's all-time peak (documented in docs/jail.md)."""
    touch = tmp_path / "touch"
    touch.write_bytes(programs["touch"])
    touch.chmod(0o755)
    backend = open_backend(replace(JailConfig.from_env(), cgroup_version="2"))
    cg = backend.create("run-0-997-0")
    try:
        cg.set_limits(Limits(memory=256 * MiB, pids=8, cpus=1))
        first = subprocess.Popen(in_cgroup(cg.path, [str(touch), "80"]))
        assert first.wait(timeout=60) == 0
        assert cg.peak_memory() >= 80 * MiB
        cg.reset_peak()
        second = subprocess.Popen(in_cgroup(cg.path, [str(touch), "20"]))
        assert second.wait(timeout=60) == 0
        if kernel_at_least(6, 12):
            assert 20 * MiB <= cg.peak_memory() < 40 * MiB
        else:
            assert cg.peak_memory() >= 80 * MiB
    finally:
        cg.remove()


def kernel_at_least(major: int, minor: int) -> bool:
    return tuple(int(x) for x in os.uname().release.split(".")[:2]) >= (major, minor)


def spin_capped_at_half_a_cpu(cg: RunCgroup) -> None:
    """A shell loop spins in `cg` (capped at 0.5 CPU) until it used 0.2 s; the cap held, no
    memory event was counted; cgroup.kill ends it."""
    proc = spawn_in(cg, "while :; do :; done")
    try:
        joined = time.monotonic()
        cg.reset_peak()
        used, elapsed = spin_until(cg, 0.2, joined)  # uncapped, that would take 0.2 s
        assert used <= 0.5 * elapsed + 0.05  # the 0.5 CPU cap held, however busy the host
        assert cg.memory_exhausted() == (False, False)
    finally:
        cg.kill()
        try:
            assert proc.wait(timeout=5) == -signal.SIGKILL
        finally:
            proc.kill()  # if it never got into the cgroup: no spinner outlives the test
            proc.wait()


def spawn_in(cg: RunCgroup, command: str) -> subprocess.Popen[bytes]:
    """The shell `command`, in a shell that first moves itself into `cg`: on v1 by the run's
    own `tasks` fds, as the container's init does; on v2 by writing 0 to cgroup.procs."""
    fds = cg.join_fds()
    try:
        if fds:
            enter = "".join(f"echo 0 >&{fd} && " for fd in fds)
        else:
            assert isinstance(cg, CgroupV2Run)
            enter = f"echo 0 > {cg.path}/cgroup.procs && "
        # bash: dash takes only one-digit fds after >&
        return subprocess.Popen(["/bin/bash", "-c", f"{enter}exec /bin/sh -c '{command}'"], pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)


def spin_until(cg: RunCgroup, seconds: float, since: float) -> tuple[float, float]:
    """Wait (at most 30 s: the host may be busy) until the spinner that joined `cg` at `since`
    has used `seconds` of CPU there: (CPU used, wall time since it joined). Fails if it never
    does: accounting is broken."""
    while (used := cg.cpu_usage()) < seconds:
        assert time.monotonic() - since < 30, f"{used} s of CPU in 30 s: the cgroup does not account"
        time.sleep(0.01)
    return used, time.monotonic() - since


def test_slot_names_round_trip() -> None:
    assert slot_of("run-123-7-42") == 7
    assert slot_of("supervisor") is None
    assert slot_of("run-x") is None


def test_a_slots_group_left_by_its_last_run_is_taken_down_when_the_slot_makes_it_again() -> None:
    """A slot's run cgroup has one name run after run (run_name); if its last run's removal
    failed (a process of the run still in it), making it again kills that process and
    starts an empty group, rather than failing the slot for good."""
    backend = open_backend(JailConfig.from_env())
    name = run_name(997, instance())
    assert run_name(997, 0) == run_name(997, 0) != run_name(997, 1)
    left = backend.create(name)
    proc = spawn_in(left, "sleep 60")
    procs = f"{left.pids if isinstance(left, CgroupV1Run) else left.path}/cgroup.procs"
    try:
        while not Path(procs).read_text().split():  # the shell has moved itself in
            assert proc.poll() is None
            time.sleep(0.01)
        with pytest.raises(JailError, match="may still be alive"):
            left.remove()
        cg = backend.create(name)
        try:
            assert proc.wait(timeout=10) == -signal.SIGKILL
            assert Path(procs).read_text() == ""
        finally:
            cg.remove()
    finally:
        proc.kill()
        proc.wait()
    assert not os.path.exists(procs)


def test_a_group_that_cannot_be_taken_down_costs_its_slot_one_wait() -> None:
    """A leftover whose process outlives SIGKILL (uninterruptible sleep: not something a test
    can make on demand, so take_down fails here as it would then): the run gets a name of its
    own, and the slot's next runs try the leftover's removal again without waiting."""
    existing = {"run-1-2-0"}
    waits: list[float] = []
    stuck = True

    def make(name: str) -> None:
        if name in existing:
            raise FileExistsError(name)
        existing.add(name)

    def take_down(name: str, wait: float) -> None:
        waits.append(wait)
        if stuck:
            raise JailError("rmdir failed: Device or resource busy")
        existing.discard(name)

    first = make_run_group("run-1-2-0", make, take_down)
    second = make_run_group("run-1-2-0", make, take_down)
    assert first != second and all(n.startswith("run-1-2-0x") and slot_of(n) == 2 for n in (first, second))
    assert waits == [5.0, 0.0]
    stuck = False  # its process ended at last: the slot has its own name again
    assert make_run_group("run-1-2-0", make, take_down) == "run-1-2-0"
    assert waits == [5.0, 0.0, 0.0]
    # Left behind once more, later: a leftover like any other, waited for again.
    assert make_run_group("run-1-2-0", make, take_down) == "run-1-2-0"
    assert waits == [5.0, 0.0, 0.0, 5.0]


@pytest.fixture
def fake_v2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cgroupfs look-alike: mkdir makes the interface files a real cgroup2 dir would have."""
    root = tmp_path / "cgroup"
    root.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        for name in FILES_V2:
            Path(path, name).write_text("")
        Path(path, "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n")
        Path(path, "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        Path(path, "memory.peak").write_text("12345678\n")

    real_rmdir = os.rmdir

    def rmdir(path: str) -> None:
        if str(path).startswith(str(root)):  # the kernel's cgroup dirs vanish with their files
            for f in Path(path).iterdir():
                f.unlink()
        real_rmdir(path)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "rmdir", rmdir)
    return root


def test_v2_run_writes_the_v2_files(fake_v2: Path) -> None:
    backend = CgroupV2(str(fake_v2))
    cg = backend.create("run-1-3-0")
    cg.set_limits(Limits(memory=100 * MiB, pids=16, cpus=1.5))
    d = fake_v2 / "run-1-3-0"
    assert (d / "memory.max").read_text() == str(100 * MiB)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "16"
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert cg.join_fds() == []  # v2: the init is born in the group (clone_fd)
    assert cg.cpu_usage() == 1.5
    assert cg.peak_memory() == 12345678
    assert cg.memory_exhausted() == (True, True)
    cg.reset_peak()  # counters seen before the program started are not its own
    assert cg.memory_exhausted() == (False, False)
    cg.kill()
    assert (d / "cgroup.kill").read_text() == "1"


def test_v2_close_releases_the_peak_fd_opened_in_this_process(fake_v2: Path) -> None:
    """The worker resets memory.peak through an fd of its own; releasing its copy of the run
    (without removing the cgroup: the builder does that) must close it."""
    cg = CgroupV2(str(fake_v2)).create("run-1-4-0")
    cg.reset_peak()
    fd = cg.peak_fd
    assert fd >= 0 and os.path.exists(f"/proc/self/fd/{fd}")
    cg.close()
    assert cg.peak_fd == -1 and not os.path.exists(f"/proc/self/fd/{fd}")
    assert (fake_v2 / "run-1-4-0").is_dir()  # close is not remove


def test_v2_sweep_removes_only_the_slots_leftovers(fake_v2: Path) -> None:
    """Slot 4's runs made by a process that is gone or by a closed Host of this one go; another
    slot's stay, and so do slot 4's runs of a live process or of a live Host of this one (a
    jail with another state dir shares the parent)."""
    gone = subprocess.Popen(["/bin/true"])
    gone.wait()
    alive = os.getppid()
    ours_live, ours_closed = instance(), instance()  # two Hosts of this process; one closed
    retire(ours_closed)
    backend = CgroupV2(str(fake_v2))
    for name in (
        f"run-{gone.pid}-4-0",
        f"run-{os.getpid()}-4-{ours_closed}",
        f"run-{os.getpid()}-4-{ours_live}",
        f"run-{alive}-4-2",
        f"run-{gone.pid}-5-0",
    ):
        backend.create(name)
    os.mkdir(fake_v2 / "supervisor")
    assert backend.leftover_slots() == {4, 5}
    backend.sweep(4)
    assert sorted(p.name for p in fake_v2.iterdir()) == sorted(
        [f"run-{os.getpid()}-4-{ours_live}", f"run-{alive}-4-2", f"run-{gone.pid}-5-0", "supervisor"]
    )
    assert backend.leftover_slots() == {5}
    retire(ours_live)


@needs_cgroup2
def test_v2_core_files_for_real_on_the_cgroup2_mount() -> None:
    """cgroup.procs, cpu.stat and cgroup.kill work with or without controllers: for real."""
    path = f"{CGROUP2}/cellblock-test-{os.getpid()}"
    os.mkdir(path)
    cg = CgroupV2Run(path)
    try:
        proc = spawn_in(cg, "while :; do :; done")
        joined = time.monotonic()
        used, elapsed = spin_until(cg, 0.1, joined)
        assert used <= elapsed + 0.05  # one spinning process: one CPU at most
        cg.kill()
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert read_keyed(f"{path}/cgroup.events")["populated"] == 0
    finally:
        cg.remove()
    assert not os.path.exists(path)


@pytest.fixture(params=["spawned launcher", "fork server"])
def launch(request: pytest.FixtureRequest) -> Iterator[Launcher]:
    """Each way an init is launched: a posix_spawn'd launcher per container (warm=0, the
    command line), the builder's fork server."""
    init = init_binary.executable(JailConfig.from_env().state_dir)
    if request.param == "spawned launcher":
        yield partial(launch_by_spawn, init)
        return
    server = ForkServer(init)
    try:
        yield server.launch
    finally:
        server.close()


def start_bare_init(launch: Launcher, entry: list[int], ours: list[int]) -> tuple[int, int, int]:
    """A container init that waits for its plan, launched with `entry` (the cgroup directory fd
    or -1, then any `tasks` fds; closed here): (its pid, our end of its sync pipe, our end of
    its report pipe). Our ends of its pipes go into `ours`, for the caller to close."""
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    ours += [sync_w, report_r, status_r]
    try:
        pid = launch([null] * 3, [sync_r, report_w, status_w, *entry], report_r).pid()
    finally:
        for fd in (null, sync_r, report_w, status_w, *(fd for fd in entry if fd >= 0)):
            os.close(fd)
    return pid, sync_w, report_r


def launches_an_init(launch: Launcher) -> None:
    """`launch` starts an init (no cgroup), our child, which waits for its plan and exits 126
    when we give up on it."""
    ours: list[int] = []
    try:
        pid, sync_w, _ = start_bare_init(launch, [-1], ours)
        ours.remove(sync_w)
        os.close(sync_w)
        assert exit_code(pid) == 126
    finally:
        for fd in ours:
            os.close(fd)


def exit_code(pid: int) -> int:
    """The exit code of our child `pid` once it ends (it must exit, not die of a signal)."""
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"wait status {status}"
    return os.WEXITSTATUS(status)


@needs_cgroup2
def test_init_is_cloned_straight_into_a_v2_cgroup(launch: Launcher) -> None:
    """The launcher's clone3(CLONE_INTO_CGROUP), for real: the init is born in the run's v2
    cgroup (CgroupV2Run.clone_fd), our child (CLONE_PARENT), and exits 126 when the parent
    gives up on it before sending the plan."""
    path = f"{CGROUP2}/cellblock-test-{os.getpid()}"
    os.mkdir(path)
    cg = CgroupV2Run(path)
    ours: list[int] = []
    try:
        pid, sync_w, _ = start_bare_init(launch, [cg.clone_fd()], ours)
        assert Path(f"{path}/cgroup.procs").read_text().split() == [str(pid)]
        ours.remove(sync_w)
        os.close(sync_w)  # the init reads EOF instead of "G"
        assert exit_code(pid) == 126  # our child, though the launcher cloned it
    finally:
        for fd in ours:
            os.close(fd)
        cg.close()
        cg.remove()
    assert not os.path.exists(path)


def test_a_clone_that_fails_is_reported_and_the_next_launch_works(launch: Launcher, tmp_path: Path) -> None:
    """clone3(CLONE_INTO_CGROUP) on a directory that is no cgroup2 group fails: the launcher
    (or the fork server, which goes on serving) reports the step and the errno."""
    ours: list[int] = []
    try:
        with pytest.raises(ChildSetupError, match="flags=") as failed:
            start_bare_init(launch, [os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)], ours)
        assert failed.value.step is Step.CLONE3 and failed.value.errno == errno.EBADF
    finally:
        for fd in ours:
            os.close(fd)
    launches_an_init(launch)


def test_the_fork_server_ends_with_its_socket() -> None:
    server = ForkServer(init_binary.executable(JailConfig.from_env().state_dir))
    launches_an_init(server.launch)
    serving = server._pid
    assert serving is not None
    argv = Path(f"/proc/{serving}/cmdline").read_bytes().split(b"\0")
    assert argv[:2] == [b"cellblock-init", b"serve"]
    server.close()
    assert not os.path.exists(f"/proc/{serving}")  # gone and reaped: no zombie


def test_the_fork_server_refuses_what_is_not_a_launch_and_goes_on() -> None:
    server = ForkServer(init_binary.executable(JailConfig.from_env().state_dir))
    try:
        assert server._sock is not None
        server._sock.send(b"not a launch")  # no fds, another size
        assert server._sock.recv(4) == b"\0\0\0\0"  # 0: refused, nothing reported
        launches_an_init(server.launch)
    finally:
        server.close()


def test_the_fork_server_takes_one_launch_at_a_time() -> None:
    """The builder does other work while the server clones an init, but sends the next launch
    only once it read this one's answer: a launch before that is refused, and the one in
    flight still answers with its init."""
    server = ForkServer(init_binary.executable(JailConfig.from_env().state_dir))
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        launched = server.launch([null] * 3, [sync_r, report_w, status_w, -1], report_r)
        with pytest.raises(JailError, match="not answered yet"):
            server.launch([null] * 3, [sync_r, report_w, status_w, -1], report_r)
        pid = launched.pid()
        with pytest.raises(JailError, match="answered already"):
            launched.pid()
        os.close(sync_w)  # the init reads EOF instead of "G"
        sync_w = -1
        assert exit_code(pid) == 126
        launches_an_init(server.launch)
    finally:
        for fd in (null, sync_r, sync_w, report_r, report_w, status_r, status_w):
            if fd >= 0:
                os.close(fd)
        server.close()


def test_a_killed_fork_server_is_replaced_at_the_next_launch() -> None:
    server = ForkServer(init_binary.executable(JailConfig.from_env().state_dir))
    first = server._pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    os.waitid(os.P_PID, first, os.WEXITED | os.WNOWAIT)  # dead (its socket closed), not yet reaped
    try:
        launches_an_init(server.launch)
        assert server._pid != first and not os.path.exists(f"/proc/{first}")  # reaped
    finally:
        server.close()


@needs_v1
def test_init_moves_itself_into_its_v1_cgroups_and_the_builder_stays(launch: Launcher) -> None:
    """On v1 the init moves itself into the run's group of every hierarchy once its "G" came
    (writing 0 to the `tasks` fds of CgroupV1Run.join_fds); the process that started it stays
    where it was. A `tasks` fd it cannot write is a setup failure that names the step."""
    backend = open_backend(replace(JailConfig.from_env(), cgroup_version="1"))
    assert isinstance(backend, CgroupV1)
    name = f"run-0-997-{os.getpid()}"
    cg = backend.create(name)
    ours: list[int] = []
    before = Path("/proc/self/cgroup").read_text()
    try:
        fds = cg.join_fds()
        assert len(fds) == len({cg.memory, cg.pids, cg.cpu, cg.cpuacct})
        pid, sync_w, _ = start_bare_init(launch, [-1, *fds], ours)
        time.sleep(0.05)
        assert all(Path(f"{d}/cgroup.procs").read_text() == "" for d in {cg.memory, cg.pids, cg.cpu})
        os.write(sync_w, b"G")  # the plan's first byte: now the init joins, while we go on
        deadline = time.monotonic() + 10
        dirs = {cg.memory, cg.pids, cg.cpu, cg.cpuacct}
        while any(Path(f"{d}/cgroup.procs").read_text().split() != [str(pid)] for d in dirs):
            assert time.monotonic() < deadline, "the init did not join its v1 cgroups"
            time.sleep(0.001)
        assert Path("/proc/self/cgroup").read_text() == before
        ours.remove(sync_w)
        os.close(sync_w)  # the init reads EOF instead of the rest of the plan
        assert exit_code(pid) == 126
        # A tasks fd it cannot write (read-only): the init reports the step and exits.
        unwritable = os.open(f"{cg.memory}/tasks", os.O_RDONLY | os.O_CLOEXEC)
        pid, sync_w, report_r = start_bare_init(launch, [-1, unwritable], ours)
        os.write(sync_w, b"G")
        with pytest.raises(ChildSetupError, match="tasks file") as failed:
            check_exec(report_r, "")
        assert failed.value.step is Step.WRITE and failed.value.errno == errno.EBADF
        assert exit_code(pid) == 127
    finally:
        for fd in ours:
            os.close(fd)
        cg.kill()
        cg.remove()


@needs_v1
def test_an_init_that_cannot_join_its_v1_cgroups_fails_the_run_with_its_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever write reaches the init first after it died of it (the plan, or the job)
    reports the step; the jail goes on working."""

    def unwritable(run: CgroupV1Run) -> list[int]:
        return [os.open(f"{run.memory}/tasks", os.O_RDONLY | os.O_CLOEXEC)]

    jail = Jail(replace(JailConfig.from_env(), warm=0, cgroup_version="1"))
    try:
        monkeypatch.setattr(CgroupV1Run, "join_fds", unwritable)
        with pytest.raises(ChildSetupError, match="tasks file") as failed:
            jail.run(RunSpec(argv=["/bin/true"]))
        assert failed.value.step is Step.WRITE
        monkeypatch.undo()
        assert jail.run(RunSpec(argv=["/bin/true"])).status is Status.OK
    finally:
        jail.close()


@needs_v1
def test_v1_parent_is_a_group_below_each_hierarchys_root() -> None:
    """Never a hierarchy's root (our swappiness would be the host's), and an absolute name
    is under each hierarchy, as on v2, not a path on the host."""
    for root in ("", "/"):
        with pytest.raises(JailError, match="below each v1 hierarchy's root"):
            CgroupV1.open("/sys/fs/cgroup", root)
    backend = CgroupV1.open("/sys/fs/cgroup", "/cellblock-test-absolute")
    try:
        mounts = v1_mounts()
        assert backend.parents == {c: f"{mounts[c]}/cellblock-test-absolute" for c in CONTROLLERS}
        assert not os.path.exists("/cellblock-test-absolute")
    finally:
        for path in set(backend.parents.values()):
            os.rmdir(path)


def test_v1_mounts_with_co_mounted_controllers(tmp_path: Path) -> None:
    """Pure v1 hosts often co-mount cpu and cpuacct: both resolve to one hierarchy."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        "31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
        "32 25 0:28 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids\n"
        "33 25 0:29 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
    )
    mounts = v1_mounts(str(mountinfo))
    assert mounts["cpu"] == mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert mounts["memory"] == "/sys/fs/cgroup/memory" and mounts["pids"] == "/sys/fs/cgroup/pids"
    assert not is_cgroup2("/sys/fs/cgroup", str(mountinfo))
    assert is_cgroup2("/sys/fs/cgroup/unified", str(mountinfo))


def test_v2_without_a_resettable_or_any_memory_peak(fake_v2: Path) -> None:
    """Linux < 6.12 cannot reset memory.peak, < 5.19 has none: runs still work."""
    backend = CgroupV2(str(fake_v2))
    cg = backend.create("run-1-6-0")
    os.rename(fake_v2 / "run-1-6-0" / "memory.peak", fake_v2 / "run-1-6-0" / "peak.saved")
    cg.reset_peak()
    assert cg.peak_memory() == 0
    os.rename(fake_v2 / "run-1-6-0" / "peak.saved", fake_v2 / "run-1-6-0" / "memory.peak")
    assert cg.peak_memory() == 12345678
