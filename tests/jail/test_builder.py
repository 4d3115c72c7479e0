"""The builder process's protocol (jail/zygote.py), for real: a real builder building real
containers, spoken to over its socket."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from jail import JailError
from jail.cgroup import open_backend
from jail.config import JailConfig
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


def test_a_take_while_a_build_is_under_way_is_answered_by_that_build(tmp_path: Path) -> None:
    """The builder begins the next container as soon as the worker took the ready one (TOOK)
    and answers while the fork server clones its init: a TAKE that comes once that build
    began (its root is mounted) is answered by that container (pushed, then USE), not by a
    second build."""
    b = Builder(replace(JailConfig.from_env(), warm=1, state_dir=str(tmp_path)))
    try:
        wait_for_push(b)
        first = b.take(Shape())  # TOOK: the builder begins the next one at once
        deadline = time.monotonic() + 30
        while roots_mounted(tmp_path) < 2:
            assert time.monotonic() < deadline, "the builder began no build within 30 s of a TOOK"
            time.sleep(0.0005)
        b._sock.send(pack(Msg.TAKE, 9, Shape()))
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
    """The worker goes away right after taking a container, while the builder is building
    the next (its init being cloned): the builder finishes that build and tears everything
    down, its own and the worker's, then exits cleanly: no root mounted, no run cgroup."""
    config = replace(JailConfig.from_env(), warm=1, state_dir=str(tmp_path))
    b = Builder(config)
    builder_pid = b._proc.pid
    try:
        wait_for_push(b)
        taken = b.take(Shape())
        assert os.path.ismount(taken.root)
    finally:
        b.close()
    assert b._proc.returncode == 0
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts
    backend = open_backend(config)
    parents = set(backend.parents.values()) if hasattr(backend, "parents") else {backend.parent}
    left = [name for parent in parents for name in os.listdir(parent) if name.startswith(f"run-{builder_pid}-")]
    assert left == []
