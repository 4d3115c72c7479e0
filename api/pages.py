"""The web pages: the playground (`/`, and `/s/{id}` for a submission's own link), the
operations dashboard (`/dashboard`), and their assets under `/static/`.

The pages are static files (api/static/); everything they show they fetch from the API with
the key the person typed, kept in their browser (README: "Playground and dashboard"). They
are read once, at startup, and kept in memory with their gzip form and an ETag, so no request
touches the disk (the editor's bundle, api/static/vendor, built from web/ by `make web`, is
about 1 MB in all, of which a page loads the core and its language's syntax).

Every page goes out under a strict Content-Security-Policy: scripts and connections from this
origin only, no inline script, no frames, no other origin for anything — so even a mistake that
put a program's output into the page as markup could not run it. Styles come from this origin
too, with one exception: CodeMirror writes its own stylesheet into a <style> element, which a
page allows by a nonce of its own (fresh for every response, in the policy and on the page's
script tag, where the page reads it from).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import mimetypes
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from core.models import SUBMISSION_ID

log = logging.getLogger("cellblock.api")

STATIC = Path(__file__).parent / "static"
# Each page and the address it is served at (its link in the navigation is marked current).
PAGES = {"playground.html": "/", "dashboard.html": "/dashboard"}
# What the pages share (the navigation, the key dialog), written once: `<!--#include NAME-->`
# in a page is replaced by partials/NAME when the pages are read. Partials are not served.
PARTIALS = "partials"
_INCLUDE = re.compile(rb"<!--#include ([a-z-]+\.html)-->")
# The editor's bundle, built from web/ (`make web`); without it the playground has a textarea.
VENDOR = STATIC / "vendor"
# The policy; NONCE is replaced by each page's own (style elements only: scripts need none).
NONCE = "__NONCE__"
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'self' 'nonce-{NONCE}'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# Worth compressing: text. Smaller than this, gzip's header costs more than it saves.
_TEXT = ("text/", "application/javascript", "application/json", "image/svg+xml")
_MIN_GZIP = 512
# Most assets are named by path, not by content: a browser revalidates them (ETag) each load.
# The editor's chunks are named by their content's hash (web/package.json: --chunk-names):
# a browser keeps them for good.
_CACHE = "no-cache"
_HASHED = "vendor/chunks/"
_CACHE_HASHED = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file as it is served: its bytes, their gzip form (None: not worth it), type and tag
    (each form has its own: they are different bytes)."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str

    def form(self, request: web.Request) -> tuple[bytes, str, bool]:
        """The bytes this request gets, their ETag, and whether they are the gzip form."""
        if self.gzipped is not None and accepts_gzip(request):
            return self.gzipped, self.etag[:-1] + '-gzip"', True
        return self.body, self.etag, False


def accepts_gzip(request: web.Request) -> bool:
    """Whether Accept-Encoding takes gzip (named, or `*`, and not refused with q=0)."""
    for part in request.headers.get("Accept-Encoding", "").lower().split(","):
        coding, _, params = part.partition(";")
        if coding.strip() not in ("gzip", "*"):
            continue
        params = params.strip()
        try:
            return not params.startswith("q=") or float(params[2:]) > 0
        except ValueError:
            return True
    return False


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in (".js", ".mjs"):
        ctype = "application/javascript"
    packed = gzip.compress(body, 9, mtime=0) if ctype.startswith(_TEXT) and len(body) >= _MIN_GZIP else None
    return Asset(body, packed, ctype, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _page_body(root: Path, name: str) -> bytes:
    """A page's markup with its partials in, its own link in them (the navigation's) marked."""
    link = f'<a href="{PAGES[name]}">'.encode()

    def include(m: re.Match[bytes]) -> bytes:
        part = (root / PARTIALS / m.group(1).decode()).read_bytes().rstrip(b"\n")
        return part.replace(link, link[:-1] + b' aria-current="page">')

    return _INCLUDE.sub(include, (root / name).read_bytes())


def load_assets(root: Path = STATIC) -> dict[str, Asset]:
    """Every file under `root` by its path relative to it ('vendor/editor.js'), but dot files
    (the build's stamp) and partials; the pages as they are served (`_page_body`)."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    assets = {str(p.relative_to(root)): _asset(p) for p in files if p.relative_to(root).parts[0] != PARTIALS}
    missing = [name for name in PAGES if name not in assets]
    if missing:
        raise FileNotFoundError(f"the pages {missing} are not in {root}")
    for name in PAGES:  # read whole (no gzip form: each response has its own nonce)
        assets[name] = Asset(_page_body(root, name), None, "text/html", "")
    if not (root / VENDOR.name / "editor.js").is_file():
        log.warning("the playground's editor is not built (make web): the page falls back to a plain text box")
    return assets


ASSETS = web.AppKey("assets", dict[str, Asset])


def _send(request: web.Request, asset: Asset, name: str) -> web.Response:
    body, etag, gzipped = asset.form(request)
    cache = _CACHE_HASHED if name.startswith(_HASHED) else _CACHE
    headers = {**_HEADERS, "ETag": etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers, content_type=asset.content_type)


def _page(name: str) -> Handler:
    """A page: its markup with a nonce of its own, in its policy and in its script tag."""

    async def page(request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(18)
        body = request.app[ASSETS][name].body.replace(NONCE.encode(), nonce.encode())
        headers = {**_HEADERS, "Content-Security-Policy": CSP.replace(NONCE, nonce), "Cache-Control": "no-store"}
        if accepts_gzip(request):
            body, headers["Content-Encoding"] = gzip.compress(body, 6), "gzip"
        return web.Response(body=body, headers=headers, content_type="text/html", charset="utf-8")

    return page


async def static(request: web.Request) -> web.Response:
    """GET /static/{path}: an asset, or 404 (only files that were there at startup exist; the
    pages only at their own addresses, under their policy)."""
    name = request.match_info["path"]
    asset = None if name in PAGES else request.app[ASSETS].get(name)
    if asset is None:
        raise web.HTTPNotFound(text="no such file\n")
    return _send(request, asset, name)


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", _page("playground.html")),
        web.get(f"/s/{{id:{SUBMISSION_ID}}}", _page("playground.html")),
        web.get("/dashboard", _page("dashboard.html")),
        web.get("/static/{path:.+}", static),
    ]


def setup(app: web.Application) -> None:
    """Read the assets now, once: a page that fails to read fails the start, not a request."""
    app[ASSETS] = load_assets()
    app.add_routes(routes())
