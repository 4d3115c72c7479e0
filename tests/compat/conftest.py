"""A stack for the compatibility layers: keys required (so every layer's auth is exercised),
callbacks allowed to 127.0.0.1 (the tests' own receivers), each layer on its own port too, two
workers; and an API key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from core import apikeys
from core.keys import Keys
from tests.conftest import RedisServer, Stack, free_port, make_stack


@pytest.fixture(scope="module")
def cstack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "CELLBLOCK_AUTH": "required",
        "CELLBLOCK_CALLBACK_ALLOW": "127.0.0.1/32",
        "CELLBLOCK_CALLBACK_ATTEMPTS": "3",
        # each layer also at the root of a port of its own, as Judge0 (2358) and Piston (2000) are
        "CELLBLOCK_JUDGE0_PORT": str(free_port()),
        "CELLBLOCK_PISTON_PORT": str(free_port()),
    }
    s = make_stack(redis_server, tmp_path_factory.mktemp("compat"), "compat", 2, env)
    yield s
    s.stop()


def new_key(stack: Stack) -> str:
    """A fresh API key's token on `stack`."""
    r = redis.Redis.from_url(stack.redis_url)
    try:
        return apikeys.create_key(r, Keys(stack.env["CELLBLOCK_KEY_PREFIX"])).token
    finally:
        r.close()


@pytest.fixture(scope="module")
def token(cstack: Stack) -> str:
    return new_key(cstack)
