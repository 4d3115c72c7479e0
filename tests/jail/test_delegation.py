"""The jail inside a delegated cgroup v2 subtree, as systemd `Delegate=yes`, a Kubernetes pod or
a container start it: the service's processes move to one `supervisor` leaf, runs go under
one parent group beside it, and a group that was given no controllers is named with its fix.
Runs in the pure v2 VM (tests/vm); there is nothing to delegate on a v1 host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cgroup_layout import CGROUP2, in_cgroup, needs_v2, unit_group, v2_group

ROOT = Path(__file__).resolve().parents[2]
pytestmark = needs_v2


def jail_in(group: str, script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A shell started in `group` (like a service's main process) running `script`, in which
    $JAIL is `python -m jail`."""
    env = {**os.environ, "JAIL": f"{sys.executable} -m jail", "CELLBLOCK_JAIL_DIR": str(tmp_path / "state")}
    return subprocess.run(
        in_cgroup(group, ["/bin/sh", "-c", script]), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def subgroups(path: str) -> list[str]:
    """Every cgroup below `path`, as paths relative to it."""
    return sorted(os.path.relpath(d, path) for d, _, _ in os.walk(path) if d != path)


def test_runs_from_a_delegated_service_share_one_parent_group(programs: dict[str, bytes], tmp_path: Path) -> None:
    touch = tmp_path / "touch"
    touch.write_bytes(programs["touch"])
    with v2_group("cb-delegated") as slice_:
        service = unit_group(slice_, "worker.service")
        script = (
            "$JAIL run --json -- /bin/true && "
            f"$JAIL run --json --memory 32M --copy-in {touch}:/box/touch -- ./touch 64; "
            f"$JAIL run --json --memory 64M --copy-in {touch}:/box/touch -- ./touch 16 && "
            "cat /proc/self/cgroup"
        )
        p = jail_in(service, script, tmp_path)
        assert p.returncode == 0, p.stderr
        *runs, own = p.stdout.splitlines()
        statuses = [json.loads(line)["status"] for line in runs]
        assert statuses == ["ok", "memory_limit", "ok"], p.stdout
        peak = json.loads(runs[2])["peak_memory"]
        assert 16 << 20 <= peak < 32 << 20, runs[2]
        # one leaf, one parent group with the controllers handed down, no run left behind
        assert subgroups(service) == ["cellblock", "supervisor"]
        assert own == f"0::{service.removeprefix('/sys/fs/cgroup')}/supervisor"
        assert Path(service, "cellblock", "cgroup.subtree_control").read_text().split() == ["cpu", "memory", "pids"]


def test_a_group_given_no_controllers_is_named_with_the_fix(tmp_path: Path) -> None:
    with v2_group("cb-undelegated", controllers=False) as slice_:
        service = unit_group(slice_, "worker.service")
        doctor = jail_in(service, "$JAIL doctor", tmp_path)
        assert doctor.returncode == 1, doctor.stdout
        assert f"the cgroup this process runs in, {service}, was given no memory, pids, cpu controller" in doctor.stdout
        assert "Delegate=yes" in doctor.stdout
        run = jail_in(service, "$JAIL run -- /bin/true", tmp_path)
        assert run.returncode == 1
        assert "was given no memory, pids, cpu controller" in run.stderr and "No such file" not in run.stderr
        assert subgroups(service) == []  # refused before it touched anything


def test_a_group_not_delegated_to_us_is_left_alone(tmp_path: Path) -> None:
    """A root shell in a login session (or a unit without Delegate=yes): the session's group is
    systemd's, so the runs go below the hierarchy's root and the session is not reorganised."""
    with v2_group("cb-user.slice") as slice_:
        session = unit_group(slice_, "session-1.scope", delegate=False)
        p = jail_in(session, "$JAIL run --json -- /bin/true && $JAIL doctor && cat /proc/self/cgroup", tmp_path)
        assert p.returncode == 0, p.stdout + p.stderr
        assert json.loads(p.stdout.splitlines()[0])["status"] == "ok"
        assert f"parent group: {CGROUP2}/cellblock" in p.stdout
        assert p.stdout.splitlines()[-1] == f"0::{session.removeprefix(str(CGROUP2))}"
        assert subgroups(session) == []
