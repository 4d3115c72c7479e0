"""The host-wide pieces every container needs: cgroup backend, slots, staged /etc."""

from __future__ import annotations

import os
import weakref
from functools import partial

from . import bpf_cache, cgroup, init_binary, rootfs, sandbox
from .config import JailConfig
from .errors import JailError
from .sandbox import Sandbox, Shape
from .slots import SlotPool

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (mypy reads it by name)
if TYPE_CHECKING:
    from .forkserver import ForkServer


class Host:
    """What one process that builds containers holds for the life of the process."""

    def __init__(self, config: JailConfig, fork_server: bool = False) -> None:
        if os.geteuid() != 0:
            raise JailError("the jail needs root (run `python -m jail doctor` to see what is missing)")
        self.config = config
        os.makedirs(config.state_dir, mode=0o711, exist_ok=True)
        self.etc_dir = rootfs.staged_etc(config.state_dir)
        self.init = init_binary.executable(config.state_dir)
        self.seccomp_cache = f"{config.state_dir}/seccomp"  # compiled programs (jail/bpf_cache.py)
        self.backend = cgroup.open_backend(config)
        self.cgroup_instance = cgroup.instance()  # names this Host's run cgroups (cgroup.run_name)
        self.slots = SlotPool(config.state_dir, config.slots, config.uid_base)
        # A process killed mid-run leaves its slots' root mounts and cgroups behind;
        # whoever can lock such a slot now cleans it, so nothing lingers until reuse.
        mount_points = rootfs.mount_points()
        mounted = {slot for slot in range(config.slots) if self.slots.root(slot) in mount_points}
        self.slots.sweep_unowned(self.clean_slot, mounted | self.backend.leftover_slots())
        # A fork server launches the inits of a process whose building thread lives as long
        # as the process (the builder's); any other process launches each with a posix_spawn.
        self.server: ForkServer | None = None
        if fork_server:
            from .forkserver import ForkServer  # sockets: not for a process that has no server

            self.server = ForkServer(self.init)
        self.launch: sandbox.Launcher = (
            self.server.launch if self.server else partial(sandbox.launch_by_spawn, self.init)
        )
        # Whoever forgets close(): the server stops when this Host is collected, or at exit (of
        # this process: a forked copy's exit leaves its parent's alone).
        self._finalizer = weakref.finalize(self, _stop_server, os.getpid(), self.server)
        self._retire = weakref.finalize(self, cgroup.retire, self.cgroup_instance)

    def close(self) -> None:
        """Stop the fork server, if any; the containers it launched must be torn down first.
        What they left (a cgroup whose removal failed) is then any sweep's."""
        self._finalizer()
        self._retire()

    def clean_slot(self, slot: int) -> None:
        """Remove what a dead previous owner of `slot` left: its root mount, its cgroups."""
        root = self.slots.root(slot)
        if os.path.ismount(root):
            rootfs.unmount_root(root)
        self.backend.sweep(slot)

    def take_slot(self) -> int:
        """A slot for a new container, cleaned of what a dead previous owner left."""
        slot, fresh = self.slots.acquire()
        if fresh:
            try:
                self.clean_slot(slot)
            except BaseException:
                self.slots.release(slot)
                raise
        return slot

    def build(self, shape: Shape) -> Sandbox:
        """A container of `shape` in a fresh slot; its release frees the slot (even if
        building fails half-way: prepare or finish undoes what it did, then releases)."""
        return self.begin(shape).finish()

    def begin(self, shape: Shape) -> sandbox.Building:
        """`build`, up to the launch of the container's init: the caller may do other work
        until the Building's `ready` fd is readable, then must `finish` or `cancel` it."""
        bpf = bpf_cache.compiled(self.config.seccomp_dir, self.seccomp_cache, shape.profile)
        slot = self.take_slot()
        return sandbox.prepare(
            self.backend,
            slot,
            cgroup.run_name(slot, self.cgroup_instance),
            self.slots.root(slot),
            self.slots.host_uid(slot),
            self.etc_dir,
            self.launch,
            bpf,
            shape,
            lambda: self.slots.release(slot),
        )


def _stop_server(owner: int, server: ForkServer | None) -> None:
    if server is not None and os.getpid() == owner:
        server.close()
