"""`collect` patterns the API refuses (422 naming the field, as every other field), against an
API with no worker: a refusal never reaches the queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.inputs import MAX_COLLECT, MAX_COLLECT_LEN
from tests.conftest import RedisServer, Stack, error_of, isolated_api

GOOD = {"language": "python3", "source": "print(1)\n"}


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = isolated_api(redis_server, tmp_path_factory.mktemp("collect-api"), "collect")
    yield s
    s.stop()


@pytest.mark.parametrize(
    "collect,field",
    [
        ("report.json", "collect"),  # not a list
        ([1], "collect"),
        (["ok.json", "../etc/passwd"], "collect[1]"),
        (["/etc/passwd"], "collect[0]"),
        (["out/../../x"], "collect[0]"),
        ([""], "collect[0]"),
        (["."], "collect[0]"),
        (["./"], "collect[0]"),
        (["a\u0000b"], "collect[0]"),
        (["x" * (MAX_COLLECT_LEN + 1)], "collect[0]"),
        (["ok", "\ud800"], "collect[1]"),  # valid JSON, no UTF-8
        (["f"] * (MAX_COLLECT + 1), "collect"),
    ],
)
def test_bad_pattern_is_422_naming_the_field(api: Stack, collect: Any, field: str) -> None:
    resp = api.request("POST", "/v1/submissions", {**GOOD, "collect": collect})
    assert resp.status == 422, resp.body
    err = error_of(resp)
    assert (err["field"], err["code"]) == (field, "invalid"), err


def test_batch_names_the_submission(api: Stack) -> None:
    body = {"submissions": [GOOD, {**GOOD, "collect": ["ok", "/abs"]}]}
    resp = api.request("POST", "/v1/submissions/batch", body)
    assert resp.status == 422, resp.body
    assert error_of(resp)["field"] == "submissions[1].collect[1]"


def test_good_patterns_are_queued(api: Stack) -> None:
    collect = ["report.json", "out/*.png", "./a//b", "[ab]?.txt", "x" * MAX_COLLECT_LEN, *["f"] * (MAX_COLLECT - 5)]
    resp = api.request("POST", "/v1/submissions", {**GOOD, "collect": collect})
    assert resp.status == 201, resp.body
    assert resp.body["state"] == "queued"


def test_openapi_describes_collect(api: Stack) -> None:
    spec = api.request("GET", "/v1/openapi.json").body
    field = spec["components"]["schemas"]["Submission"]["properties"]["collect"]
    assert field["maxItems"] == MAX_COLLECT and field["items"]["maxLength"] == MAX_COLLECT_LEN
    assert "files_truncated" in spec["components"]["schemas"]["Result"]["properties"]
