"""A container made the way runc makes one for a Kubernetes pod on a cgroup v2 node, for tests
that run the jail or a worker inside one (no container runtime runs on these machines).

Its own cgroup below a pod group with a cgroup namespace rooted there; mount, pid, uts and ipc
namespaces (the network is shared: the worker reaches Redis on 127.0.0.1); the cgroupfs
mounted read-only, /proc masked (files bound over /proc/kcore and the like, /proc/sys and
others read-only) and a capability bounding set. Not reproduced: the runtime's seccomp and
AppArmor profiles (the README says why they must be Unconfined).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cgroup_layout import v2_group

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "deploy" / "worker-in-container.sh"
# What deploy/kubernetes/cellblock.yaml adds after dropping ALL (README "Deploying on cgroup v2").
CAPABILITIES = ("sys_admin", "setuid", "setgid", "chown", "fowner", "dac_override", "mknod")

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


@contextmanager
def pod_group(name: str) -> Iterator[str]:
    """kubepods-<pid>/<name>: the group a pod's containers get their own groups in."""
    with v2_group("cb-kubepods") as kubepods:
        group = f"{kubepods}/{name}"
        os.mkdir(group)
        Path(group, "cgroup.subtree_control").write_text("+memory +pids +cpu")
        yield group


def container(pod: str, name: str, argv: list[str], caps: tuple[str, ...] = CAPABILITIES) -> list[str]:
    """The command that runs argv as the process of a new container `name` of `pod`, with only
    `caps` (its group is made now)."""
    group = f"{pod}/{name}"
    os.mkdir(group)
    bounding = ",".join(["-all", *(f"+{c}" for c in caps)])
    inside = f"{RUNC}\nexec setpriv --bounding-set {bounding} --inh-caps -all -- {shlex.join(argv)}"
    enter = f"echo $$ > {shlex.quote(group)}/cgroup.procs && exec unshare --cgroup /bin/sh -c {shlex.quote(inside)}"
    return [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--uts",
        "--ipc",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        enter,
    ]
