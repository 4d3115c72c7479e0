"""The builder process's protocol (jail/zygote.py), for real: a real builder building real
containers, spoken to over its socket."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from jail import JailError
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
