"""What a web browser may do with the API: the Host it was reached by, the Origin of the page
that calls it, the content type of what it posts, and CORS for the origins the operator allows.

Why: with keys off (the default on loopback) any web page a developer visits could otherwise
make the browser submit code to a local cellblock. A cross-site form can post `text/plain`
without asking (so /v1 takes only `application/json`, which needs a CORS preflight); a
script's request carries its page's `Origin` (so one that is neither this API's own nor in
CELLBLOCK_ALLOWED_ORIGINS is refused); and a DNS-rebinding page reaches 127.0.0.1 under its
own host name (so, with keys off, only loopback names are accepted in `Host`, unless
CELLBLOCK_ALLOWED_HOSTS names others). Clients that are not browsers send no Origin and are
unaffected.

The compatibility layers (/judge0, /piston) get the same Host and Origin checks, but not the
content-type rule (Piston's clients post JSON as text/plain; the Origin check is what stops a
cross-site form). Once keys are required, they answer CORS for any origin, as Judge0 does:
a page still needs a key to do anything.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.errors import ApiError
from api.middleware import Handler
from core.settings import Config

GUARDED = "/v1/"
LAYERS = ("/judge0", "/piston")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Auth-Token, "
    "X-Auth-User, tokens",
    "Access-Control-Expose-Headers": "Location, Retry-After",
    "Access-Control-Max-Age": "600",
}


def allowed_hosts(cfg: Config) -> frozenset[str] | None:
    """Host names the API answers to; None: any. CELLBLOCK_ALLOWED_HOSTS when set, else the
    loopback names while keys are off, and any host once keys are required."""
    names = frozenset(h.strip().lower() for h in cfg.allowed_hosts.split(",") if h.strip())
    if names:
        return names
    return None if cfg.auth_required else LOOPBACK_NAMES


def _host_name(host: str) -> str:
    """'[::1]:8080' -> '::1', 'Example.org:80' -> 'example.org'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def middleware(cfg: Config, layer_port: bool = False) -> Middleware:
    """The guard, its settings read once; `layer_port`: for a compatibility layer's own port
    (every path is that layer's)."""
    hosts = allowed_hosts(cfg)
    origins = frozenset(o.strip().rstrip("/") for o in cfg.allowed_origins.split(",") if o.strip())

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        layer = layer_port or request.path.startswith(LAYERS)
        if not (layer or request.path.startswith(GUARDED)):
            return await handler(request)
        # Outside the error middleware, so that an allowed origin's page can read refusals too:
        # refusals here are answered, not raised.
        if hosts is not None and _host_name(request.host) not in hosts:
            return ApiError(421, "unknown_host", f"this API does not answer to {request.host!r}", "Host").response()
        origin = request.headers.get("Origin")
        cors = origin is not None and (origin in origins or (layer and cfg.auth_required))
        if origin is not None and not cors and origin != f"{request.scheme}://{request.host}":
            return ApiError(
                403, "origin_not_allowed", f"pages from {origin} may not call this API", "Origin"
            ).response()
        if request.method == "OPTIONS" and cors:
            headers = {"Access-Control-Allow-Origin": origin or "", **_CORS_HEADERS}
            if layer and "Access-Control-Request-Headers" in request.headers:  # any header, as Judge0 allows
                headers["Access-Control-Allow-Headers"] = request.headers["Access-Control-Request-Headers"]
            return web.Response(status=204, headers=headers)
        if request.method == "POST" and not layer and request.content_type != "application/json":
            response: web.StreamResponse = ApiError(
                415, "unsupported_media_type", "send the body as Content-Type: application/json", "Content-Type"
            ).response()
        else:
            response = await handler(request)
        if cors:
            response.headers["Access-Control-Allow-Origin"] = origin or ""
            response.headers["Access-Control-Expose-Headers"] = _CORS_HEADERS["Access-Control-Expose-Headers"]
            response.headers.add("Vary", "Origin")
        return response

    return guard
