"""A sandbox that cannot run (here: a worker whose jail has no slots) is retried, then
reported as internal_error — never as the program's fault."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import RedisServer, make_stack


def test_jail_fault_is_retried_then_internal_error(redis_server: RedisServer, tmp_path: Path) -> None:
    stack = make_stack(
        redis_server,
        tmp_path,
        "fault",
        workers=1,
        extra_env={"CELLBLOCK_JAIL_SLOTS": "0", "CELLBLOCK_JOB_RETRIES": "1"},
    )
    try:
        resp = stack.request("POST", "/v1/submissions", {"language": "python3", "source": "print(1)"})
        assert resp.status == 201
        sid = resp.body["id"]
        view = stack.wait_state(sid)
        assert view["verdict"] == "internal_error", view
        assert view["attempts"] == 2
        assert "not the program's fault" in view["message"]
        assert view["tests"] == []
    finally:
        stack.stop()
