"""Schema-driven fuzzing: schemathesis builds requests from the API's own OpenAPI document,
valid ones and deliberately invalid ones, and sends them to a real stack (real Redis, a real
worker and jail). No answer may be a 5xx, and the API must log no unhandled exception."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api import openapi
from tests.conftest import RedisServer, Stack, make_stack

# The document as served, except that `language` is narrowed to a few installed languages:
# a random string stops every body at the first check (422 unknown language), these let
# generated bodies reach limits, tests, checkers, encodings, the queue and the jail.
_spec = copy.deepcopy(openapi.SPEC)
_submission = _spec["components"]["schemas"]["Submission"]["properties"]
_submission["language"] = {"enum": ["python3", "c", "bash"]}
del _submission["callback_url"]  # a test talks to 127.0.0.1 only, never to generated hosts
schema = schemathesis.openapi.from_dict(_spec)
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def fuzz_stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.geteuid() != 0:
        pytest.fail("the worker runs the jail, which needs root: run the tests as root")
    # Generated bodies may ask to `wait`: keep that short so the run stays bounded.
    s = make_stack(
        redis_server, tmp_path_factory.mktemp("fuzz"), "fuzz", workers=1, extra_env={"CELLBLOCK_MAX_WAIT": "2"}
    )
    yield s
    s.stop()
    # Every log whole (Stack.logs() keeps only the tail of each): an early traceback counts too.
    for log in sorted(s.log_dir.glob("*.log")):
        text = log.read_text(errors="replace")
        at = text.find("unhandled error")
        assert at < 0, f"{log.name} logs an unhandled error:\n{text[max(0, at - 500) : at + 3000]}\n...\n{text[-2000:]}"


@schema.parametrize()
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case, fuzz_stack: Stack) -> None:
    case.call_and_validate(base_url=fuzz_stack.base, checks=[not_a_server_error], timeout=30)
