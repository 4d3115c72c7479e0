"""What a web page can make a browser do to a cellblock on loopback with keys off: nothing it
was not allowed to (api/browsers.py), against the real stack."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RedisServer, Stack, error_of, isolated_api

HELLO = {"language": "python3", "source": "print(1)"}


def test_a_cross_site_form_post_is_refused(stack: Stack) -> None:
    """A form on any site may POST text/plain without a preflight: /v1 takes JSON only."""
    raw = json.dumps(HELLO).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        resp = stack.request("POST", "/v1/submissions", raw=raw, headers={"Content-Type": ctype})
        assert resp.status == 415 and error_of(resp)["field"] == "Content-Type", (ctype, resp.body)
    ok = stack.request("POST", "/v1/submissions", raw=raw, headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status == 201, ok.body


def test_another_sites_script_is_refused_its_own_origin_is_not(stack: Stack) -> None:
    evil = {"Origin": "https://evil.example"}
    resp = stack.request("POST", "/v1/submissions", HELLO, headers=evil)
    assert resp.status == 403 and error_of(resp)["code"] == "origin_not_allowed", resp.body
    assert stack.request("GET", "/v1/languages", headers=evil).status == 403
    assert "Access-Control-Allow-Origin" not in stack.request("OPTIONS", "/v1/submissions", headers=evil).headers
    own = {"Origin": f"http://127.0.0.1:{stack.port}"}  # the API's own pages (same origin)
    assert stack.request("POST", "/v1/submissions", HELLO, headers=own).status == 201


def test_dns_rebinding_is_refused_while_keys_are_off(stack: Stack) -> None:
    """A page at rebind.example whose name now points at 127.0.0.1 is same-origin with itself;
    its requests carry Host: rebind.example, which a loopback API without keys refuses."""
    rebound = {"Host": f"rebind.example:{stack.port}", "Origin": f"http://rebind.example:{stack.port}"}
    resp = stack.request("POST", "/v1/submissions", HELLO, headers=rebound)
    assert resp.status == 421 and error_of(resp)["field"] == "Host", resp.body
    for host in (f"localhost:{stack.port}", f"[::1]:{stack.port}", "127.0.0.1"):
        assert stack.request("GET", "/v1/languages", headers={"Host": host}).status == 200, host


def test_cors_for_the_origins_the_operator_allows(redis_server: RedisServer, tmp_path: Path) -> None:
    ide = "https://ide.example.org"
    s = isolated_api(redis_server, tmp_path, "cors", CELLBLOCK_ALLOWED_ORIGINS=ide)
    try:
        pre = s.request(
            "OPTIONS",
            "/v1/submissions",
            headers={
                "Origin": ide,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert pre.status == 204 and pre.headers["access-control-allow-origin"] == ide
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "content-type" in pre.headers["access-control-allow-headers"].lower()
        resp = s.request("POST", "/v1/submissions", HELLO, headers={"Origin": ide})
        assert resp.status == 201 and resp.headers["access-control-allow-origin"] == ide
        # its page can read refusals too (their reason, Retry-After...)
        for refused in (
            s.request("POST", "/v1/submissions", {"language": "cobol"}, headers={"Origin": ide}),
            s.request("POST", "/v1/submissions", raw=b"x", headers={"Origin": ide, "Content-Type": "text/plain"}),
            s.request("GET", "/v1/submissions/nope", headers={"Origin": ide}),
        ):
            assert refused.status >= 400 and refused.headers["access-control-allow-origin"] == ide, refused
        assert "Location" in resp.headers["access-control-expose-headers"]
        assert s.request("GET", "/v1/languages", headers={"Origin": "https://other.example"}).status == 403
    finally:
        s.stop()
