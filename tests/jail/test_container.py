"""The jail in an unprivileged container on a cgroup v2 node, with the least privileges the README
documents for the Kubernetes worker, through deploy/worker-in-container.sh.

No container runtime runs on these machines, so the test makes the container the way runc makes
one for a pod: its own cgroup below a pod group (the cgroup namespace rooted there), mount, pid,
uts and ipc namespaces, the cgroupfs mounted read-only, /proc masked (files bound over
/proc/kcore and the like, /proc/sys read-only) and a capability bounding set. Not reproduced:
the runtime's seccomp and AppArmor profiles (the README says why they must be Unconfined).
Runs in the pure v2 VM (tests/vm).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cgroup_layout import needs_v2, v2_group

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "worker-in-container.sh"
# What the README's Kubernetes manifest adds after dropping ALL; each is shown needed below.
CAPABILITIES = ("sys_admin", "setuid", "setgid", "chown", "fowner", "dac_override", "mknod")
pytestmark = needs_v2

# What runc does inside the new namespaces before it starts the container's process.
RUNC = """
umount -l /sys/fs/cgroup
mount -t cgroup2 -o ro,nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount -t proc -o nosuid,nodev,noexec proc /proc
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do
    [ -e $p ] && mount --bind /dev/null $p
done
for p in /proc/acpi /proc/scsi; do [ -d $p ] && mount -t tmpfs -o ro tmpfs $p; done
for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
    mount --bind $p $p && mount -o remount,bind,ro $p $p
done
"""


@pytest.fixture
def pod() -> Iterator[str]:
    """kubepods/<pod>: the group a pod's containers get their own groups in."""
    with v2_group("cb-kubepods") as kubepods:
        group = f"{kubepods}/pod-test"
        os.mkdir(group)
        Path(group, "cgroup.subtree_control").write_text("+memory +pids +cpu")
        yield group


def in_container(
    pod: str, name: str, argv: list[str], caps: tuple[str, ...] = CAPABILITIES, state: str = "/run/cellblock"
) -> subprocess.CompletedProcess[str]:
    """argv as the process of a new container `name` of `pod`, with only `caps`."""
    group = f"{pod}/{name}"
    os.mkdir(group)
    bounding = ",".join(["-all", *(f"+{c}" for c in caps)])
    inside = f"{RUNC}\nexec setpriv --bounding-set {bounding} --inh-caps -all -- {shlex.join(argv)}"
    enter = f"echo $$ > {group}/cgroup.procs && exec unshare --cgroup /bin/sh -c {shlex.quote(inside)}"
    env = {**os.environ, "CELLBLOCK_JAIL_DIR": state}
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--uts", "--ipc", "--propagation", "private", "/bin/sh", "-c", enter],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def jail_run(*args: str) -> list[str]:
    return [sys.executable, "-m", "jail", "run", "--json", *args]


def test_without_the_entrypoint_doctor_names_both_container_problems(pod: str) -> None:
    p = in_container(pod, "bare", [sys.executable, "-m", "jail", "doctor"])
    assert p.returncode == 1, p.stdout
    assert "/sys/fs/cgroup is mounted read-only" in p.stdout
    assert "a sandbox cannot mount its own /proc" in p.stdout
    assert "deploy/worker-in-container.sh" in p.stdout


def test_a_worker_container_with_the_documented_privileges_runs_and_limits(
    pod: str, programs: dict[str, bytes], tmp_path: Path
) -> None:
    touch = tmp_path / "touch"
    touch.write_bytes(programs["touch"])
    script = " && ".join(
        [
            shlex.join(jail_run("--memory", "32M", "--", "/bin/sh", "-c", "echo hi; cat /proc/self/cgroup")),
            shlex.join(jail_run("--memory", "32M", "--copy-in", f"{touch}:/box/touch", "--", "./touch", "64")),
            shlex.join(jail_run("--wall-time", "1", "--", "/bin/sleep", "5")),
            "cat /proc/self/cgroup",
        ]
    )
    p = in_container(pod, "worker", [str(ENTRYPOINT), "/bin/sh", "-c", script], state=str(tmp_path / "state"))
    assert p.returncode == 0, p.stderr
    *runs, own = p.stdout.splitlines()
    results = [json.loads(line) for line in runs]
    assert [r["status"] for r in results] == ["ok", "memory_limit", "wall_time_limit"], p.stdout
    assert results[0]["stdout"].startswith("hi\n0::/")  # the run's own cgroup namespace
    assert own == "0::/supervisor"  # the container's processes moved to the leaf, runs beside it
    entries = sorted(e.name for e in os.scandir(f"{pod}/worker") if e.is_dir())
    assert entries == ["cellblock", "supervisor"]


@pytest.mark.parametrize("dropped", CAPABILITIES)
def test_each_documented_capability_is_needed(
    pod: str, dropped: str, programs: dict[str, bytes], tmp_path: Path
) -> None:
    """A run as a judge makes it (a file copied in) fails without any one of them."""
    touch = tmp_path / "touch"
    touch.write_bytes(programs["touch"])
    caps = tuple(c for c in CAPABILITIES if c != dropped)
    argv = [str(ENTRYPOINT), *jail_run("--copy-in", f"{touch}:/box/touch", "--", "./touch", "1")]
    p = in_container(pod, f"without-{dropped}", argv, caps, state=str(tmp_path / "state"))
    if dropped == "sys_admin":  # without it the entrypoint's own mounts fail first
        assert p.returncode != 0 and "mount" in p.stderr, p.stderr
    else:
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert json.loads(p.stdout)["status"] == "internal_error" and "sandbox failure" in p.stderr, p.stderr
