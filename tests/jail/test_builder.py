"""The builder process's protocol (jail/zygote.py), for real: a real builder building real
containers, spoken to over its socket."""

from __future__ import annotations

import os
import select
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jail import JailError
from jail.cgroup import open_backend
from jail.config import JailConfig
from jail.record import replace
from jail.sandbox import Sandbox, Shape
from jail.zygote import Builder, Msg, pack


def wait_for_push(builder: Builder) -> None:
    """Until a container the builder pushed unasked is in the socket, not yet received."""
    poller = select.poll()
    poller.register(builder._sock, select.POLLIN)
    assert poller.poll(30_000), "the builder pushed no container within 30 s"
    assert builder._sock.recv(1 << 16, socket.MSG_PEEK)


@pytest.fixture
def builder() -> Iterator[Builder]:
    b = Builder(replace(JailConfig.from_env(), warm=1))
    yield b
    b.close()


def test_a_take_is_answered_by_the_container_already_on_its_way(builder: Builder) -> None:
    """The worker asks (TAKE) while the container the builder pushed is still in the socket:
    the answer is that container (USE), not a second build on the job's path."""
    wait_for_push(builder)
    builder._sock.send(pack(Msg.TAKE, 7, Shape()))
    kind, n, pushed = builder._recv(block=True)
    assert (kind, n) == (Msg.SANDBOX, 0) and isinstance(pushed, Sandbox)
    assert builder._recv(block=True) == (Msg.USE, 7, pushed.id)
    builder._pushed.remove(pushed)
    pushed.release()


def test_take_uses_the_container_that_answers_it(builder: Builder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Builder.take, when its look at what was pushed came just too early."""
    wait_for_push(builder)
    received = builder._recv
    looked = []

    def too_early(block: bool) -> tuple[str, int, object]:
        if not block and not looked:
            looked.append(True)
            return "", 0, None  # as if the push had not come yet
        return received(block)

    monkeypatch.setattr(builder, "_recv", too_early)
    sb = builder.take(Shape())
    try:
        assert looked and sb.id == 1  # the first container built, the pushed one: no build for the take
        assert list(builder._pushed) == []
    finally:
        sb.release()


def test_a_take_of_a_shape_that_cannot_be_built_fails_with_the_reason(builder: Builder) -> None:
    with pytest.raises(JailError, match="no seccomp profile 'nope'"):
        builder.take(Shape(profile="nope"))


def roots_mounted(state_dir: Path) -> int:
    """How many slot roots under `state_dir` are mounted now."""
    return Path("/proc/self/mountinfo").read_text().count(f" {state_dir}/slots/")


def fork_server_of(builder: Builder) -> int:
    """The pid of the builder's fork server: its child in our pid namespace (the inits it
    cloned, children of the builder too, are each in a namespace of their own)."""
    ours = os.readlink("/proc/self/ns/pid")
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == builder._proc.pid and os.readlink(f"/proc/{entry}/ns/pid") == ours:
                return int(entry)
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    raise AssertionError("the builder has no fork server")


@contextmanager
def build_under_way(b: Builder, state_dir: Path) -> Iterator[Sandbox]:
    """The worker takes the ready container; the builder begins the next (its root is
    mounted) and waits for the fork server's clone, which waits (stopped) until the block
    ends. Yields the taken container."""
    wait_for_push(b)
    server = fork_server_of(b)
    os.kill(server, signal.SIGSTOP)
    try:
        taken = b.take(Shape())  # TOOK: the builder begins the next one at once
        deadline = time.monotonic() + 30
        while roots_mounted(state_dir) < 2:
            assert time.monotonic() < deadline, "the builder began no build within 30 s of a TOOK"
            time.sleep(0.001)
        yield taken
    finally:
        os.kill(server, signal.SIGCONT)


def test_a_take_while_a_build_is_under_way_is_answered_by_that_build(tmp_path: Path) -> None:
    """The builder answers while the fork server clones an init for a build ahead of demand:
    a TAKE then waits for that build and is answered by its container (pushed, then USE),
    not by a second build."""
    b = Builder(replace(JailConfig.from_env(), warm=1, state_dir=str(tmp_path)))
    try:
        with build_under_way(b, tmp_path) as first:
            b._sock.send(pack(Msg.TAKE, 9, Shape()))
            poller = select.poll()
            poller.register(b._sock, select.POLLIN)
            assert not poller.poll(100), "answered before the init it needs was cloned"
        kind, n, pushed = b._recv(block=True)
        assert (kind, n) == (Msg.SANDBOX, 0) and isinstance(pushed, Sandbox)
        assert pushed.id == first.id + 1
        assert b._recv(block=True) == (Msg.USE, 9, pushed.id)
        b._pushed.remove(pushed)
        pushed.release()
        first.release()
    finally:
        b.close()


def test_a_builder_stopped_during_a_build_leaves_nothing_behind(tmp_path: Path) -> None:
    """The worker goes away while the builder waits for the clone of a build ahead of
    demand: the builder gives that build back (reading the launch's answer, reaping its
    init) and tears down the worker's container too, then exits cleanly: no root mounted,
    no run cgroup."""
    config = replace(JailConfig.from_env(), warm=1, state_dir=str(tmp_path))
    b = Builder(config)
    builder_pid = b._proc.pid
    try:
        with build_under_way(b, tmp_path) as taken:
            b._sock.close()  # the worker is gone
    finally:
        b.close()
    for fd in taken.fds():
        os.close(fd)
    taken.cg.close()
    assert b._proc.returncode == 0
    assert str(tmp_path) not in Path("/proc/self/mountinfo").read_text()
    backend = open_backend(config)
    parents = set(backend.parents.values()) if hasattr(backend, "parents") else {backend.parent}
    left = [name for parent in parents for name in os.listdir(parent) if name.startswith(f"run-{builder_pid}-")]
    assert left == []
